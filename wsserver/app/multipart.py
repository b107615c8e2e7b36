"""A ``multipart/form-data`` upload read part by part as it comes: ``request.multipart()``.

The parts of a ``stream=True`` route's body, each with its name, file name,
type and headers, and its content as pieces, pulled from ``request.stream``
only as the handler reads: a large file goes to disk (or elsewhere) without
the form ever being in memory whole. The rules are
:class:`~wsserver.app.forms.MultipartParser`'s, as for ``request.files``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from ..errors import BadRequest
from .forms import (
    MULTIPART,
    PART_END,
    MultipartParser,
    PartHead,
    charset_of_field,
    decode_field,
    media_type,
)

__all__ = ["FormPart", "FormParts"]

_END: Any = object()  # (no more parts: the body ended after the form)


class FormParts:
    """The parts of a form body, in order: ``async for part in request.multipart()``.

    Asking for the next part skips what is left of the one before (read from
    the client and dropped). After the last part, the rest of the body (an
    epilogue) is read and dropped, so the iteration ends with the body.

    Raises (from the iteration, or a part's reads):
        BadRequest: the body is not ``multipart/form-data``, does not parse as
            one, or holds more than ``max_parts`` parts (a ``400`` if the
            handler lets it go); every later read raises it again.
        ClientDisconnected, RequestTooLarge: as ``request.stream`` does.
    """

    __slots__ = ("_pieces", "_parser", "_events", "_parts", "_in_part", "_failure", "charset")

    def __init__(self, pieces: AsyncIterator[bytes], content_type: str, max_parts: int) -> None:
        self._pieces = pieces
        self._events: deque[Any] = deque()
        # The parts given so far, and whether the last one's content is still
        # coming. (Its number, not the part: a part holds its form, and a
        # form holding its part back would be a reference cycle.)
        self._parts = 0
        self._in_part = False
        #: Why the form does not parse (a BadRequest's words: the error itself,
        #: kept, would hold its traceback's frames, this form among them).
        self._failure: str | None = None
        kind, params = media_type(content_type)
        #: The charset of the fields that name none: a ``_charset_`` field's,
        #: once read whole (``read()``, ``text()``; RFC 7578 4.6), else the
        #: form's ``Content-Type``'s (a Java client's), else UTF-8.
        self.charset = params.get("charset", "utf-8")
        self._parser: MultipartParser | None = None
        if kind != MULTIPART:
            self._failure = "The request's body is not a multipart/form-data form."
        else:
            try:
                self._parser = MultipartParser(
                    params.get("boundary"), max_parts, params.get("charset")
                )
            except BadRequest as exc:
                self._failure = str(exc)

    def __aiter__(self) -> FormParts:
        return self

    async def __anext__(self) -> FormPart:
        if self._in_part:  # (the last part's rest: skipped)
            while await self._next_event() is not PART_END:
                pass
            self._in_part = False
        event = await self._next_event()
        if event is _END:
            raise StopAsyncIteration
        assert isinstance(event, PartHead)
        self._parts += 1
        self._in_part = True
        return FormPart(self, event, self._parts)

    async def _next_event(self) -> Any:
        """The parser's next event, reading the body as far as it takes; _END
        once the body ended (the form had ended first)."""
        events = self._events
        while not events:
            if self._failure is not None:
                raise BadRequest(self._failure)
            parser = self._parser
            if parser is None:
                return _END
            try:
                # (What the body's reads raise, they raise again themselves.)
                piece = await self._pieces.__anext__()
            except StopAsyncIteration:
                piece = None
            try:
                if piece is None:
                    parser.end()
                    self._parser = None
                    return _END
                events.extend(parser.feed(piece))
            except BadRequest as exc:
                self._failure = str(exc)
                self._parser = None
                raise BadRequest(self._failure) from None
        return events.popleft()


class FormPart:
    """One part of a form read as it comes: ``async for piece in part``
    gives its content's pieces (bytes, none empty), ``await part.read()``
    the rest whole, ``await part.text()`` that as text.

    Attributes:
        name: its name (``Content-Disposition``'s ``name``).
        filename: the file name the client gave (``filename*`` before
            ``filename``), as sent: never a path to use as it is; None for a
            field.
        content_type: its ``Content-Type``; when it has none,
            ``application/octet-stream`` for a file, ``text/plain`` for a
            field (RFC 7578 4.4).
        headers: its own headers, lowercase names, in order.

    Read once the form went on to its next part, it raises RuntimeError: what
    was left of it was skipped.
    """

    __slots__ = (
        "name",
        "filename",
        "content_type",
        "headers",
        "_form",
        "_head",
        "_number",
        "_ended",
    )

    def __init__(self, form: FormParts, head: PartHead, number: int) -> None:
        self.name = head.name
        self.filename = head.filename
        default = "text/plain" if head.filename is None else "application/octet-stream"
        self.content_type = head.content_type or default
        self.headers = head.headers
        self._form = form
        self._head = head
        self._number = number
        self._ended = False

    def __aiter__(self) -> FormPart:
        return self

    async def __anext__(self) -> bytes:
        form = self._form
        if not self._ended and (form._parts != self._number or not form._in_part):
            raise RuntimeError(
                f"form part {self.name!r} read after the next part was asked for:"
                " its rest was skipped"
            )
        if self._ended:
            raise StopAsyncIteration
        event = await form._next_event()
        if event is PART_END:
            self._ended = True
            form._in_part = False
            raise StopAsyncIteration
        return event  # type: ignore[no-any-return]

    async def read(self) -> bytes:
        """The rest of the part's content, whole (in memory: for a field, or
        a file known to be small; the route's ``max_body_size`` bounds it)."""
        fresh = not self._ended
        pieces = [piece async for piece in self]
        content = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        if (
            fresh
            and self.name == "_charset_"
            and self.filename is None
            and self._head.charset is None
        ):
            self._form.charset = charset_of_field(content)
        return content

    async def text(self) -> str:
        """The rest of the content as text: in the part's own ``charset``,
        else the form's (a ``_charset_`` field's, once read whole, else its
        ``Content-Type``'s), else UTF-8;
        what does not decode becomes U+FFFD."""
        content = await self.read()
        return decode_field(content, self._head.charset, self._form.charset)

    def __repr__(self) -> str:
        kind = "field" if self.filename is None else f"file {self.filename!r}"
        return f"<FormPart {self.name!r}: {kind}, {self.content_type}>"
