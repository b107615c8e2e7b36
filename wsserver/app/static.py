"""Files from a directory, for a Router's :meth:`~wsserver.app.routing.Router.static`
routes; and one file as a handler's answer (:func:`file`).

GET and HEAD; a ``Content-Type`` from the file's name; ``ETag`` and
``Last-Modified``, and ``304 Not Modified`` for a conditional request that
already has the file, ``412`` for one that names another version
(``If-Match``, ``If-Unmodified-Since``); ``206 Partial Content`` for a GET of
one byte range (``Range``, with ``If-Range``), ``416`` for one past the end. The file is
found and opened where the handler runs (one version of it is sent, whatever
replaces it meanwhile); its body is a
:class:`~wsserver.app.response.StreamingResponse` of its pieces
(:class:`FilePieces`), which the server reads in a thread, or has the kernel
send (``sendfile()``) where it can. No path leads out of the directory: a ``..``
segment, or a link to a file elsewhere, is a 404, as is anything that is not
a regular file; one that cannot be read is a 403. A directory's path without
its ``/`` is redirected (307) to it, so that its index's relative links work
(a relative ``Location``: ``./sub/``, right behind a proxy's path prefix too).
"""

from __future__ import annotations

import datetime
import errno
import math
import mimetypes
import os
import re
import stat
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO
from urllib.parse import quote

from ..protocol.http import HeadersLike, Response, error_response, header_pairs, http_date
from .response import StreamingResponse, stream

__all__ = ["static_handler", "file_handler", "file", "open_regular", "FilePieces", "PIECE"]

#: Why opening a file found a moment ago may fail that means it is not there.
_GONE = frozenset((errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO, errno.ENODEV))
#: The size of the pieces a file is sent in.
PIECE = 64 * 1024


def static_handler(
    directory: str | os.PathLike[str],
    *,
    index: str | None = "index.html",
    cache_control: str | None = None,
) -> Callable[..., Awaitable[Response | StreamingResponse]]:
    """An HTTP handler serving the files under ``directory`` (its ``path`` parameter).

    Raises:
        ValueError: ``directory`` is not a directory, or ``cache_control``
            is no header value.
    """
    given = os.path.abspath(directory)
    if not os.path.isdir(given):
        raise ValueError(f"static files: {os.fspath(directory)!r} is not a directory")
    _check_cache_control(cache_control)

    async def static_files(request: Any, path: str = "") -> Response | StreamingResponse:
        # Resolved for each request: a deploy that switches a link to the
        # new release ("current" -> release 2) has it served at once.
        root = os.path.realpath(given)
        name = _find(root, path)
        if name is None:
            return error_response(404)
        # (Its type is the name asked for's, not a link's target's, as nginx's.)
        asked = path
        is_dir = os.path.isdir(name)
        if is_dir or request.path.endswith("/"):
            if not is_dir or index is None:
                return error_response(404)  # (a file is no directory: "a.txt/")
            asked = index
            name = _inside(root, os.path.join(name, index))
            if name is None or os.path.isdir(name):
                return error_response(404)
            if not request.path.endswith("/"):
                # Its index's relative links resolve against the directory.
                # Relative to the URL asked for (its last segment, after "./":
                # "a:b/" would be a scheme), so that it holds behind a proxy
                # that serves this under a path prefix, and stays on this site.
                raw_path, mark, query = request.target.partition("?")
                location = "./" + raw_path.rpartition("/")[2] + "/" + mark + query
                return Response(b"", 307, [("Location", location)])
        return _open_and_respond(request, name, asked, cache_control)

    return static_files


def file_handler(
    file: str | os.PathLike[str], *, cache_control: str | None = None
) -> Callable[..., Awaitable[Response | StreamingResponse]]:
    """An HTTP handler serving the one regular file ``file`` (whatever the request's path).

    Its name is looked up at each request, as a directory's is: a deploy that
    switches a link to the new version has it served at once, and a file
    removed is a 404.

    Raises:
        ValueError: ``file`` is not a regular file, or ``cache_control``
            is no header value.
    """
    given = os.path.abspath(file)
    if not os.path.isfile(given):
        raise ValueError(f"static files: {os.fspath(file)!r} is not a directory or a file")
    _check_cache_control(cache_control)
    # (Its type is its name's, as given: not a link's target's.)
    asked = os.path.basename(given)

    async def static_file(request: Any) -> Response | StreamingResponse:
        return _open_and_respond(request, given, asked, cache_control)

    return static_file


def _check_cache_control(cache_control: str | None) -> None:
    """A ValueError now if ``cache_control`` is no header value (not a 500 per request)."""
    if cache_control is not None:
        Response(b"", 200, [("Cache-Control", cache_control)])


