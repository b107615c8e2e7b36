"""Files from a directory, for a Router's :meth:`~wsserver.app.routing.Router.static` routes.

GET and HEAD; a ``Content-Type`` from the file's name; ``ETag`` and
``Last-Modified``, and ``304 Not Modified`` for a conditional request that
already has the file. The file is found and opened where the handler runs
(one version of it is sent, whatever replaces it meanwhile); its body is a
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
        ValueError: ``directory`` is not a directory.
    """
    root = os.path.realpath(directory)
    if not os.path.isdir(root):
        raise ValueError(f"static files: {os.fspath(directory)!r} is not a directory")

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
        info = os.fstat(fd)
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
        headers.append(("Content-Length", str(info.st_size)))
        return stream(FilePieces(file, info.st_size), 200, headers, _content_type(name))

    return static_files


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
    """A file's first ``size`` bytes (what its ``Content-Length`` said), in
    pieces; :meth:`close` closes the file, read or not."""

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
