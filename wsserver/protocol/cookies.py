"""Set-Cookie headers, sans-I/O (RFC 6265 section 4.1, and the attributes browsers add).

:func:`set_cookie_value` makes the value of one ``Set-Cookie`` header, and
refuses what would not reach the browser as given: a name that is no token, a
value with characters RFC 6265 leaves out of a cookie (a space, ``"``, ``,``,
``;``, ``\\``, controls, non-ASCII: encode such a value first, with
``urllib.parse.quote`` say), a name and value of over 4096 characters, a
Path that does not start with ``/`` or would end early, a Domain that is no
host name, ``SameSite=None`` or ``Partitioned`` without ``Secure``, and a
``__Secure-``, ``__Host-``, ``__Http-`` or ``__Host-Http-`` name without what
browsers ask of it (the last two, ``Secure`` and ``HttpOnly``: Chromium 140,
Firefox 142): browsers would drop or change each of them.
:class:`CookieSetting` gives the responses that carry headers their
``set_cookie()`` and ``delete_cookie()``.
"""

from __future__ import annotations

import datetime
import email.utils
import re
from typing import Literal, TypedDict, Unpack

from .syntax import TOKEN_RE

__all__ = ["CookieAttributes", "CookieScope", "CookieSetting", "SameSite", "set_cookie_value"]

#: Any case is taken (as the attribute is spelled, "Lax", too), and ``None`` sends none.
SameSite = Literal["lax", "strict", "none", "Lax", "Strict", "None"]

#: cookie-octet (RFC 6265 4.1.1): visible ASCII but DQUOTE , ; and backslash.
_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
#: What a Path may hold (RFC 6265 4.1.1: any CHAR but controls and ``;``),
#: starting with ``/`` (5.2.4: another is ignored).
_PATH = re.compile(r"/[\x20-\x3a\x3c-\x7e]*")
#: A Domain: a host name's letters, digits, dots and hyphens (an IDN in its
#: ASCII form), a leading dot allowed (and ignored by browsers).
_DOMAIN = re.compile(r"\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
#: What browsers keep at most: a name and value together, an attribute's
#: value (RFC 6265bis 5.6: beyond them the cookie, or the attribute, is dropped).
MAX_PAIR = 4096
MAX_ATTRIBUTE = 1024
#: A deleted cookie's Expires: long past.
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _cookie_moment(expires: datetime.datetime) -> datetime.datetime:
    """``expires`` in UTC (naive: UTC already) as a cookie may say it: a moment
    before 1601 is the epoch (RFC 6265 5.1.1: browsers read a year under 1601
    as another, 30 as 2030), one past datetime's ends in UTC its first or its
    last (both as much in the past, or to come, as the cookie meant)."""
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=datetime.UTC)
    try:
        moment = expires.astimezone(datetime.UTC)
    except OverflowError:  # (within a day of year 1, or of 9999's end)
        if expires.year > 1:
            return datetime.datetime.max.replace(microsecond=0, tzinfo=datetime.UTC)
        moment = _EPOCH
    return _EPOCH if moment.year < 1601 else moment


