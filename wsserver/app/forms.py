"""Form bodies: URL-encoded and ``multipart/form-data`` (RFC 7578).

``parse_form(content_type, body, max_parts)`` gives the fields (text) and
the files of a request body that a browser's ``<form>`` (or a webhook) sent;
``request.form`` and ``request.files`` are made with it. Its multipart
parser, :class:`MultipartParser`, reads a body whole or in pieces as they
come (``request.multipart()``, :mod:`wsserver.app.multipart`).
``encode_form()`` makes such a body (the test client's ``data=`` and
``files=``). A body that does not parse raises
:class:`~wsserver.errors.BadRequest` (a ``400``). No I/O: bytes in, fields,
files or events out, and every step here is linear in the body's size.
"""

from __future__ import annotations

import codecs
import encodings
import encodings.aliases
import functools
import pkgutil
import re
import sys
import uuid
from collections.abc import Iterable
from typing import Any, Generic, NamedTuple, TypeVar, overload
from urllib.parse import urlencode

from ..errors import BadRequest
from ..protocol.syntax import TOKEN, TOKEN_RE
from .ported import say_instead

__all__ = [
    "MAX_PARTS",
    "PART_END",
    "FieldPart",
    "MultiValues",
    "MultipartParser",
    "PartHead",
    "UploadedFile",
    "charset_of_field",
    "decode_field",
    "encode_form",
    "is_boundary",
    "media_type",
    "parse_form",
]

#: The ``max_form_parts`` setting's default (a Request made by hand has it too).
MAX_PARTS = 1000


_V = TypeVar("_V")
_T = TypeVar("_T")


class MultiValues(dict[str, list[_V]], Generic[_V]):
    """Names with their values in order: ``.get(name)`` gives the first, ``[name]`` all.

    Typed by what the values are: ``MultiValues[str]`` for query arguments and
    form fields, ``MultiValues[UploadedFile]`` for a form's files.
    """

    @overload  # type: ignore[override]  # (dict's get() gives the list)
    def get(self, name: str) -> _V | None: ...
    @overload
    def get(self, name: str, default: _V | _T) -> _V | _T: ...
    def get(self, name: str, default: Any = None) -> Any:
        """The first value of ``name``, or ``default``."""
        values = super().get(name)
        return values[0] if values else default

    @overload
    def getlist(self, name: str) -> list[_V]: ...
    @overload
    def getlist(self, name: str, default: _T) -> list[_V] | _T: ...
    def getlist(self, name: str, default: Any = None) -> Any:
        """Every value of ``name``; when absent, ``default`` if given (as in
        Sanic: ``getlist("tag", [])``), else an empty list."""
        values = super().get(name)
        if values is None:
            return [] if default is None else default
        return list(values)


class UploadedFile(NamedTuple):
    """A file a multipart form carried (``request.files``).

    Attributes:
        filename: the name the client gave it (may be empty: an empty file
            input), as sent: never use it as a path without cleaning it.
        content_type: its ``Content-Type`` (``application/octet-stream`` when
            the client gave none).
        body: its bytes.
        headers: the part's own headers, lowercase names, in order.
    """

    filename: str
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


# (A handler ported from Sanic, whose File(type, body, name) it reads, is told.)
say_instead(
    UploadedFile,
    {
        "name": "UploadedFile.name: Sanic's File.name is filename here",
        "type": "UploadedFile.type: Sanic's File.type is content_type here",
    },
)


class FieldPart(NamedTuple):
    """A part without a filename for :func:`encode_form` to write among the
    files, in its place: a form field, with a ``Content-Type`` and headers of
    its own when given (httpx's ``(None, value, type, headers)``, JSON beside a
    file, say; RFC 7578 4.4 allows a type on any part).

    Attributes:
        body: its bytes.
        content_type: its ``Content-Type``, or None for none.
        headers: its own headers (lowercase names), after its ``Content-Type``.
    """

    body: bytes
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"

