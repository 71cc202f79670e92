"""EAP inside IKE_AUTH (RFC 7296 §2.16): the gateway's authenticator and the client's peer,
each EAP-Identity (RFC 3748 §5.1) then EAP-MSCHAPv2 (RFC 2759 through
draft-kamath-pppext-eap-mschapv2), one attempt.

    gateway                                   client
    Request/Identity            (eap_id set)  ->
                                              <-  Response/Identity "carol"
    Request/MSCHAPv2 Challenge                ->
                                              <-  Response/MSCHAPv2 Response (NT-Response)
    Request/MSCHAPv2 Success "S=..."          ->  (checks the authenticator response)
                                              <-  Response/MSCHAPv2 Success
    Success                                   ->  both hold the MSK

Both raise AuthenticationFailed with a reason that says what went wrong (wrong password,
unknown user, the peer's refusal); the IKE SA fails with AUTHENTICATION_FAILED.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from ..crypto import mschapv2
from ..wire.buffer import DecodeError
from ..wire.eap import (
    CHALLENGE_SIZE,
    EapIdentity,
    EapNak,
    EapType,
    MsChapV2Challenge,
    MsChapV2Op,
    MsChapV2Response,
    MsChapV2Result,
    eap_payload,
    pull_eap,
)
from ..wire.enums import EapCode
from ..wire.payloads import EapPayload
from .connection import Identity, identity_match
from .errors import AuthenticationFailed
from .randomness import Rng

_WELCOME = b" M=Welcome to ikepulse"


def _decode(payload: EapPayload, role: str):
    try:
        return pull_eap(payload)
    except DecodeError as exc:
        raise AuthenticationFailed(f"malformed EAP message from the {role}: {exc}") from None


class EapServer:
    """The gateway's side. ``password_of(user)`` finds an EAP secret (None: unknown user);
    ``identity`` is the client's IKE identity, its user name unless ``ask_identity``, in
    which case the EAP-Identity answer must fit ``pattern`` (None: anyone)."""

    def __init__(
        self,
        rng: Rng,
        name: bytes,
        password_of: Callable[[Identity], bytes | None],
        identity: Identity,
        ask_identity: bool,
        pattern: Identity | None,
    ) -> None:
        self.rng = rng
        self.name = name
        self.password_of = password_of
        self.identity = identity
        self.ask_identity = ask_identity
        self.pattern = pattern
        self.identifier = rng.randbytes(1)[0]
        self.challenge = b""
        self.msk: bytes | None = None
        self.user: Identity | None = None
        """Who authenticated (the MS-CHAPv2 user name)."""
        self.succeeded = False

    def _request(self, message) -> EapPayload:
        self.identifier = (self.identifier + 1) % 256
        return eap_payload(EapCode.REQUEST, self.identifier, message)

    def start(self) -> EapPayload:
        """The first request: EAP-Identity, or straight the MS-CHAPv2 challenge."""
        return self._request(EapIdentity()) if self.ask_identity else self._challenge()

    def _challenge(self) -> EapPayload:
        self.challenge = self.rng.randbytes(CHALLENGE_SIZE)
        ms_id = self.identifier + 1 & 0xFF
        return self._request(MsChapV2Challenge(ms_id, self.challenge, self.name))

    def process(self, payload: EapPayload) -> EapPayload:
        """The client's response; our next request, or EAP Success once it acknowledged."""
        if payload.code != EapCode.RESPONSE or payload.identifier != self.identifier:
            raise AuthenticationFailed(
                f"EAP {payload.code.name} {payload.identifier} does not answer our request "
                f"{self.identifier}"
            )
        message = _decode(payload, "client")
        if isinstance(message, EapIdentity) and self.ask_identity and not self.challenge:
            return self._identity(message.identity)
        if isinstance(message, EapNak):
            raise AuthenticationFailed(
                f"the client refuses EAP-MSCHAPv2 (it asks for EAP types {list(message.desired)})"
            )
        if isinstance(message, MsChapV2Response) and self.challenge and self.msk is None:
            return self._verify(message)
        if isinstance(message, MsChapV2Result) and message.op == MsChapV2Op.SUCCESS and self.msk:
            self.succeeded = True
            self.identifier = (self.identifier + 1) % 256
            return eap_payload(EapCode.SUCCESS, self.identifier)
        raise AuthenticationFailed(f"unexpected EAP message from the client: {message!r}")

    def _identity(self, text: bytes) -> EapPayload:
        try:
            self.identity = Identity.parse(text.decode())
        except (UnicodeDecodeError, ValueError):
            raise AuthenticationFailed(f"EAP identity {text!r} is not valid") from None
        if not identity_match(self.pattern, self.identity):
            raise AuthenticationFailed(
                f"EAP identity {self.identity} does not match eap_id {self.pattern}"
            )
        return self._challenge()

    def _verify(self, response: MsChapV2Response) -> EapPayload:
        try:
            user = Identity.parse(response.name.decode())
        except (UnicodeDecodeError, ValueError):
            raise AuthenticationFailed(
                f"MS-CHAPv2 user name {response.name!r} is not valid"
            ) from None
        secret = self.password_of(user)
        if secret is None:
            raise AuthenticationFailed(f"EAP-MSCHAPv2: unknown user {user} (no EAP secret)")
        password = secret.decode("utf-8", "replace")
        expected = mschapv2.generate_nt_response(
            self.challenge, response.peer_challenge, response.name, password
        )
        if not hmac.compare_digest(expected, response.nt_response):
            raise AuthenticationFailed(f"EAP-MSCHAPv2: wrong password for user {user}")
        self.user = user
        self.msk = mschapv2.msk(password, response.nt_response)
        answer = mschapv2.authenticator_response(
            password, response.nt_response, response.peer_challenge, self.challenge, response.name
        )
        return self._request(MsChapV2Result(MsChapV2Op.SUCCESS, response.ms_id, answer + _WELCOME))


