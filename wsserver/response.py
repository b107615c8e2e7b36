"""The response helpers, where handlers import them: ``from wsserver.response import json``.

They are defined in :mod:`wsserver.app.response`.
"""

from .app.response import Response, empty, html, json, raw, text

__all__ = ["Response", "text", "html", "json", "raw", "empty"]