# RFC 9110 5.6.4 (quoted-string, with its quoted pairs).
# A quoted value ends at the first quote that ends the parameter: browsers
# send a name's or file name's quote as %22 and its backslash as it is
# (WHATWG HTML), others \" and \\ (RFC 9110's quoted pairs): both read right,
# a file name ending in a backslash too.
_PARAM = re.compile(rf'[ \t]*+;[ \t]*+({TOKEN})[ \t]*+=[ \t]*+(")?')
_QUOTED_END = re.compile(r'"[ \t]*+(?=;|\Z)')
_MEDIA = re.compile(rf"[ \t]*+({TOKEN}/{TOKEN}|{TOKEN})[ \t]*+")
_QUOTED_PAIR = re.compile(r'\\([\\"])')
# RFC 8187: charset'language'percent-encoded.
_EXT_VALUE = re.compile(r"([!#$%&+^_`{}~0-9A-Za-z-]+)'[^']*'(.*)", re.S)
_PERCENT_HEX = re.compile(rb"%(?=[0-9A-Fa-f]{2})")
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,./:=? -]{0,69}[0-9A-Za-z'()+_,./:=?-]")
# What a value's parameters and a part's headers are read to: a browser sends
# two or three of each; a Python step per ';' or per header line of a 1 MiB
# body took 200-400 ms (and 50 MiB for its header tuples).
_MAX_PARAMS = 32
_MAX_PART_HEADERS = 32


def media_type(value: str) -> tuple[str, dict[str, str]]:
    """A ``Content-Type`` (or ``Content-Disposition``) value: its lowercase type
    and its parameters (lowercase names; quoted values unquoted).

    An unquoted value runs to the next ``;`` (its trailing whitespace
    dropped), as a browser's MIME type parser (WHATWG) and Starlette's and
    aiohttp's read it: ``boundary====1733...===``, which Java clients send,
    is read whole, not cut at its first character that a token may not hold.
    A parameter that does not parse is skipped (to the next ``;``), as
    browsers do; a repeated parameter keeps its first value. Linear in the
    length of ``value`` (its quoted values are found without backtracking).
    """
    match = _MEDIA.match(value)
    if match is None:
        return "", {}
    params: dict[str, str] = {}
    pos = match.end()
    for _ in range(_MAX_PARAMS):
        if pos >= len(value):
            break
        param = _PARAM.match(value, pos)
        if param is None:
            pos = value.find(";", pos + 1)
            if pos < 0:
                break
            continue
        name, quote = param.groups()
        if quote:  # at a quoted value's opening quote
            end = _QUOTED_END.search(value, param.end())
            if end is None:
                break  # never closed: what is left is that value
            quoted = value[param.end() : end.start()]
            # (join() of the pieces between quoted pairs and their characters:
            # re.sub() takes ten times as long on a value made of quoted pairs.)
            token = "".join(_QUOTED_PAIR.split(quoted)) if "\\" in quoted else quoted
            pos = end.end()
        else:
            pos = value.find(";", param.end())
            if pos < 0:
                pos = len(value)
            token = value[param.end() : pos].rstrip(" \t")
            if not token:
                continue  # (an empty value: none)
        params.setdefault(name.lower(), token)
    return match.group(1).lower(), params


def is_boundary(value: str) -> bool:
    """Whether ``value`` is a multipart boundary RFC 2046 5.1.1 allows: 1 to 70
    of its characters, the last not a space."""
    return _BOUNDARY.fullmatch(value) is not None


def parse_form(
    content_type: str, body: bytes, max_parts: int
) -> tuple[MultiValues[str], MultiValues[UploadedFile]]:
    """The fields (name -> str values) and files (name -> :class:`UploadedFile`)
    of a form ``body`` sent with ``content_type``; both empty for a body of
    another type.

    Raises:
        BadRequest: the body does not parse as its type says, or has more than
            ``max_parts`` fields and files.
    """
    kind, params = media_type(content_type)
    if not body:
        return MultiValues(), MultiValues()
    if kind == URLENCODED:
        return _urlencoded(body, params.get("charset", "utf-8"), max_parts), MultiValues()
    if kind == MULTIPART:
        return _multipart(body, params.get("boundary"), max_parts, params.get("charset"))
    return MultiValues(), MultiValues()


# The names codecs.lookup() may be asked for: Python's own codecs and aliases,
# normalized. Any other name is UTF-8 without a lookup: the encodings package
# caches every name it is asked for, found or not, for good (a client naming a
# new charset in each part grew the process by its body on every request).
_KNOWN_CODECS = (
    frozenset(encodings.aliases.aliases)
    | frozenset(encodings.aliases.aliases.values())
    | frozenset(module.name for module in pkgutil.iter_modules(encodings.__path__))
) - {"unicode_escape", "raw_unicode_escape"}  # (escapes, not charsets)


def _codec(charset: str) -> str:
    """The text codec named ``charset``; UTF-8 for a name Python does not know,
    and for a codec that is no charset (``hex``, ``base64``, ``rot13``...) or
    cannot replace what it does not decode (``idna``, ``undefined``)."""
    if len(charset) > 64:  # (IANA's longest is 45)
        return "utf-8"
    name = encodings.normalize_encoding(charset).lower()
    if name not in _KNOWN_CODECS:
        name = name.replace(".", "_")
        if name not in _KNOWN_CODECS:
            return "utf-8"
    return _known_codec(name)


@functools.cache  # (bounded: the keys are _KNOWN_CODECS)
def _known_codec(name: str) -> str:
    try:
        name = codecs.lookup(name).name
        b"\x80\xff\x00a".decode(name, "replace")
    except (LookupError, ValueError):  # (UnicodeError is a ValueError)
        return "utf-8"
    return name


@functools.cache  # (bounded: the keys are _known_codec()'s answers)
def _charmap(codec: str) -> str | None:
    """A single-byte codec's table, U+FFFD for the bytes it does not map:
    charmap_decode() with it is C throughout (with errors="replace", each such
    byte took a call of the error handler: 270 ms for 1 MiB of them)."""
    module = sys.modules.get(getattr(codecs.lookup(codec).decode, "__module__", ""))
    table = getattr(module, "decoding_table", None)
    if isinstance(table, str) and len(table) == 256:
        return table.replace("\ufffe", "\ufffd")
    return None


def _decode(raw: bytes, codec: str) -> str:
    table = _charmap(codec)
    if table is not None:
        return codecs.charmap_decode(raw, "strict", table)[0]
    return raw.decode(codec, "replace")


def _urlencoded(body: bytes, charset: str, max_parts: int) -> MultiValues[str]:
    """WHATWG URL's application/x-www-form-urlencoded parser: ``&``-separated
    pairs, ``+`` a space, %XX a byte, decoded in ``charset`` (bytes beyond
    ASCII, which a client should have escaped, are taken as they are)."""
    codec = _codec(charset)
    fields: MultiValues[str] = MultiValues()
    count = 0
    for pair in body.split(b"&"):
        if not pair:
            continue
        count += 1
        if count > max_parts:
            raise BadRequest(f"The form has more than {max_parts} fields.")
        name, _, value = pair.partition(b"=")
        fields.setdefault(_form_decode(name, codec), []).append(_form_decode(value, codec))
    return fields


def _form_decode(raw: bytes, codec: str) -> str:
    return _decode(_percent_decode(raw.replace(b"+", b" ")), codec)


def _percent_decode(raw: bytes) -> bytes:
    """%XX as the byte XX, any other % as it is, with no Python call per
    escape: each %XX becomes a \\xXX (a backslash as \\x5c) that the
    unicode_escape codec reads in C; 64 KiB at a time, for re.sub()'s pieces
    (76 MiB for 1 MiB of %41 at once). re.sub() with a function took
    210-340 ms for that; urllib's unquote() 190 MiB for 1 MiB of %."""
    if b"%" not in raw:
        return raw
    out = []
    start = 0
    while start < len(raw):
        end = start + 65536
        cut = raw.find(b"%", end - 2, end)  # (no %XX split between two pieces)
        if cut > start:
            end = cut
        piece = raw[start:end].replace(b"\\", b"\\x5c")
        out.append(_PERCENT_HEX.sub(rb"\\x", piece).decode("unicode_escape").encode("latin-1"))
        start = end
    return b"".join(out)


def _multipart(
    body: bytes, boundary: str | None, max_parts: int, charset: str | None
) -> tuple[MultiValues[str], MultiValues[UploadedFile]]:
    parser = MultipartParser(boundary, max_parts, charset)
    events = parser.feed(body)
    parser.end()
    raw_fields: list[tuple[str, bytes, str | None]] = []
    files: MultiValues[UploadedFile] = MultiValues()
    default_charset = charset or "utf-8"
    head: PartHead | None = None
    pieces: list[bytes] = []
    for event in events:
        if isinstance(event, bytes):
            pieces.append(event)
            continue
        if isinstance(event, PartHead):
            head = event
            continue
        assert head is not None  # (PART_END)
        content = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        pieces.clear()
        if head.filename is not None:
            content_type = head.content_type or "application/octet-stream"
            files.setdefault(head.name, []).append(
                UploadedFile(head.filename, content_type, content, head.headers)
            )
            continue
        charset = head.charset
        if head.name == "_charset_" and charset is None:
            # RFC 7578 4.6: the charset of the fields that name none.
            default_charset = charset_of_field(content)
        raw_fields.append((head.name, content, charset))
    fields: MultiValues[str] = MultiValues()
    for name, content, charset in raw_fields:
        fields.setdefault(name, []).append(decode_field(content, charset, default_charset))
    return fields, files


def charset_of_field(content: bytes) -> str:
    """The codec a ``_charset_`` field's content names (RFC 7578 4.6)."""
    return _codec(content.decode("ascii", "replace").strip())


def decode_field(content: bytes, charset: str | None, default: str) -> str:
    """A field's text: in its own ``charset``, else in ``default``."""
    return _decode(content, _codec(charset or default))


class PartHead(NamedTuple):
    """A multipart form part's head, as :class:`MultipartParser` gives it.

    Attributes:
        name: its ``Content-Disposition``'s ``name``.
        filename: its file name (``filename*`` before ``filename``); None for
            a field.
        content_type: its ``Content-Type`` as given ("" when it has none).
        headers: its headers, lowercase names, in order.
    """

    name: str
    filename: str | None
    content_type: str
    headers: tuple[tuple[str, str], ...]

    @property
    def charset(self) -> str | None:
        """Its ``Content-Type``'s ``charset``, if it names one."""
        return media_type(self.content_type)[1].get("charset") if self.content_type else None


class _PartEnd:
    __slots__ = ()

    def __repr__(self) -> str:
        return "PART_END"


#: The event that ends a part's content.
PART_END: Any = _PartEnd()

# MultipartParser's states.
_START, _PREAMBLE, _BOUNDARY_LINE, _HEAD, _CONTENT, _DONE = range(6)
# The most of a part's head, and of the padding after a delimiter, waited for.
_MAX_PART_HEAD = 16384
_MAX_PADDING = 1024


class MultipartParser:
    """A ``multipart/form-data`` body (RFC 7578, RFC 2046 5.1.1) read as it
    comes, in pieces of any size: :meth:`feed` gives what each completes, as
    events: a :class:`PartHead`, then the part's content as bytes (none
    empty; as many as the pieces make), then :data:`PART_END`. :meth:`end`
    says the body ended. ``parse_form()`` feeds a whole body at once, so one
    set of rules reads both.

    The preamble, the transport padding after a delimiter and the epilogue
    are skipped. What it holds between pieces is bounded: a delimiter's
    length, a part's head up to 16 KiB, or up to 1 KiB of the padding after
    a delimiter (more is refused, whole or in pieces). A part's header
    values are read in ``charset``, the form's (its ``Content-Type``'s, which
    Java clients send, and Starlette reads) if ASCII is in it, else UTF-8. Raises
    :class:`~wsserver.errors.BadRequest` for a body that does not parse, or
    holds more than ``max_parts`` parts; once raised, the parser is not fed
    again.
    """

    __slots__ = (
        "_codec",
        "_first",
        "_delimiter",
        "_max_parts",
        "_parts",
        "_rest",
        "_seen",
        "_state",
    )

    def __init__(self, boundary: str | None, max_parts: int, charset: str | None = None) -> None:
        if boundary is None or not is_boundary(boundary):
            raise BadRequest("The multipart form has no valid boundary in its Content-Type.")
        codec = _codec(charset) if charset else "utf-8"
        # (Headers are ASCII at heart: a charset that is not, UTF-16's, names
        # the fields' text at most.)
        self._codec = codec if _decode(b'name="a";', codec) == 'name="a";' else "utf-8"
        self._first = b"--" + boundary.encode("ascii")
        self._delimiter = b"\r\n" + self._first
        self._max_parts = max_parts
        self._parts = 0
        self._rest = b""
        #: Bytes of a head still waiting for its end that were searched already.
        self._seen = 0
        self._state = _START

    @property
    def done(self) -> bool:
        """Whether the close delimiter came (what follows is skipped)."""
        return self._state == _DONE

    def feed(self, data: bytes) -> list[Any]:
        """The events that ``data``, following what came before, completes."""
        if self._state == _DONE:
            return []
        buffer = self._rest + data if self._rest else bytes(data)
        events: list[Any] = []
        self._rest = buffer[self._step(buffer, events) :]
        return events

    def end(self) -> None:
        """The body ended: raise BadRequest unless it ended the form, or was
        empty (a form of no parts, as :func:`parse_form` reads one)."""
        state = self._state
        if state == _DONE or (state == _START and not self._rest):
            return  # (in _START, whatever came is still in _rest)
        if state in (_START, _PREAMBLE):
            raise BadRequest("The multipart form has no part (its boundary is not in it).")
        if state == _BOUNDARY_LINE:
            raise _malformed_line()
        raise BadRequest("The multipart form ends before its closing boundary.")

    def _step(self, buffer: bytes, events: list[Any]) -> int:
        """Read ``buffer`` as far as it goes; return where what is kept starts."""
        delimiter = self._delimiter
        size = len(delimiter)
        pos = 0
        while True:
            state = self._state
            if state == _CONTENT:
                end = buffer.find(delimiter, pos)
                if end < 0:
                    keep = max(pos, len(buffer) - size + 1)  # (a delimiter's start)
                    if keep > pos:
                        events.append(buffer[pos:keep])
                    return keep
                if end > pos:
                    events.append(buffer[pos:end])
                events.append(PART_END)
                pos = end + size
                self._state = _BOUNDARY_LINE
            elif state == _HEAD:
                # (pos: the CRLF that ends the boundary line. A part ends at the
                # first delimiter from there: an empty part's is that CRLF.)
                start = pos + 2
                seen = pos + self._seen  # (what earlier pieces had: searched already)
                end = buffer.find(delimiter, max(pos, seen - size + 1))
                if end >= 0:
                    head, content = _part_head(buffer, start, end, self._codec)
                    events.append(_part_start(head))
                    if content:
                        events.append(content)
                    events.append(PART_END)
                    pos = end + size
                    self._state = _BOUNDARY_LINE
                    continue
                # The head ends at its blank line, unless a delimiter starts
                # in that blank line's CRLF (a head and no content): wait for
                # enough to tell.
                blank = (
                    start - 2
                    if buffer.startswith(b"\r\n", start)
                    else buffer.find(b"\r\n\r\n", max(start, seen - 3))
                )
                if blank >= 0 and not delimiter.startswith(buffer[blank + 2 : blank + 2 + size]):
                    head, _ = _part_head(buffer, start, blank + 4, self._codec)
                    events.append(_part_start(head))
                    pos = blank + 4
                    self._state = _CONTENT
                    continue
                # (Without its blank line yet: up to 3 bytes of it may be in.)
                if (len(buffer) - 3 if blank < 0 else blank) - start > _MAX_PART_HEAD:
                    raise _head_too_long()
                self._seen = (len(buffer) if blank < 0 else blank) - pos
                return pos
            elif state == _BOUNDARY_LINE:
                if len(buffer) - pos < 2:
                    return pos
                if buffer.startswith(b"--", pos):
                    self._state = _DONE  # the close delimiter; what follows is an epilogue
                    return len(buffer)
                line_end = buffer.find(b"\r\n", pos)
                if line_end < 0:
                    pending = buffer[pos:-1] if buffer.endswith(b"\r") else buffer[pos:]
                    if pending.strip(b" \t") or len(pending) > _MAX_PADDING:
                        raise _malformed_line()
                    return pos
                if line_end - pos > _MAX_PADDING or buffer[pos:line_end].strip(b" \t"):
                    raise _malformed_line()
                if self._parts == self._max_parts:
                    raise BadRequest(f"The form has more than {self._max_parts} fields.")
                self._parts += 1
                pos = line_end
                self._seen = 0
                self._state = _HEAD
            elif state == _START:
                # The first delimiter starts the body or a line (what is before
                # it is a preamble); every next one starts a line.
                first = self._first
                if buffer.startswith(first):
                    pos = len(first)
                    self._state = _BOUNDARY_LINE
                elif len(buffer) < len(first) and first.startswith(buffer):
                    return 0
                else:
                    self._state = _PREAMBLE
            elif state == _PREAMBLE:
                end = buffer.find(delimiter, pos)
                if end < 0:
                    return max(pos, len(buffer) - size + 1)
                pos = end + size
                self._state = _BOUNDARY_LINE
            else:  # _DONE
                return len(buffer)


def _malformed_line() -> BadRequest:
    return BadRequest("The multipart form has a malformed boundary line.")


def _head_too_long() -> BadRequest:
    return BadRequest("A multipart form part's head is over 16 KiB.")


def _part_start(headers: list[tuple[str, str]]) -> PartHead:
    disposition, params = media_type(_header(headers, "content-disposition"))
    name = params.get("name")
    if disposition != "form-data" or name is None:
        raise BadRequest("A multipart form part has no 'form-data' disposition with a name.")
    content_type = _header(headers, "content-type")
    return PartHead(name, _filename(params), content_type, tuple(headers))


def _part_head(
    buffer: bytes, start: int, stop: int, codec: str
) -> tuple[list[tuple[str, str]], bytes]:
    """The headers (lowercase names; values decoded in ``codec``: UTF-8, as
    browsers send file names, else latin-1, unless the form names its charset) and the
    content of the part ``buffer[start:stop]``. (Read
    where it is: a copy of the part, then one of its content, took twice a
    file's size beside the body.)"""
    if buffer.startswith(b"\r\n", start, stop):
        return [], buffer[start + 2 : stop]
    end = buffer.find(b"\r\n\r\n", start, stop)
    if end < 0:
        if not buffer.endswith(b"\r\n", start, stop):
            raise BadRequest("A multipart form part has no end to its headers.")
        end = stop - 2  # headers and no content (RFC 2046 5.1.1)
    if end - start > _MAX_PART_HEAD:
        raise _head_too_long()
    if buffer.count(b"\r\n", start, end) >= _MAX_PART_HEADERS:
        raise BadRequest("A multipart form part has too many headers.")
    headers = []
    for line in buffer[start:end].split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon or TOKEN_RE.fullmatch(name.decode("latin-1")) is None:
            raise BadRequest("A multipart form part has a malformed header.")
        headers.append((name.decode("ascii").lower(), _header_text(value.strip(b" \t"), codec)))
    return headers, buffer[end + 4 : stop]  # (b"" past the end)


def _header_text(raw: bytes, codec: str) -> str:
    """A part header's value in ``codec``; when that is UTF-8, bytes that are
    not UTF-8 are latin-1 (a client that wrote a file name's bytes as they
    are, no charset said): the name keeps its letters, not U+FFFD for each."""
    if codec == "utf-8":
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    return _decode(raw, codec)


def _header(headers: list[tuple[str, str]], name: str) -> str:
    for key, value in headers:
        if key == name:
            return value
    return ""


def _filename(params: dict[str, str]) -> str | None:
    """The part's file name: ``filename*`` (RFC 8187) when given and readable,
    else ``filename``, else ``filename*`` as it is; None when neither is there
    (a field, not a file)."""
    extended = params.get("filename*")
    if extended is not None:
        match = _EXT_VALUE.fullmatch(extended)
        if match is not None:
            raw = _percent_decode(match.group(2).encode("utf-8", "surrogatepass"))
            return _decode(raw, _codec(match.group(1)))
    return params.get("filename", extended)


# WHATWG HTML's multipart/form-data encoding of names and file names, and a
# backslash doubled (as httpx does), so that one read as a quoted pair stays one.
_ESCAPES = str.maketrans({"\r": "%0D", "\n": "%0A", '"': "%22", "\\": "\\\\"})


def encode_form(
    fields: Iterable[tuple[str, str]],
    files: Iterable[tuple[str, UploadedFile | FieldPart]] = (),
    *,
    multipart: bool | None = None,
    boundary: str | None = None,
) -> tuple[str, bytes]:
    """A form body and its ``Content-Type``: URL-encoded (UTF-8) without
    ``files``, else ``multipart/form-data``, the fields first, as a browser
    sends them (names and file names with ``"``, CR and LF percent-escaped,
    a backslash doubled); a file's ``headers`` follow its ``Content-Type``
    (but a ``Content-Disposition`` or ``Content-Type`` among them, which it
    writes itself); a :class:`FieldPart` among ``files`` is a part without a
    filename written in its place (httpx's ``(None, value)``, in the order
    httpx sends it). ``multipart`` True or False chooses the encoding
    whatever ``files`` are (False with files: ValueError; a header that is
    no name and value of one line too). A multipart body's ``boundary`` is
    random unless given (one RFC 2046 does not allow: ValueError)."""
    fields = list(fields)
    files = list(files)
    if multipart is None:
        multipart = bool(files)
    elif not multipart and files:
        raise ValueError("files are sent as multipart/form-data only")
    if not multipart:
        return URLENCODED, urlencode(fields).encode("ascii")
    if boundary is None:
        boundary = uuid.uuid4().hex
    elif not is_boundary(boundary):
        raise ValueError(f"not a multipart boundary (RFC 2046 5.1.1): {boundary!r}")
    out = []
    for name, value in fields:
        out.append(_disposition(boundary, name) + b"\r\n\r\n" + value.encode("utf-8"))
    for name, file in files:
        head = _disposition(boundary, name)
        if isinstance(file, UploadedFile):
            head += b'; filename="%s"' % file.filename.translate(_ESCAPES).encode("utf-8")
        head += b"\r\n"
        if file.content_type is not None:
            if "\r" in file.content_type or "\n" in file.content_type:
                raise ValueError(f"a file's content type is one line: {file.content_type!r}")
            head += b"Content-Type: %s\r\n" % file.content_type.encode("latin-1")
        for key, value in file.headers:
            if key.lower() in ("content-disposition", "content-type"):
                continue  # (written above)
            if TOKEN_RE.fullmatch(key) is None or "\r" in value or "\n" in value:
                raise ValueError(f"a file's header is a name and a value of one line: {key!r}")
            head += b"%s: %s\r\n" % (key.encode("ascii"), value.encode("utf-8"))
        out.append(head + b"\r\n" + file.body)
    end = b"\r\n--%s--\r\n" % boundary.encode("ascii")
    return f"{MULTIPART}; boundary={boundary}", b"\r\n".join(out) + end


def _disposition(boundary: str, name: str) -> bytes:
    return b'--%s\r\nContent-Disposition: form-data; name="%s"' % (
        boundary.encode("ascii"),
        name.translate(_ESCAPES).encode("utf-8"),
    )