def _open_and_respond(
    request: Any, name: str, asked: str, cache_control: str | None
) -> Response | StreamingResponse:
    """The answer with the file at ``name`` (of ``asked``'s type); 403 or 404 if none."""
    try:
        # Opened here, and described by its descriptor, not its name: a file
        # replaced meanwhile (a deploy) is sent whole, as one version.
        file, info = open_regular(name)
    except PermissionError:
        return error_response(403)
    except IsADirectoryError:
        return error_response(404)  # (a directory, a FIFO: nothing to send)
    except OSError as exc:
        if exc.errno in _GONE:
            return error_response(404)  # (removed meanwhile)
        raise  # out of descriptors, an I/O error: a 500 (logged), not "no such file"
    extra = [] if cache_control is None else [("Cache-Control", cache_control)]
    try:
        return _respond(request, file, info, _content_type(asked), extra)
    except BaseException:
        file.close()
        raise


async def file(
    location: str | os.PathLike[str],
    status: int = 200,
    *,
    request: Any = None,
    mime_type: str | None = None,
    headers: HeadersLike | None = None,
    filename: str | None = None,
) -> Response | StreamingResponse:
    """The file at ``location`` as the answer: ``return await file("report.pdf")``
    (Sanic's ``sanic.response.file``, Starlette's ``FileResponse``).

    Sent as a static file is (``sendfile()`` where the server can, else in
    pieces read in a thread), with ``Content-Length``, ``ETag`` and
    ``Last-Modified``; opened now, so that one version of it is sent,
    whatever replaces it meanwhile. Its ``Content-Type`` is ``mime_type``, or
    its name's (``filename``'s, if given; a ``text/*`` one without a charset
    says ``charset=utf-8``, as ``stream()``'s); ``filename`` also asks the browser
    to save it under that name (``Content-Disposition: attachment``, with
    RFC 6266's ``filename*`` for a name that needs it; one in ``headers``
    wins, ``inline`` say). Given the
    ``request``, a 200's conditional requests and byte ranges are answered as
    ``routes.static()``'s (304, 206, 412, 416); else the whole file is sent.

    Raises:
        FileNotFoundError, PermissionError (OSError): it cannot be opened;
            the handler's to answer (else a 500, logged, as Sanic's: not a
            404 that a wrong path would hide behind).
        IsADirectoryError: it is no regular file.
        ValueError: ``headers`` give a ``Content-Length`` or ``Content-Range``
            (the file's to say), or one that cannot be sent.
        UnicodeEncodeError: ``filename`` has no UTF-8 (a lone surrogate).
    """
    name = os.fspath(location)
    # (What may be refused, before the file is opened: no descriptor to close.)
    extra = header_pairs(headers) if headers is not None else []
    for header, _ in extra:
        if header.lower() in ("content-length", "content-range"):
            raise ValueError(f"{header} is the file's to say, not a header given to file()")
    if filename is not None and not any(h.lower() == "content-disposition" for h, _ in extra):
        # (One given in headers wins: "inline; filename=...", say.)
        extra.append(("Content-Disposition", _attachment(filename)))
    kind = mime_type or _content_type(filename or os.path.basename(name))
    opened, info = open_regular(name)
    try:
        if request is None or status != 200:
            return _respond(None, opened, info, kind, extra, status)
        return _respond(request, opened, info, kind, extra)
    except BaseException:
        opened.close()
        raise


def open_regular(name: str, said: str = "not a regular file") -> tuple[BinaryIO, os.stat_result]:
    """The regular file at ``name``, open for reading, and what ``fstat()`` says
    of it (of the file opened, whatever replaces it at that name meanwhile).

    Opened non-blocking: a FIFO at that name must not hold the caller (a
    regular file's reads ignore it).

    Raises:
        OSError: it cannot be opened; IsADirectoryError (``said``) if it is
            no regular file (a directory, a FIFO), its descriptor closed.
    """
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, said, name)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb"), info


