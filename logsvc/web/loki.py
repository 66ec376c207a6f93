"""
C{POST /loki/api/v1/push}: Loki's push API (JSON), answered 204 once durable.
The mapping is in L{logsvc.formats.loki}.  Protobuf pushes (Promtail's
default) are refused with 415 naming the JSON alternative.
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import IResource
from twisted.web.server import Request

from logsvc.formats.loki import parseLokiPush
from logsvc.record import Record
from logsvc.web.body import ShipperEndpoint
from logsvc.web.common import Branch
from logsvc.web.ingest import contentType


class LokiPush(ShipperEndpoint):
    """
    The push endpoint.
    """

    transport = "loki"

    def parse(self, request: Request, body: bytes, peer: str, received: int) -> tuple[list[Record], Any]:
        return parseLokiPush(body, peer, received), None

    def render_POST(self, request: Request) -> object:
        kind = contentType(request)
        if kind not in ("application/json", "text/json"):
            return self.bodyError(
                request,
                415,
                f"unsupported content type {kind!r}: send JSON (application/json); "
                "protobuf pushes are not supported",
            )
        return super().render_POST(request)

    def stored(self, request: Request, parsed: Any, first: int) -> bytes:
        request.setResponseCode(204)
        return b""


def lokiTree(push: LokiPush) -> IResource:
    """
    @return: the C{loki} subtree holding C{api/v1/push}.
    """
    return Branch.path([b"api", b"v1", b"push"], push)
