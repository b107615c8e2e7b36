"""The response helpers, where handlers import them: ``from wsserver.response import json``.

They are defined in :mod:`wsserver.app.response` (:func:`file` in :mod:`wsserver.app.static`).
"""

from .app.response import (
    Acceptance,
    Response,
    StreamingResponse,
    accept,
    empty,
    html,
    html_response,
    json,
    json_response,
    raw,
    redirect,
    stream,
    text,
    text_response,
)
from .app.static import file

__all__ = [
    "Response",
    "StreamingResponse",
    "Acceptance",
    "accept",
    "stream",
    "text",
    "html",
    "json",
    "raw",
    "empty",
    "redirect",
    "file",
    "json_response",
    "text_response",
    "html_response",
]
