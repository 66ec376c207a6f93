"""
C{/ui/}: the browser UI, static files that call the JSON API.

The files hold no log data, so they are served without a token; every API
call the page makes carries the token the user typed (kept in the browser's
localStorage).  They are few and small, so they are read once and served from
memory.
"""

from __future__ import annotations

import os

from twisted.web.server import Request

from logsvc.web.common import JSONResource
from logsvc.web.errors import errorBody

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
}


class UIResource(JSONResource):
    """
    Serves the files of C{directory} by name; C{/ui/} is C{index.html}.
    Unknown names are JSON 404s.
    """

    isLeaf = True

    def __init__(self, directory: str = STATIC_DIR) -> None:
        super().__init__()
        self.files: dict[bytes, tuple[bytes, bytes]] = {}
        for name in os.listdir(directory):
            kind = CONTENT_TYPES.get(os.path.splitext(name)[1])
            if kind is None:
                continue
            with open(os.path.join(directory, name), "rb") as f:
                self.files[name.encode()] = (kind, f.read())

    def render_GET(self, request: Request) -> bytes:
        if not request.postpath:
            # /ui without the slash: the page's relative links need it.
            request.redirect(request.path + b"/")
            return b""
        name = b"/".join(request.postpath) or b"index.html"
        found = self.files.get(name)
        if found is None:
            return errorBody(request, 404, f"no such file: {name.decode('utf-8', 'replace')}")
        kind, body = found
        request.setHeader(b"content-type", kind)
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(
            b"content-security-policy",
            b"default-src 'self'; connect-src 'self'; style-src 'self'; script-src 'self'",
        )
        return body
