"""Behind a proxy: the client's address and scheme, from headers sent by trusted proxies only.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are read when the proxy sent
them (nginx, most proxies), else ``Forwarded`` (RFC 7239): never both, so a
``Forwarded`` header a client wrote itself does not win over what the proxy
added. Each proxy appends the address it received the request from, so the
list is read from the right: addresses of trusted proxies are skipped, and the
first one that is not trusted is the client (anything to its left could have
been written by the client itself); only the last :data:`MAX_HOPS` are read.
With ``*`` every peer is trusted but only the last hop is believed (the
address the nearest proxy saw). Nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

from .http import Headers
from .proxy_protocol import address_text
from .syntax import OWS, QUOTED, unquote

__all__ = ["MAX_HOPS", "Forwarded", "TrustedProxies", "forwarded"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The most hops read from the right of a forwarding header, each checked
#: against the trusted proxies. No chain of proxies is that long: what is to
#: the left is a client's own text, and a client behind a trusted proxy that
#: wrote a trusted address 1,300 times (a 16 KB head) cost a request some
#: 12 ms of the event loop, one check an address.
MAX_HOPS = 32


class TrustedProxies:
    """The peers whose forwarding headers are believed.

    Args:
        spec: ``"*"`` (any peer), or a comma-separated list of addresses,
            networks and ``unix`` (peers on a Unix socket, which have no
            address), such as ``"127.0.0.1, 10.0.0.0/8, unix"``.

    Raises:
        ValueError: an entry is neither an address, a network nor ``unix``.
    """

    __slots__ = ("everyone", "networks", "unix")

    def __init__(self, spec: str) -> None:
        self.everyone = spec.strip() == "*"
        self.unix = self.everyone
        self.networks: list[Network] = []
        if not self.everyone:
            for item in spec.split(","):
                item = item.strip()
                if item == "unix":
                    self.unix = True
                elif item:
                    self.networks.append(ipaddress.ip_network(item, strict=False))

    def __contains__(self, host: object) -> bool:
        """Whether a peer (its address; None for a Unix socket's) is trusted."""
        if host is None:
            return self.unix
        if self.everyone:
            return True
        if not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        # An IPv4 peer of a dual-stack socket is IPv4-mapped (::ffff:10.0.0.2):
        # the same address to either kind of entry.
        if isinstance(address, ipaddress.IPv6Address):
            forms: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = (
                (address,) if address.ipv4_mapped is None else (address, address.ipv4_mapped)
            )
        else:
            forms = (address, ipaddress.IPv6Address(f"::ffff:{address}"))
        return any(form in network for network in self.networks for form in forms)


#: The schemes a proxy may say the client used (a WebSocket's or its HTTP twin).
_SCHEMES = ("http", "https", "ws", "wss")


class Forwarded(NamedTuple):
    """What the proxies said: the client's ``(host, port)`` (port 0 if not said) and scheme."""

    client: tuple[str, int] | None
    scheme: str | None


def forwarded(headers: Headers, trusted: TrustedProxies) -> Forwarded:
    """The client and scheme the forwarding headers give (None where they say nothing).

    Call it only for a request whose peer is in ``trusted``.
    """
    if "forwarded" in headers and "x-forwarded-for" not in headers:
        return _rfc7239(headers, trusted)
    client = None
    hops = [h.strip(OWS) for v in headers.getall("x-forwarded-for") for h in v.split(",")]
    hops = [h for h in hops if h]
    if hops:
        client = _address(_pick(hops, trusted))
    scheme = None
    protos = [
        p.strip(OWS).lower() for v in headers.getall("x-forwarded-proto") for p in v.split(",")
    ]
    protos = [p for p in protos if p]  # (an empty list element is none: RFC 9110 5.6.1)
    if protos and protos[-1] in _SCHEMES:
        scheme = protos[-1]
    return Forwarded(client, scheme)


def _pick(hops: list[str], trusted: TrustedProxies) -> str:
    """The rightmost hop that is not a trusted proxy, among the last
    :data:`MAX_HOPS` (the leftmost if those all are, as if all were).

    Trusting everyone (``*``) believes the last hop only.
    """
    if trusted.everyone:
        return hops[-1]
    for hop in reversed(hops[-MAX_HOPS:]):
        if _split_host(hop)[0] not in trusted:
            return hop
    return hops[0]


def _split_host(value: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port or 0)."""
    value = value.strip('"')
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""  # a bare IPv6 address, or no port
    if not (len(port) <= 5 and port.isascii() and port.isdigit() and int(port) <= 65535):
        return host, 0  # (str.isdigit() takes "²" too, and int() refuses 4,301 digits)
    return host, int(port)


def _rfc7239(headers: Headers, trusted: TrustedProxies) -> Forwarded:
    """``Forwarded: for=...;proto=..., for=...``: the element of the first untrusted
    hop, among the last :data:`MAX_HOPS` (see :func:`_pick`).

    Each parameter is optional (RFC 7239 4): an element without ``for`` (a
    proxy that says the scheme, not the client) ends the walk, its proxy's
    client unknown: its ``proto`` holds, and nothing to its left is believed.
    """
    # (Each element is read only if the walk comes to it: the client's own
    # text to the left may be thousands of them.)
    texts = [
        text
        for value in headers.getall("forwarded")
        for text in _split_unquoted(value, ",")
        if "=" in text  # (an element with no pair in it is none)
    ]
    if not texts:
        return Forwarded(None, None)
    chosen: dict[str, str]
    if trusted.everyone:
        chosen = _pairs(texts[-1])
    else:
        for text in reversed(texts[-MAX_HOPS:]):
            element = _pairs(text)
            hop = element.get("for")
            if hop is None or _split_host(hop)[0] not in trusted:
                chosen = element
                break
        else:  # (The last MAX_HOPS all trusted: the leftmost, as if all were.)
            chosen = _pairs(texts[0])
    hop = chosen.get("for")
    proto = chosen.get("proto", "").lower()
    return Forwarded(
        _address(hop) if hop is not None else None, proto if proto in _SCHEMES else None
    )


def _pairs(text: str) -> dict[str, str]:
    """An element's parameters, ``for=...;proto=...``: names in lowercase,
    values unquoted (a name said twice: the last)."""
    pairs: dict[str, str] = {}
    for pair in _split_unquoted(text, ";"):
        name, sep, content = pair.partition("=")
        if sep:
            pairs[name.strip(OWS).lower()] = _unquoted(content.strip(OWS))
    return pairs


#: The start of a text up to its first quote that does not close: runs of
#: anything but a quote, and quoted-strings (RFC 9110 5.6.4, their backslash
#: escapes in them). Possessive, each character looked at once: the quote
#: that does not close is followed to the end once, and no quote after it
#: closes (each is escaped on that reading, which is back in step after it).
_CLOSED = re.compile(rf'(?:[^"]++|{QUOTED})*+', re.S)

#: An element (or a pair) of a text whose quotes all close: runs of anything
#: but a quote and the separator, and quoted-strings; then the separator, or
#: the end.
_PIECES = {
    separator: re.compile(rf'((?:[^"{separator}]++|{QUOTED})*+)(?:{separator}|\Z)', re.S)
    for separator in ",;"
}


def _split_unquoted(text: str, separator: str) -> list[str]:
    """``text`` split at each ``separator`` (``,`` or ``;``) that is not inside
    a quoted-string (RFC 7239 4: a value may be one, ``host="a,b;c"``).

    A quote that does not close is a character as others: it hides none of
    the separators after it (such as those of the elements a proxy appended
    to a client's text). In time linear in the text's length, whatever it
    holds (each unclosed quote had the rest read again: seconds for 16 KB).
    """
    if '"' not in text:
        return text.split(separator)
    closed = _CLOSED.match(text).end()  # type: ignore[union-attr]
    head = text[:closed]
    parts = _PIECES[separator].findall(head) if head else [""]
    if head and not head.endswith(separator):
        parts.pop()  # (the empty match at the end)
    if closed < len(text):
        rest = text[closed:].split(separator)
        parts[-1] += rest[0]
        parts.extend(rest[1:])
    return parts


def _unquoted(content: str) -> str:
    """A parameter's value: a quoted-string's text, its escapes undone; else as it is."""
    if len(content) >= 2 and content[0] == content[-1] == '"':
        return unquote(content)
    return content.strip('"')


def _address(hop: str) -> tuple[str, int] | None:
    """A hop's ``(address, port)``; None unless it is an IP address.

    An obfuscated identifier or ``unknown`` (RFC 7239 6.3) is no address,
    nor is whatever else a client wrote (it would go to logs and applications).
    The address is written as a socket gives it (``2001:DB8:0::7`` is
    ``2001:db8::7``): one client, one text, whichever way it came.
    """
    host, port = _split_host(hop)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if getattr(address, "scope_id", None) is not None:
        return None  # (an IPv6 zone: any text after "%", and a local interface's name)
    return address_text(address), port