def set_cookie_value(
    name: str,
    value: str = "",
    *,
    max_age: int | None = None,
    expires: datetime.datetime | None = None,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = False,
    samesite: SameSite | None = "lax",
    partitioned: bool = False,
) -> str:
    """The value of a ``Set-Cookie`` header that sets cookie ``name`` to ``value``.

    Args:
        max_age: seconds the cookie lives (0 or less: it is gone at once);
            None, with no ``expires``, makes a session cookie.
        expires: when it ends (a naive datetime is taken as UTC).
        path: the paths it is sent for, from ``/`` (None leaves it to the
            browser: the request's directory).
        domain: a domain whose hosts all get it (this host's own, or a
            parent of it, ``example.com`` for ``app.example.com``); None keeps
            it to this host alone.
        secure: sent over HTTPS (and WSS) only.
        httponly: hidden from the page's scripts.
        samesite: ``"lax"`` (the default, as browsers'), ``"strict"``,
            ``"none"`` (with ``secure``), in any case (``"Strict"``, as the
            attribute is spelled), or None to send no attribute.
        partitioned: kept per top-level site (CHIPS; with ``secure``).

    Raises:
        ValueError: what cannot be sent as given (see the module's docstring).
    """
    if not isinstance(name, str) or TOKEN_RE.fullmatch(name) is None:
        raise ValueError(f"a cookie's name is a token (RFC 9110 5.6.2), not {name!r}")
    if not isinstance(value, str) or _VALUE.fullmatch(value) is None:
        raise ValueError(
            f"cookie {name!r}: its value may hold visible ASCII but space, '\"', ',', ';' "
            f"and '\\' (RFC 6265 4.1.1): encode {value!r} first (urllib.parse.quote, say)"
        )
    lowered = name.lower()
    if lowered.startswith("__secure-") and not secure:
        raise ValueError(f"cookie {name!r}: __Secure- needs secure=True (browsers drop it)")
    if lowered.startswith("__host-") and (not secure or path != "/" or domain is not None):
        raise ValueError(
            f"cookie {name!r}: __Host- needs secure=True, path='/' and no domain (browsers drop it)"
        )
    if lowered.startswith(("__http-", "__host-http-")) and not (secure and httponly):
        prefix = "__Host-Http-" if lowered.startswith("__host-") else "__Http-"
        raise ValueError(
            f"cookie {name!r}: {prefix} needs secure=True and httponly=True (browsers drop it)"
        )
    if len(name) + len(value) > MAX_PAIR:
        raise ValueError(
            f"cookie {name!r}: its name and value hold over {MAX_PAIR} characters "
            "(browsers drop it)"
        )
    parts = [f"{name}={value}"]
    if max_age is not None:
        if isinstance(max_age, bool) or not isinstance(max_age, int):
            raise ValueError(f"cookie {name!r}: max_age is whole seconds, not {max_age!r}")
        parts.append(f"Max-Age={max_age}")
    if expires is not None:
        if not isinstance(expires, datetime.datetime):
            raise ValueError(f"cookie {name!r}: expires is a datetime, not {expires!r}")
        parts.append(f"Expires={email.utils.format_datetime(_cookie_moment(expires), usegmt=True)}")
    for attribute, given, form in (("Domain", domain, _DOMAIN), ("Path", path, _PATH)):
        if given is None:
            continue
        if not isinstance(given, str) or form.fullmatch(given) is None:
            raise ValueError(f"cookie {name!r}: {attribute} cannot be {given!r}")
        if len(given) > MAX_ATTRIBUTE:
            raise ValueError(
                f"cookie {name!r}: a {attribute} of over {MAX_ATTRIBUTE} characters "
                "(browsers ignore it)"
            )
        parts.append(f"{attribute}={given}")
    if secure:
        parts.append("Secure")
    if httponly:
        parts.append("HttpOnly")
    if samesite is not None:
        policy = samesite.lower() if isinstance(samesite, str) else samesite
        if policy not in ("lax", "strict", "none"):
            raise ValueError(
                f"cookie {name!r}: samesite is 'lax', 'strict', 'none' (in any case) or None, "
                f"not {samesite!r}"
            )
        if policy == "none" and not secure:
            raise ValueError(f"cookie {name!r}: SameSite=None needs secure=True (browsers drop it)")
        parts.append(f"SameSite={policy.capitalize()}")
    if partitioned:
        if not secure:
            raise ValueError(f"cookie {name!r}: Partitioned needs secure=True (browsers drop it)")
        parts.append("Partitioned")
    return "; ".join(parts)


class CookieScope(TypedDict, total=False):
    """Where a cookie goes and who sees it: :func:`set_cookie_value`'s keyword
    arguments, but its lifetime."""

    path: str | None
    domain: str | None
    secure: bool
    httponly: bool
    samesite: SameSite | None
    partitioned: bool


class CookieAttributes(CookieScope, total=False):
    """Every keyword argument of :func:`set_cookie_value`."""

    max_age: int | None
    expires: datetime.datetime | None


class CookieSetting:
    """``set_cookie()`` and ``delete_cookie()`` for a response with a ``headers`` list."""

    __slots__ = ()
    headers: list[tuple[str, str]]

    def set_cookie(
        self, name: str, value: str = "", **attributes: Unpack[CookieAttributes]
    ) -> None:
        """Add a ``Set-Cookie`` header: ``max_age``, ``expires``, ``path="/"``,
        ``domain``, ``secure``, ``httponly``, ``samesite="lax"``, ``partitioned``
        as :func:`set_cookie_value` takes them.

        Raises:
            ValueError: what cannot be sent as given: a name that is no token,
                a value with a space, ``"``, ``,``, ``;``, ``\\``, a control or
                non-ASCII (encode it first), ``samesite="none"`` or
                ``partitioned`` without ``secure``, a prefixed name
                (``__Secure-``, ``__Host-``, ``__Http-``, ``__Host-Http-``)
                without what it needs.
        """
        self.headers.append(("Set-Cookie", set_cookie_value(name, value, **attributes)))

    def delete_cookie(self, name: str, **scope: Unpack[CookieScope]) -> None:
        """Add a ``Set-Cookie`` header that ends cookie ``name`` (``Max-Age=0``, an
        ``Expires`` long past). ``path``, ``domain`` and ``partitioned`` must be
        those it was set with (a browser keeps a cookie per name, path and
        domain, and a partitioned one apart), and a ``__Secure-`` or ``__Host-``
        name needs ``secure=True`` here too (an ``__Http-`` or ``__Host-Http-``
        one, ``httponly=True`` as well)."""
        self.set_cookie(name, max_age=0, expires=_EPOCH, **scope)
