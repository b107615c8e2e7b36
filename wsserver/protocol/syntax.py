"""HTTP's shared syntax (RFC 9110 section 5.6), each piece defined once.

Every parser and checker in wsserver that reads or writes a token or trims
optional whitespace takes it from here: header names (:mod:`.http`),
extension parameters (:mod:`.deflate`), cookie names (:mod:`.cookies`), the
media types and parameters of form bodies (``wsserver.app.forms``); and the
quoted values of extension parameters and of ``Forwarded`` (:mod:`.proxy`).
"""

from __future__ import annotations

import re

__all__ = ["OWS", "QUOTED", "TOKEN", "TOKEN_RE", "unquote"]

#: Optional whitespace (5.6.3): the only characters HTTP trims around a field
#: value or a list element. (``str.strip()`` would also trim characters such
#: as ``\x1c``-``\x1f``, ``\x85`` and ``\xa0``.)
OWS = " \t"

#: A token (5.6.2): one or more tchars. The pattern's text, to build larger
#: patterns from; :data:`TOKEN_RE` is it compiled.
TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
TOKEN_RE = re.compile(TOKEN)

#: A quoted-string (5.6.4), its quoted pairs (a backslash and any character)
#: in it. The pattern's text, to build larger patterns from. Possessive (what
#: it matches is the same): one that does not close is given up at the end
#: of the text, its characters not tried again.
QUOTED = r'"(?:[^"\\]|\\.)*+"'

_QUOTED_PAIR = re.compile(r"\\(.)", re.S)


def unquote(quoted: str) -> str:
    """The text of a quoted-string (:data:`QUOTED`, given with its quotes),
    its quoted pairs undone."""
    return _QUOTED_PAIR.sub(r"\1", quoted[1:-1])
