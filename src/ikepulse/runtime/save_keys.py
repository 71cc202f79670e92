"""Opt-in export of IKE and ESP keys for Wireshark (``[daemon] save_keys``).

Appends one line per IKE SA to ``ikev2_decryption_table`` and two per CHILD SA (one per
direction) to ``esp_sa``, in the formats of Wireshark's IKEv2 and ESP decryption tables, as
strongSwan's save-keys plugin writes them (AES-GCM for ESP named as Wireshark 3 and
later expect). Anyone who reads these files can decrypt the
tunnels: the daemon warns at start that keys are being written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..core.events import ChildSaInstalled, Event, IkeSaEstablished, IkeSaRekeyed
from ..wire.enums import EncrId, IntegId

log = logging.getLogger("ikepulse.save_keys")

IKE_TABLE = "ikev2_decryption_table"
ESP_TABLE = "esp_sa"

_GCM = {EncrId.AES_GCM_8: 8, EncrId.AES_GCM_12: 12, EncrId.AES_GCM_16: 16}
_CCM = {EncrId.AES_CCM_8: 8, EncrId.AES_CCM_12: 12, EncrId.AES_CCM_16: 16}

_IKE_INTEG = {
    IntegId.HMAC_MD5_96: "HMAC_MD5_96 [RFC2403]",
    IntegId.HMAC_SHA1_96: "HMAC_SHA1_96 [RFC2404]",
    IntegId.HMAC_SHA2_256_128: "HMAC_SHA2_256_128 [RFC4868]",
    IntegId.HMAC_SHA2_384_192: "HMAC_SHA2_384_192 [RFC4868]",
    IntegId.HMAC_SHA2_512_256: "HMAC_SHA2_512_256 [RFC4868]",
}
_ESP_ENCR = {
    EncrId.NULL: "NULL",
    EncrId.TRIPLE_DES: "TripleDES-CBC [RFC2451]",
    EncrId.AES_CBC: "AES-CBC [RFC3602]",
    EncrId.AES_CTR: "AES-CTR [RFC3686]",
    EncrId.DES: "DES-CBC [RFC2405]",
    # strongSwan writes "AES-GCM [RFC4106]" with "ANY 128 bit authentication [no checking]",
    # which Wireshark 3 and later reject: they name the ICV length and want NULL integrity
    **{encr: f"AES-GCM with {icv} octet ICV [RFC4106]" for encr, icv in _GCM.items()},
}
_ESP_INTEG = {
    IntegId.HMAC_SHA1_96: "HMAC-SHA-1-96 [RFC2404]",
    IntegId.HMAC_MD5_96: "HMAC-MD5-96 [RFC2403]",
    IntegId.HMAC_SHA2_256_128: "HMAC-SHA-256-128 [RFC4868]",
    IntegId.HMAC_SHA2_384_192: "HMAC-SHA-384-192 [RFC4868]",
    IntegId.HMAC_SHA2_512_256: "HMAC-SHA-512-256 [RFC4868]",
}


def ike_names(encr: tuple[int, int | None], integ: int | None) -> tuple[str, str] | None:
    """Wireshark's names of an IKE SA's encryption and integrity, None if it has none."""
    algorithm, bits = encr
    if algorithm == EncrId.TRIPLE_DES:
        enc = "3DES [RFC2451]"
    elif algorithm == EncrId.NULL:
        enc = "NULL [RFC2410]"
    elif algorithm == EncrId.AES_CBC and bits in (128, 192, 256):
        enc = f"AES-CBC-{bits} [RFC3602]"
    elif algorithm == EncrId.AES_CTR and bits in (128, 192, 256):
        enc = f"AES-CTR-{bits} [RFC5930]"
    elif algorithm in _GCM and bits in (128, 192, 256):
        enc = f"AES-GCM-{bits} with {_GCM[algorithm]} octet ICV [RFC5282]"
    elif algorithm in _CCM and bits in (128, 192, 256):
        enc = f"AES-CCM-{bits} with {_CCM[algorithm]} octet ICV [RFC5282]"
    else:
        return None
    if algorithm in _GCM or algorithm in _CCM:
        return enc, "NONE [RFC4306]"
    name = _IKE_INTEG.get(integ) if integ is not None else None
    return None if name is None else (enc, name)


def ike_line(event: IkeSaEstablished | IkeSaRekeyed) -> str | None:
    """The IKE SA's line of ``ikev2_decryption_table``: SPIs, SK_ei, SK_er, encryption,
    SK_ai, SK_ar, integrity (RFC 7296 §2.14); None when Wireshark cannot use it."""
    names = ike_names(event.encr, event.integ)
    if names is None or event.keys is None:
        return None
    k = event.keys
    return (
        f'{event.spi_i.hex()},{event.spi_r.hex()},{k.sk_ei.hex()},{k.sk_er.hex()},"{names[0]}",'
        f'{k.sk_ai.hex()},{k.sk_ar.hex()},"{names[1]}"'
    )


def esp_names(encr: tuple[int, int | None], integ: int | None) -> tuple[str, str] | None:
    """Wireshark's names of a CHILD SA's encryption and integrity, None if it has none."""
    enc = _ESP_ENCR.get(encr[0])
    if enc is None:
        return None
    if integ is None or integ == IntegId.NONE:
        return enc, "NULL"
    name = _ESP_INTEG.get(integ)
    return None if name is None else (enc, name)


def esp_lines(event: ChildSaInstalled) -> list[str]:
    """The two lines of ``esp_sa`` for a CHILD SA: initiator to responder, then back."""
    names = esp_names(event.encr, event.integ)
    if names is None:
        return []
    family = "IPv6" if ":" in event.local[0] else "IPv4"
    k = event.keys
    out = (event.local[0], event.remote[0], event.spi_out)
    back = (event.remote[0], event.local[0], event.spi_in)
    i_to_r, r_to_i = (out, back) if event.initiator else (back, out)
    lines = []
    for (src, dst, spi), encr, integ in (
        (i_to_r, k.encr_i, k.integ_i),
        (r_to_i, k.encr_r, k.integ_r),
    ):
        lines.append(
            f'"{family}","{src}","{dst}","0x{spi.hex()}","{names[0]}","0x{encr.hex()}",'
            f'"{names[1]}","0x{integ.hex()}"'
        )
    return lines


class KeyExport:
    """Appends each new IKE and CHILD SA's keys to the tables in ``directory``."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.failures = 0
        """Lines that could not be written (logged, the tunnel is unaffected)."""

    def announce(self) -> None:
        log.warning(
            "save_keys: writing IKE and ESP keys to %s (%s, %s): anyone who can read them "
            "can decrypt these tunnels; do not enable this in production",
            self.directory, IKE_TABLE, ESP_TABLE,
        )  # fmt: skip

    def on_event(self, event: Event) -> None:
        if isinstance(event, IkeSaEstablished | IkeSaRekeyed):
            line = ike_line(event)
            if line is not None:
                self._append(IKE_TABLE, [line])
        elif isinstance(event, ChildSaInstalled):
            self._append(ESP_TABLE, esp_lines(event))

    def _append(self, name: str, lines: list[str]) -> None:
        if not lines:
            return
        path = self.directory / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as file:
                file.write("".join(f"{line}\n" for line in lines))
        except OSError as exc:
            self.failures += 1
            log.warning("save_keys: cannot write %s: %s", path, exc)
