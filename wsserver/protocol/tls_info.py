"""What a TLS connection is, as plain data (:class:`TLSInfo`, ``request.tls``), and
the ASGI TLS extension's dictionary made from it (asgiref's ``specs/tls.rst``).

Sans-I/O: the server reads the values off its TLS transport; this only holds
and converts them. :func:`rfc4514` writes a certificate's subject, as
Python's ``ssl`` gives it, as the one-line distinguished name of RFC 4514;
:func:`validity` reads when a certificate (DER) is valid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["TLS_VERSIONS", "TLSInfo", "rfc4514", "validity"]

#: The protocol version numbers (as on the wire) of the names ``ssl`` gives.
TLS_VERSIONS = {
    "SSLv3": 0x0300,
    "TLSv1": 0x0301,
    "TLSv1.1": 0x0302,
    "TLSv1.2": 0x0303,
    "TLSv1.3": 0x0304,
}


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """A TLS connection's details, as a handler sees them in ``request.tls``.

    Attributes:
        version: the protocol, e.g. ``"TLSv1.3"``.
        cipher: the cipher suite's OpenSSL name, e.g. ``"TLS_AES_256_GCM_SHA384"``.
        cipher_suite: its number (IANA's registry: ``0x1302``), if known.
        client_cert: the client's certificate as Python's ``ssl`` decodes a
            verified one (``subject``, ``issuer``, ``notAfter``, ...); None
            when the client sent none (``ssl_cert_reqs`` 0 asks for none).
        client_cert_chain: the client's certificate (PEM) first, then those it
            sent with it (Python 3.13 on; before, the client's own only).
        client_cert_name: its subject, as RFC 4514 writes it (``CN=alice,O=Example``).
        server_cert: the server's certificate (PEM), as the server's TLS context
            serves it (None if a handshake in memory, at start, could not tell).
    """

    version: str | None
    cipher: str | None
    cipher_suite: int | None = None
    client_cert: dict[str, Any] | None = None
    client_cert_chain: tuple[str, ...] = ()
    client_cert_name: str | None = None
    server_cert: str | None = None

    @property
    def version_number(self) -> int | None:
        """The protocol version as on the wire (``0x0304`` for TLS 1.3)."""
        return TLS_VERSIONS.get(self.version or "")

    def asgi(self) -> dict[str, Any]:
        """``scope["extensions"]["tls"]``, as the ASGI TLS extension defines it."""
        return {
            "server_cert": self.server_cert,
            "client_cert_chain": list(self.client_cert_chain),
            "client_cert_name": self.client_cert_name,
            # (A certificate that fails verification fails the handshake: no connection.)
            "client_cert_error": None,
            "tls_version": self.version_number,
            "cipher_suite": self.cipher_suite,
        }


# RFC 4514 3: the attribute types written by a short name (Python's ssl gives
# OpenSSL's long names); others are written as their OID, in dotted decimal.
_SHORT_NAMES = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
# RFC 4514 2.4: escaped wherever they are in a value.
_SPECIAL = {ch: "\\" + ch for ch in '\\"+,;<>'}
_SPECIAL["\0"] = "\\00"


def rfc4514(
    subject: tuple[tuple[tuple[str, str | bytes], ...], ...],
    oid_of: Callable[[str], str | None] = lambda name: None,
) -> str:
    """The distinguished name ``subject`` (``getpeercert()["subject"]``: its
    relative names in the certificate's order) as an RFC 4514 string: the
    last relative name first, a multi-valued one's parts joined by ``+``.

    ``oid_of`` gives the OID of an attribute type by the name ``ssl`` gives
    it (OpenSSL's long name), for the types RFC 4514 has no short name for;
    None: the name is written (ssl gives an unknown type by its OID).
    """
    return ",".join(
        "+".join(f"{_attribute_type(name, oid_of)}={_escaped(value)}" for name, value in rdn)
        for rdn in reversed(subject)
    )


def _attribute_type(name: str, oid_of: Callable[[str], str | None]) -> str:
    return _SHORT_NAMES.get(name) or oid_of(name) or name


def _escaped(value: str | bytes) -> str:
    if isinstance(value, bytes):  # (no string form, a BIT STRING's: ssl gives its bytes)
        return "#" + value.hex()
    text = "".join(_SPECIAL.get(ch, ch) for ch in value)
    if text[:1] in ("#", " "):
        text = "\\" + text
    if len(value) > 1 and value[-1] == " ":
        text = text[:-1] + "\\ "
    return text


# ------------------------------------------------------ a certificate's validity

#: DER tags (X.690): SEQUENCE, INTEGER, a version's [0], UTCTime, GeneralizedTime.
_SEQUENCE, _INTEGER, _VERSION, _UTC_TIME, _GENERALIZED_TIME = 0x30, 0x02, 0xA0, 0x17, 0x18


def validity(der: bytes) -> tuple[datetime, datetime] | None:
    """When the X.509 certificate ``der`` (DER) is valid: its ``notBefore`` and
    ``notAfter`` (RFC 5280 4.1.2.5), in UTC; None if they cannot be read."""
    try:
        _, certificate = _element(der, 0, _SEQUENCE)
        _, tbs = _element(der, certificate, _SEQUENCE)  # (TBSCertificate)
        if der[tbs] == _VERSION:
            tbs = _element(der, tbs, _VERSION)[0]
        tbs = _element(der, tbs, _INTEGER)[0]  # serialNumber
        tbs = _element(der, tbs, _SEQUENCE)[0]  # signature
        tbs = _element(der, tbs, _SEQUENCE)[0]  # issuer
        _, times = _element(der, tbs, _SEQUENCE)  # validity
        at, not_before = _time(der, times)
        return not_before, _time(der, at)[1]
    except (IndexError, ValueError):
        return None


def _element(der: bytes, at: int, tag: int) -> tuple[int, int]:
    """The DER element at ``at``, which must have ``tag``: (where the next
    element starts, where its content starts)."""
    if der[at] != tag:
        raise ValueError(f"tag {der[at]:#x} at {at}, not {tag:#x}")
    length, at = der[at + 1], at + 2
    if length & 0x80:  # (the long form: that many bytes of length follow)
        size = length & 0x7F
        if not 0 < size <= 4:
            raise ValueError("a length of no or too many bytes")
        length, at = int.from_bytes(der[at : at + size], "big"), at + size
    if at + length > len(der):
        raise ValueError("an element past the end")
    return at + length, at


def _time(der: bytes, at: int) -> tuple[int, datetime]:
    """The UTCTime or GeneralizedTime at ``at`` (RFC 5280 4.1.2.5.1-2: in UTC,
    ending in Z, with seconds): (where the next element starts, the time)."""
    tag = der[at]
    end, start = _element(der, at, tag)
    text = der[start:end].decode("ascii")
    if tag == _UTC_TIME:
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != _GENERALIZED_TIME:
        raise ValueError(f"tag {tag:#x} at {at} is no time")
    if len(text) != 15 or not text[:14].isdigit() or text[14] != "Z":
        raise ValueError(f"{text!r} is not a time as RFC 5280 writes it")
    parsed = datetime.strptime(text[:14], "%Y%m%d%H%M%S")
    return end, parsed.replace(tzinfo=UTC)