class EapPeer:
    """The client's side: ``user`` and its ``password``."""

    def __init__(self, rng: Rng, user: Identity, password: bytes) -> None:
        self.rng = rng
        self.user = user
        self.password = password.decode("utf-8", "replace")
        self.msk: bytes | None = None
        self.succeeded = False
        self._expected: bytes | None = None
        self._pending_msk: bytes | None = None
        self._refused: str | None = None

    def process(self, payload: EapPayload) -> EapPayload | None:
        """The gateway's message; our response, or None after EAP Success (``succeeded``)."""
        if payload.code == EapCode.SUCCESS:
            if self._pending_msk is None:
                raise AuthenticationFailed("EAP Success before MS-CHAPv2 completed")
            self.msk, self.succeeded = self._pending_msk, True
            return None
        if payload.code == EapCode.FAILURE:
            raise AuthenticationFailed(self._refused or "the gateway sent EAP Failure")
        if payload.code != EapCode.REQUEST:
            raise AuthenticationFailed(f"EAP {payload.code.name} from the gateway")
        message = _decode(payload, "gateway")
        reply = self._answer(message)
        return eap_payload(EapCode.RESPONSE, payload.identifier, reply)

    def _answer(self, message):
        name = str(self.user).encode()
        if isinstance(message, EapIdentity):
            return EapIdentity(name)
        if isinstance(message, MsChapV2Challenge):
            peer_challenge = self.rng.randbytes(CHALLENGE_SIZE)
            nt = mschapv2.generate_nt_response(
                message.challenge, peer_challenge, name, self.password
            )
            self._expected = mschapv2.authenticator_response(
                self.password, nt, peer_challenge, message.challenge, name
            )
            self._nt = nt
            return MsChapV2Response(message.ms_id, peer_challenge, nt, name)
        if isinstance(message, MsChapV2Result) and message.op == MsChapV2Op.SUCCESS:
            if self._expected is None or not mschapv2.authenticator_response_ok(
                self._expected, message.message
            ):
                raise AuthenticationFailed(
                    "EAP-MSCHAPv2: the gateway's authenticator response does not verify "
                    "(it does not know our password)"
                )
            self._pending_msk = mschapv2.msk(self.password, self._nt)
            return MsChapV2Result(MsChapV2Op.SUCCESS)
        if isinstance(message, MsChapV2Result) and message.op == MsChapV2Op.FAILURE:
            text = message.message.decode("ascii", "replace")
            self._refused = f"EAP-MSCHAPv2 refused by the gateway ({text}): wrong password or user"
            return MsChapV2Result(MsChapV2Op.FAILURE)
        if isinstance(message, EapNak | MsChapV2Response):
            raise AuthenticationFailed(f"unexpected EAP request from the gateway: {message!r}")
        return EapNak((EapType.MSCHAPV2,))
