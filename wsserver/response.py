"""The response helpers, where handlers import them: ``from wsserver.response import json``.

They are defined in :mod:`wsserver.app.response`.
"""

from .app.response import (
    Acceptance,
    Response,
    accept,
    empty,
    html,
    html_response,
    json,
    json_response,
    raw,
    text,
    text_response,
)

__all__ = [
    "Response",
    "Acceptance",
    "accept",
    "text",
    "html",
    "json",
    "raw",
    "empty",
    "json_response",
    "text_response",
    "html_response",
]
