"""The PROXY protocol's header, sans-I/O: the client's address, from a load balancer
in front that works on TCP (HAProxy's ``send-proxy``, AWS's Network Load
Balancer, nginx's ``proxy_protocol on`` in its stream module).

Such a proxy opens its own connection to the server and, before anything of
the client's, sends one header naming the client's address: version 1 is a
line of text (``PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\\r\\n``), version 2
a binary block with a 12-byte signature. :func:`parse_proxy_header` reads
either from the first bytes of a connection as they come, as HAProxy's
specification (``proxy-protocol.txt``) asks of a receiver: strictly, the
header whole before anything else, and a connection without one refused.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

__all__ = [
    "MAX_V1",
    "ProxyHeader",
    "ProxyProtocolError",
    "address_text",
    "begins_proxy_header",
    "parse_proxy_header",
    "safe_to_read",
]

V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: The longest version 1 line, its CR LF included (the specification's bound).
MAX_V1 = 107
_V2_FIXED = 16  # the signature, version and command, family, length
#: The shortest version 1 line: ``PROXY UNKNOWN\r\n``.
_MIN_V1 = 15
#: The shortest each field after ``PROXY TCP4 `` and ``PROXY TCP6 `` can be:
#: the addresses (``0.0.0.0``, ``::``), then the ports.
_V1_SHORTEST = {b"TCP4 ": (7, 7, 1, 1), b"TCP6 ": (2, 2, 1, 1)}


class ProxyProtocolError(ValueError):
    """The connection does not start with a valid PROXY protocol header."""


class ProxyHeader(NamedTuple):
    """A header read whole: how many bytes it took, and the client's
    ``(host, port)``; None where the header names none (version 1's
    ``UNKNOWN``, version 2's ``LOCAL`` command, such as a proxy's own health
    check, or an address family other than IPv4 and IPv6). ``tls``: the
    client came to the proxy over TLS (version 2's ``PP2_TYPE_SSL`` with
    its ``PP2_CLIENT_SSL`` flag: HAProxy's ``send-proxy-v2-ssl``)."""

    length: int
    source: tuple[str, int] | None
    tls: bool = False


def parse_proxy_header(data: bytes | bytearray) -> ProxyHeader | None:
    """Read the PROXY protocol header at the start of ``data``; None if more is needed.

    Raises:
        ProxyProtocolError: ``data`` does not start with a header of either
            version, or the header is malformed.
    """
    if data[:12] == V2_SIGNATURE:
        return _v2(data)
    if data[:6] == V1_PREFIX:
        return _v1(data)
    start = bytes(data[:12])
    if V2_SIGNATURE.startswith(start) or V1_PREFIX.startswith(start[:6]):
        return None  # (so far, the start of one)
    raise ProxyProtocolError("no PROXY protocol header")


def begins_proxy_header(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data``, the first bytes of a connection, begin a PROXY protocol
    header of either version (what a balancer sends first, wanted or not)."""
    return data[:6] == V1_PREFIX or data[:12] == V2_SIGNATURE


def safe_to_read(data: bytes | bytearray) -> int:
    """How many more bytes may be read after ``data`` (the connection's start
    so far, no header whole in it yet) without reading past the header's end;
    at least 1.

    For a connection whose next bytes must go elsewhere untouched (a TLS
    handshake that follows the header): version 2 says its length; of a
    version 1 line, what its fields still to come take at the least (an IPv4
    address 7 characters, an IPv6 one 2, a port 1, each after a space), then
    two bytes at a time (one after a CR), so that its CR LF is met exactly.
    """
    if data[:1] == V2_SIGNATURE[:1]:
        if len(data) < _V2_FIXED:
            return _V2_FIXED - len(data)
        return max(1, _V2_FIXED + int.from_bytes(data[14:16], "big") - len(data))
    if len(data) < _MIN_V1:
        return _MIN_V1 - len(data)
    if data[-1:] == b"\r":
        return 1
    shortest = _V1_SHORTEST.get(bytes(data[6:11]))
    if shortest is None or b"\r" in data:  # UNKNOWN (anything may follow), or malformed
        return 2
    fields = bytes(data[11:]).split(b" ")  # (the last one still being read)
    if len(fields) > len(shortest):
        return 1  # (malformed: the parser says so once it has the line)
    current = len(fields) - 1
    wanted = max(0, shortest[current] - len(fields[-1]))
    wanted += sum(length + 1 for length in shortest[current + 1 :])
    return wanted + 2  # (CR LF)


def _v1(data: bytes | bytearray) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, MAX_V1)
    if end < 0:
        if len(data) >= MAX_V1 or b"\n" in data[:MAX_V1]:
            raise ProxyProtocolError("a version 1 header's line is too long or not ended by CR LF")
        return None
    try:
        line = bytes(data[:end]).decode("ascii")
    except UnicodeDecodeError:
        raise ProxyProtocolError("a version 1 header that is not ASCII") from None
    fields = line.split(" ")
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        return ProxyHeader(end + 2, None)  # (what follows UNKNOWN is to be ignored)
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyProtocolError(f"a malformed version 1 header: {line[:MAX_V1]!r}")
    version = 4 if fields[1] == "TCP4" else 6
    source = _address(fields[2], version)
    _address(fields[3], version)
    port = _port(fields[4])
    _port(fields[5])
    return ProxyHeader(end + 2, (source, port))


def _address(text: str, version: int) -> str:
    try:
        address = ipaddress.ip_address(text) if "%" not in text else None
    except ValueError:
        address = None
    if address is None or address.version != version:
        raise ProxyProtocolError(f"not an IPv{version} address: {text!r}")
    return address_text(address)


def address_text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An address as a socket's peer name gives it, in one form whatever
    spelling it came in (lower case, zeros left out): an IPv4-mapped IPv6
    address with its IPv4 part dotted (``::ffff:203.0.113.7``; Python
    before 3.13 writes it in hex). :mod:`.proxy` writes the addresses of
    forwarding headers so too."""
    mapped = getattr(address, "ipv4_mapped", None)
    return f"::ffff:{mapped}" if mapped is not None else str(address)


def _port(text: str) -> int:
    # Decimal, 0 to 65535, without a sign or a leading zero.
    if not (text.isdigit() and text.isascii()) or len(text) > 5 or (text[0] == "0" and text != "0"):
        raise ProxyProtocolError(f"not a port: {text!r}")
    port = int(text)
    if port > 0xFFFF:
        raise ProxyProtocolError(f"not a port: {text!r}")
    return port


def _v2(data: bytes | bytearray) -> ProxyHeader | None:
    if len(data) < _V2_FIXED:
        return None
    version_command, family = data[12], data[13]
    length = _V2_FIXED + int.from_bytes(data[14:16], "big")
    if version_command >> 4 != 2:
        raise ProxyProtocolError(f"a version 2 signature with version {version_command >> 4}")
    command = version_command & 0x0F
    if command > 1:
        raise ProxyProtocolError(f"a version 2 header's unknown command {command}")
    if len(data) < length:
        return None
    if command == 0:  # LOCAL: the proxy's own connection (a health check)
        return ProxyHeader(length, None)
    if family not in _FAMILIES:
        raise ProxyProtocolError(f"a version 2 header's unknown address family 0x{family:02x}")
    body = bytes(data[_V2_FIXED:length])
    size = _FAMILIES[family]
    if len(body) < size:
        raise ProxyProtocolError("a version 2 header too short for its addresses")
    tls = _client_tls(body, size)
    if family >> 4 == 1:  # AF_INET
        host = address_text(ipaddress.IPv4Address(body[0:4]))
        return ProxyHeader(length, (host, int.from_bytes(body[8:10], "big")), tls)
    if family >> 4 == 2:  # AF_INET6
        host = address_text(ipaddress.IPv6Address(body[0:16]))
        return ProxyHeader(length, (host, int.from_bytes(body[32:34], "big")), tls)
    return ProxyHeader(length, None, tls)  # UNSPEC, or AF_UNIX: no address to give


#: The address families and transports version 2 has (the others "must be
#: rejected"), and how many bytes their addresses take.
_FAMILIES = {0x00: 0, 0x11: 12, 0x12: 12, 0x21: 36, 0x22: 36, 0x31: 216, 0x32: 216}
_PP2_TYPE_SSL = 0x20
_PP2_CLIENT_SSL = 0x01


def _client_tls(body: bytes, start: int) -> bool:
    """Whether the TLVs after the addresses say the client came over TLS.

    TLVs are extra information: one that runs past the header's end ends
    the reading of them (the addresses still count), rather than the
    connection.
    """
    tls = False
    position, end = start, len(body)
    while end - position >= 3:
        kind = body[position]
        value_end = position + 3 + int.from_bytes(body[position + 1 : position + 3], "big")
        if value_end > end:
            break
        if kind == _PP2_TYPE_SSL and value_end > position + 3:
            tls = bool(body[position + 3] & _PP2_CLIENT_SSL)
        position = value_end
    return tls
