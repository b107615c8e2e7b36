"""What a TLS connection is, as plain data (:class:`TLSInfo`, ``request.tls``), and
the ASGI TLS extension's dictionary made from it (asgiref's ``specs/tls.rst``).

Sans-I/O: the server reads the values off its TLS transport; this only holds
and converts them. :func:`rfc4514` writes a certificate's subject, as
Python's ``ssl`` gives it, as the one-line distinguished name of RFC 4514.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["TLS_VERSIONS", "TLSInfo", "rfc4514"]

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