def _attachment(filename: str) -> str:
    """``Content-Disposition`` for saving as ``filename`` (RFC 6266): its
    ``filename*`` too (UTF-8, percent-encoded) unless it is a plain quoted
    string as it is, beside an ASCII ``filename`` for older clients."""
    plain = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    if plain == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _respond(
    request: Any,
    file: BinaryIO,
    info: os.stat_result,
    content_type: str,
    extra: list[tuple[str, str]],
    status: int = 200,
) -> Response | StreamingResponse:
    """The answer to a GET or HEAD of the open regular ``file``: ``extra``
    headers after its validators; the request's conditions and range
    answered (none when ``request`` is None: the whole file, ``status``). It
    is closed unless streamed."""
    # RFC 9110 8.8.2.1: a modification time in the future (a clock skewed
    # where the file was made) is sent as now; compared as it is, it is later
    # than any date a client has (never a 304 or a range for it by date).
    headers = [
        ("Last-Modified", http_date(min(info.st_mtime, time.time()))),
        ("ETag", f'"{info.st_mtime_ns:x}-{info.st_size:x}"'),
    ]
    if request is None:
        headers += extra
        headers.append(("Content-Length", str(info.st_size)))
        return stream(FilePieces(file, info.st_size), status, headers, content_type)
    # (Whole seconds as Last-Modified says them: rounded down, before 1970 too.)
    etag, mtime = headers[1][1], math.floor(info.st_mtime)
    if _precondition_failed(request.headers, etag, mtime):
        file.close()
        return error_response(412)  # (RFC 9110 13.2.2: before If-None-Match)
    headers += extra
    if _not_modified(request.headers, etag, mtime):
        file.close()
        return Response(b"", 304, headers)
    status, first, size = 200, 0, info.st_size
    ranges = request.headers.getall("range") if request.method == "GET" else []
    if ranges:
        wanted = _wanted_range(ranges, request.headers.getall("if-range"), info.st_size, etag)
        if wanted is _UNSATISFIABLE:
            file.close()
            # (Nothing else of the file's: a cache must not keep this for it.)
            return error_response(416, headers=[("Content-Range", f"bytes */{info.st_size}")])
        if wanted is not None:
            first, last = wanted
            status, size = 206, last - first + 1
            headers.append(("Content-Range", f"bytes {first}-{last}/{info.st_size}"))
            file.seek(first)
    headers.append(("Accept-Ranges", "bytes"))
    headers.append(("Content-Length", str(size)))
    return stream(FilePieces(file, size), status, headers, content_type)


def _find(root: str, path: str) -> str | None:
    """The real path of what ``path`` names under ``root``, if it is there."""
    segments = [s for s in path.split("/") if s]
    if any(s in (".", "..") or "\x00" in s or "\\" in s for s in segments):
        return None
    return _inside(root, os.path.join(root, *segments))


def _inside(root: str, name: str) -> str | None:
    """``name``'s real path if it exists and is in ``root`` (no link leads out)."""
    real = os.path.realpath(name)
    if os.path.commonpath((root, real)) != root or not os.path.exists(real):
        return None
    return real


class FilePieces:
    """A file's ``size`` bytes from ``offset`` (else from where it stands),
    what its ``Content-Length`` said, in pieces; :meth:`close` closes the file,
    read or not.

    Each piece is read at its offset (``pread()``), not from the file's
    position: a ``dup()`` of an application's descriptor shares that position
    with the others it sends at once (``http.response.zerocopysend``).
    ``move``: the position is set after each piece read, as a read from it
    would leave it (what the application sees of it afterwards)."""

    __slots__ = ("_file", "_left", "_offset", "_move")

    def __init__(
        self, file: BinaryIO, size: int, offset: int | None = None, *, move: bool = False
    ) -> None:
        self._file = file
        self._left = size
        self._offset = file.tell() if offset is None else offset
        self._move = move

    def __iter__(self) -> FilePieces:
        return self

    @property
    def file(self) -> BinaryIO:
        """The file."""
        return self._file

    @property
    def offset(self) -> int:
        """Where in the file the next piece begins."""
        return self._offset

    @property
    def left(self) -> int:
        """How many bytes are still to be read (what ``Content-Length`` said, less
        what the pieces read; the kernel's ``sendfile()`` reads none of them)."""
        return self._left

    def __next__(self) -> bytes:
        if self._left <= 0:
            raise StopIteration
        piece = _read_at(self._file, min(PIECE, self._left), self._offset)
        if not piece:
            raise StopIteration  # (it shrank: the response is cut short)
        self._offset += len(piece)
        self._left -= len(piece)
        if self._move:
            os.lseek(self._file.fileno(), self._offset, os.SEEK_SET)
        return piece

    def close(self) -> None:
        self._file.close()


