"""Files from a directory, for a Router's :meth:`~wsserver.app.routing.Router.static` routes.

GET and HEAD; a ``Content-Type`` from the file's name; ``ETag`` and
``Last-Modified``, and ``304 Not Modified`` for a conditional request that
already has the file. The body is a :class:`~wsserver.app.response.StreamingResponse`
of the file's pieces, which the server reads in a thread; finding the file
(a ``stat``) is done where the handler runs. No path leads out of the
directory: a ``..`` segment, or a link to a file elsewhere, is a 404, as is
anything that is not a regular file.
"""

from __future__ import annotations

import email.utils
import mimetypes
import os
import stat
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from ..protocol.http import Response, error_response, http_date
from .response import StreamingResponse, stream

__all__ = ["static_handler", "PIECE"]

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
        found = _find(root, path, index)
        if found is None:
            return error_response(404)
        name, info = found
        headers = [
            ("Last-Modified", http_date(info.st_mtime)),
            ("ETag", f'"{info.st_mtime_ns:x}-{info.st_size:x}"'),
        ]
        if cache_control is not None:
            headers.append(("Cache-Control", cache_control))
        if _not_modified(request.headers, headers[1][1], int(info.st_mtime)):
            return Response(b"", 304, headers)
        headers.append(("Content-Length", str(info.st_size)))
        return stream(_pieces(name, info.st_size), 200, headers, _content_type(name))

    return static_files


def _find(root: str, path: str, index: str | None) -> tuple[str, os.stat_result] | None:
    """The file ``path`` names under ``root`` (a directory's ``index``), or None."""
    segments = [s for s in path.split("/") if s]
    if any(s in (".", "..") or "\x00" in s or "\\" in s for s in segments):
        return None
    name = os.path.realpath(os.path.join(root, *segments))
    if os.path.commonpath((root, name)) != root:
        return None  # a link out of the directory
    try:
        info = os.stat(name)
        if stat.S_ISDIR(info.st_mode) and index is not None:
            name = os.path.realpath(os.path.join(name, index))
            if os.path.commonpath((root, name)) != root:
                return None
            info = os.stat(name)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return name, info


def _pieces(name: str, size: int) -> Iterator[bytes]:
    """A file's first ``size`` bytes (what its ``Content-Length`` said), in pieces."""
    with open(name, "rb") as file:
        left = size
        while left > 0:
            piece = file.read(min(PIECE, left))
            if not piece:
                return  # (it shrank meanwhile: the response is cut short)
            left -= len(piece)
            yield piece


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
