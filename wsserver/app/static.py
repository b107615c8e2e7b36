"""Files from a directory, for a Router's :meth:`~wsserver.app.routing.Router.static` routes.

GET and HEAD; a ``Content-Type`` from the file's name; ``ETag`` and
``Last-Modified``, and ``304 Not Modified`` for a conditional request that
already has the file; ``206 Partial Content`` for a GET of one byte range
(``Range``, with ``If-Range``), ``416`` for one past the end. The file is
found and opened where the handler runs (one version of it is sent, whatever
replaces it meanwhile); its body is a
:class:`~wsserver.app.response.StreamingResponse` of its pieces, which the
server reads in a thread. No path leads out of the directory: a ``..``
segment, or a link to a file elsewhere, is a 404, as is anything that is not
a regular file; one that cannot be read is a 403. A directory's path without
its ``/`` is redirected (307) to it, so that its index's relative links work.
"""

from __future__ import annotations

import email.utils
import errno
import mimetypes
import os
import re
import stat
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO

from ..protocol.http import Response, error_response, http_date
from .response import StreamingResponse, stream

__all__ = ["static_handler", "FilePieces", "PIECE"]

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
    root = os.path.realpath(directory)
    if not os.path.isdir(root):
        raise ValueError(f"static files: {os.fspath(directory)!r} is not a directory")
    if cache_control is not None:
        Response(b"", 200, [("Cache-Control", cache_control)])  # (ValueError now, not per request)

    async def static_files(request: Any, path: str = "") -> Response | StreamingResponse:
        name = _find(root, path)
        if name is None:
            return error_response(404)
        is_dir = os.path.isdir(name)
        if is_dir or request.path.endswith("/"):
            if not is_dir or index is None:
                return error_response(404)  # (a file is no directory: "a.txt/")
            name = _inside(root, os.path.join(name, index))
            if name is None or os.path.isdir(name):
                return error_response(404)
            if not request.path.endswith("/"):
                # Its index's relative links resolve against the directory.
                # (One leading "/": "//host/..." would lead to another site.)
                raw_path, mark, query = request.target.partition("?")
                location = "/" + raw_path.lstrip("/") + "/" + mark + query
                return Response(b"", 307, [("Location", location)])
        try:
            # Opened here, and described by its descriptor, not its name: a file
            # replaced meanwhile (a deploy) is sent whole, as one version.
            fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except PermissionError:
            return error_response(403)
        except OSError as exc:
            if exc.errno in _GONE:
                return error_response(404)  # (removed meanwhile)
            raise  # out of descriptors, an I/O error: a 500 (logged), not "no such file"
        file = os.fdopen(fd, "rb")
        try:
            return _respond(request, file, os.fstat(fd), name, cache_control)
        except BaseException:
            file.close()
            raise

    return static_files


def _respond(
    request: Any, file: BinaryIO, info: os.stat_result, name: str, cache_control: str | None
) -> Response | StreamingResponse:
    """The answer to a GET or HEAD of the open ``file``; it is closed unless streamed."""
    if not stat.S_ISREG(info.st_mode):
        file.close()
        return error_response(404)
    headers = [
        ("Last-Modified", http_date(info.st_mtime)),
        ("ETag", f'"{info.st_mtime_ns:x}-{info.st_size:x}"'),
    ]
    if cache_control is not None:
        headers.append(("Cache-Control", cache_control))
    if _not_modified(request.headers, headers[1][1], int(info.st_mtime)):
        file.close()
        return Response(b"", 304, headers)
    status, first, size = 200, 0, info.st_size
    wanted_range = request.headers.get("range") if request.method == "GET" else None
    if wanted_range is not None:
        if_range = request.headers.get("if-range")
        wanted = _wanted_range(wanted_range, if_range, info.st_size, headers[0][1], headers[1][1])
        if wanted is _UNSATISFIABLE:
            file.close()
            headers.append(("Content-Range", f"bytes */{info.st_size}"))
            return error_response(416, headers=headers)
        if wanted is not None:
            first, last = wanted
            status, size = 206, last - first + 1
            headers.append(("Content-Range", f"bytes {first}-{last}/{info.st_size}"))
            file.seek(first)
    headers.append(("Accept-Ranges", "bytes"))
    headers.append(("Content-Length", str(size)))
    return stream(FilePieces(file, size), status, headers, _content_type(name))


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
    """A file's next ``size`` bytes from where it stands (what its
    ``Content-Length`` said), in pieces; :meth:`close` closes the file, read or not."""

    __slots__ = ("_file", "_left")

    def __init__(self, file: BinaryIO, size: int) -> None:
        self._file = file
        self._left = size

    def __iter__(self) -> FilePieces:
        return self

    def __next__(self) -> bytes:
        if self._left <= 0:
            raise StopIteration
        piece = self._file.read(min(PIECE, self._left))
        if not piece:
            raise StopIteration  # (it shrank: the response is cut short)
        self._left -= len(piece)
        return piece

    def close(self) -> None:
        self._file.close()


#: One byte range (RFC 9110 14.1.1): ``first-[last]`` or ``-suffix``.
_BYTE_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE | re.ASCII)
#: What :func:`_wanted_range` says of a range past the file's end.
_UNSATISFIABLE = (-1, -1)


def _wanted_range(
    value: str, if_range: str | None, size: int, last_modified: str, etag: str
) -> tuple[int, int] | None:
    """The ``(first, last)`` bytes a GET's ``Range`` (``value``) asks for (RFC 9110 14.2),
    None to send the whole file, or :data:`_UNSATISFIABLE` (a ``416``).

    The whole file, as the RFC lets a server choose, for what this does not
    serve: a header that does not parse, several ranges, another unit, an
    empty file, and a range on another version than ``If-Range`` names (its
    entity tag, compared strongly, or its ``Last-Modified`` date, exactly).
    """
    found = _BYTE_RANGE.fullmatch(value.strip())
    if found is None or size == 0:
        return None
    if if_range is not None and if_range.strip() not in (etag, last_modified):
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
    kind, encoding = mimetypes.guess_type(name, strict=False)
    if kind is None or encoding is not None:
        # (A .gz served as it is: its bytes, not the type it would unpack to.)
        return "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
        return f"{kind}; charset=utf-8"
    return kind


def _not_modified(headers: Any, etag: str, mtime: int) -> bool:
    """Whether the client has this version already (RFC 9110 13.1.2, 13.1.3):
    ``If-None-Match`` decides when present, else ``If-Modified-Since``."""
    match = headers.get("if-none-match")
    if match is not None:
        tags = [t.strip() for t in match.split(",")]
        return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)
    since = headers.get("if-modified-since")
    if since is None:
        return False
    try:
        when = email.utils.parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    if when.tzinfo is None:
        return False
    return mtime <= int(when.timestamp())