def _read_at(file: BinaryIO, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes of ``file`` from ``offset``, its position unmoved
    (but on Windows, which has no ``pread()``)."""
    if sys.platform == "win32":
        file.seek(offset)
        return file.read(size)
    return os.pread(file.fileno(), size, offset)


#: One byte range (RFC 9110 14.1.1): ``first-[last]`` or ``-suffix``.
_BYTE_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE)
#: What :func:`_wanted_range` says of a range past the file's end.
_UNSATISFIABLE = (-1, -1)


def _wanted_range(
    ranges: list[str], if_range: list[str], size: int, etag: str
) -> tuple[int, int] | None:
    """The ``(first, last)`` bytes a GET's ``Range`` (its field lines: ``ranges``)
    asks for (RFC 9110 14.2), None to send the whole file, or
    :data:`_UNSATISFIABLE` (a ``416``).

    The whole file, as the RFC lets a server choose, for what this does not
    serve: a header that does not parse (or comes twice), several ranges,
    another unit, an empty file, and an ``If-Range`` that is not this
    version's entity tag (compared strongly). An ``If-Range`` date never
    matches: ``Last-Modified`` counts whole seconds, and a file rewritten
    within the second its copy was taken would be spliced from two versions
    (a date is a weak validator, RFC 9110 8.8.2.2).
    """
    found = _BYTE_RANGE.fullmatch(ranges[0].strip()) if len(ranges) == 1 else None
    if found is None or size == 0:
        return None
    if if_range and (len(if_range) > 1 or if_range[0].strip() != etag):
        return None
    first, last = found.groups()
    if len(first) > 20 or len(last) > 20:
        return None  # (no file is 10**20 bytes: a number that long is nonsense)
    if not first:
        if not last:
            return None  # ("bytes=-")
        suffix = int(last)
        return (max(size - suffix, 0), size - 1) if suffix else _UNSATISFIABLE
    start, end = int(first), int(last) if last else size - 1
    if last and end < start:
        return None  # (invalid: ignored)
    if start >= size:
        return _UNSATISFIABLE
    return start, min(end, size - 1)


def _content_type(name: str) -> str:
    # (As a path, from "/": guess_type() reads a URL, and took a name such as
    # "data:text/html,x.png" for a data: URL of that type.)
    kind, encoding = mimetypes.guess_type("/" + name.lstrip("/"), strict=False)
    if kind is None or encoding is not None:
        # (A .gz served as it is: its bytes, not the type it would unpack to.)
        return "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
        return f"{kind}; charset=utf-8"
    return kind


def _precondition_failed(headers: Any, etag: str, mtime: int) -> bool:
    """Whether the request is for another version than this one (RFC 9110
    13.1.1, 13.1.4): ``If-Match`` (strong comparison) decides when present,
    else ``If-Unmodified-Since``. A client resuming a download says so."""
    tags = _tags(headers, "if-match")
    if tags is not None:
        return "*" not in tags and etag not in tags
    since = _date(headers, "if-unmodified-since")
    return since is not None and mtime > since


def _tags(headers: Any, name: str) -> list[str] | None:
    """The entity tags of list header ``name`` (all its field lines); None if absent."""
    lines = headers.getall(name)
    if not lines:
        return None
    return [t.strip() for line in lines for t in line.split(",")]


#: RFC 9110 5.6.7's three forms of an HTTP-date, as named groups: IMF-fixdate,
#: the obsolete RFC 850 date (a two-digit year) and C's asctime() (without
#: "GMT", but meaning it). A date in any other form, or a list of dates, is none.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH = "(?P<month>" + "|".join(_MONTHS) + ")"
_TIME = "(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
_HTTP_DATES = tuple(
    re.compile(form.replace("MONTH", _MONTH).replace("TIME", _TIME))
    for form in (
        r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (?P<day>[0-9]{2}) MONTH (?P<year>[0-9]{4}) TIME GMT",
        r"(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, (?P<day>[0-9]{2})-MONTH-(?P<year>[0-9]{2})"
        r" TIME GMT",
        r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) MONTH (?P<day>[0-9 ][0-9]) TIME (?P<year>[0-9]{4})",
    )
)


def _date(headers: Any, name: str) -> int | None:
    """Header ``name``'s HTTP date in seconds since the epoch; None unless it is
    one field line holding one valid HTTP-date (RFC 9110 13.1.3, 13.1.4: a
    list of dates, or a date in another form, is ignored)."""
    lines = headers.getall(name)
    if len(lines) != 1:
        return None
    value = lines[0].strip()
    found = next(filter(None, (form.fullmatch(value) for form in _HTTP_DATES)), None)
    if found is None:
        return None
    year = int(found["year"])
    if len(found["year"]) == 2:
        # RFC 9110 5.6.7: a two-digit year more than 50 years ahead is the
        # latest past one with those digits.
        this_year = time.gmtime().tm_year
        year += this_year - this_year % 100
        if year > this_year + 50:
            year -= 100
    try:
        when = datetime.datetime(
            year,
            _MONTHS.index(found["month"]) + 1,
            int(found["day"]),
            int(found["hour"]),
            int(found["minute"]),
            min(int(found["second"]), 59),  # (a leap second: 60)
            tzinfo=datetime.UTC,
        )
    except ValueError:  # (the 31st of February, hour 24, year 0)
        return None
    return int(when.timestamp())


def _not_modified(headers: Any, etag: str, mtime: int) -> bool:
    """Whether the client has this version already (RFC 9110 13.1.2, 13.1.3):
    ``If-None-Match`` decides when present, else ``If-Modified-Since``."""
    tags = _tags(headers, "if-none-match")
    if tags is not None:
        return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)
    since = _date(headers, "if-modified-since")
    return since is not None and mtime <= since
