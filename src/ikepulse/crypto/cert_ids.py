"""Distinguished names as IKE identities, and which identities a certificate proves
(RFC 7296 §3.5, RFC 4945 §3.1).

A DN is written as strongSwan writes it, in DER order: ``C=CH, O=example, CN=gw``. It is
compared attribute by attribute, ignoring case and the ASN.1 string type; a pattern value
``*`` matches any value of that attribute (swanctl's DN wildcards).
"""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..wire.enums import IdType
from . import der

Rdns = tuple[tuple[tuple[str, str], ...], ...]
"""A DN as its RDNs, each a sorted tuple of (dotted OID, value)."""

_KEYS = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "E": NameOID.EMAIL_ADDRESS,
    "EMAIL": NameOID.EMAIL_ADDRESS,
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
    "SN": NameOID.SERIAL_NUMBER,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "DC": NameOID.DOMAIN_COMPONENT,
    "UID": NameOID.USER_ID,
    "T": NameOID.TITLE,
    "G": NameOID.GIVEN_NAME,
    "GN": NameOID.GIVEN_NAME,
    "S": NameOID.SURNAME,
}
_LABELS = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.EMAIL_ADDRESS: "E",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.USER_ID: "UID",
}
_LABEL_BY_DOTTED = {oid.dotted_string: label for oid, label in _LABELS.items()}
_STRINGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be",
            0x1C: "utf-32-be"}  # fmt: skip


def _split(text: str, sep: str) -> list[str]:
    """Split at ``sep`` unless escaped with a backslash."""
    parts, current, escaped = [], "", False
    for ch in text:
        if escaped:
            current, escaped = current + ch, False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def parse_dn(text: str) -> x509.Name:
    """``C=CH, O=example, CN=gw`` (DER order, as strongSwan writes it) as a Name."""
    rdns = []
    for part in _split(text, ","):
        key, sep, value = part.strip().partition("=")
        oid = _KEYS.get(key.strip().upper())
        if not sep or oid is None:
            raise ValueError(f"{part.strip()!r} is not KEY=value with a known DN key")
        value = value.strip()
        if not value:
            raise ValueError(f"{key.strip()} has an empty value")
        if oid == NameOID.COUNTRY_NAME and value != "*" and len(value) != 2:
            raise ValueError(f"C={value} is not a two-letter country code")
        rdns.append(x509.RelativeDistinguishedName([x509.NameAttribute(oid, value)]))
    return x509.Name(rdns)


def dn_text(rdns: Rdns) -> str:
    """A DN as strongSwan prints it."""
    return ", ".join(
        "+".join(f"{_LABEL_BY_DOTTED.get(oid, oid)}={value}" for oid, value in rdn) for rdn in rdns
    )


def rdns_of_name(name: x509.Name) -> Rdns:
    return tuple(
        tuple(sorted((a.oid.dotted_string, str(a.value)) for a in rdn)) for rdn in name.rdns
    )


def rdns_of_der(data: bytes) -> Rdns:
    """The RDNs of a DER Name (an ID_DER_ASN1_DN identity); raises DerError."""
    out = []
    for tag, rdn in der.elements(der.only(data, 0x30, "Name")):
        if tag != 0x31:
            raise der.DerError("RDN is not a SET")
        attributes = []
        for tag, attribute in der.elements(rdn):
            items = der.elements(attribute)
            if tag != 0x30 or len(items) != 2 or items[0][0] != 0x06:
                raise der.DerError("attribute is not SEQUENCE { OID, value }")
            (_, oid), (vtag, value) = items
            codec = _STRINGS.get(vtag)
            if codec is None:
                raise der.DerError(f"attribute value of ASN.1 type {vtag:#x}")
            try:
                attributes.append((der.oid_text(oid), value.decode(codec)))
            except UnicodeDecodeError as exc:
                raise der.DerError(f"attribute value: {exc}") from None
        if not attributes:
            raise der.DerError("empty RDN")
        out.append(tuple(sorted(attributes)))
    return tuple(out)


def _fold(value: str) -> str:
    return " ".join(value.split()).casefold()


def dn_matches(pattern: Rdns, name: Rdns, wildcards: bool = True) -> bool:
    """Equal RDN by RDN, ignoring case and spacing; with ``wildcards`` a ``*`` value in
    ``pattern`` matches any value of that attribute (never for what a peer claims)."""
    if len(pattern) != len(name):
        return False
    for want, have in zip(pattern, name, strict=True):
        if len(want) != len(have):
            return False
        for (w_oid, w_value), (h_oid, h_value) in zip(want, have, strict=True):
            if w_oid != h_oid or (
                not (wildcards and w_value == "*") and _fold(w_value) != _fold(h_value)
            ):
                return False
    return True


def is_dn_pattern(rdns: Rdns) -> bool:
    return any(value == "*" for rdn in rdns for _, value in rdn)


def _san(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def identities_in(cert: x509.Certificate) -> list[str]:
    """What the certificate proves, for log lines: subject DN, then each SAN."""
    out = [dn_text(rdns_of_name(cert.subject))]
    for name in _san(cert):
        if isinstance(name, x509.DirectoryName):
            out.append(dn_text(rdns_of_name(name.value)))
        elif isinstance(name, x509.DNSName | x509.RFC822Name | x509.IPAddress):
            out.append(str(name.value))
    return out


def in_certificate(id_type: IdType, data: bytes, cert: x509.Certificate) -> bool:
    """Whether the certificate names this identity: its subject DN or a DirectoryName SAN
    for a DN, a SAN of the matching kind otherwise (RFC 4945 §3.1)."""
    san = _san(cert)
    if id_type == IdType.ID_DER_ASN1_DN:
        try:
            claimed = rdns_of_der(data)
        except der.DerError:
            return False
        names = [cert.subject] + [n.value for n in san if isinstance(n, x509.DirectoryName)]
        return any(dn_matches(claimed, rdns_of_name(n), wildcards=False) for n in names)
    if id_type in (IdType.ID_FQDN, IdType.ID_RFC822_ADDR):
        kind = x509.DNSName if id_type == IdType.ID_FQDN else x509.RFC822Name
        text = data.decode("utf-8", "replace").casefold()
        return any(isinstance(n, kind) and n.value.casefold() == text for n in san)
    if id_type in (IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR) and len(data) in (4, 16):
        address = ipaddress.ip_address(data)
        return any(isinstance(n, x509.IPAddress) and n.value == address for n in san)
    return False
