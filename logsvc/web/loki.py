"""
C{POST /loki/api/v1/push}: Loki's push API, answered 204 once durable:
JSON (C{application/json}), or a snappy-compressed protobuf C{PushRequest}
(C{application/x-protobuf}, Promtail's and Alloy's default).  The mapping is
in L{logsvc.formats.loki}.  Without the extra C{logsvc[loki]} (protobuf,
cramjam: L{logsvc.extras.LOKI}) a protobuf push is answered 501 naming it.
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import IResource
from twisted.web.server import Request

from logsvc.extras import LOKI
from logsvc.formats.loki import parseLokiProtobuf, parseLokiPush
from logsvc.record import Record
from logsvc.web.body import BodyError, ShipperEndpoint, unsnappy
from logsvc.web.common import Branch
from logsvc.web.ingest import contentType

PROTOBUF = "application/x-protobuf"


class LokiPush(ShipperEndpoint):
    """
    The push endpoint.
    """

    transport = "loki"

    def parse(self, request: Request, body: bytes, peer: str, received: int) -> tuple[list[Record], Any]:
        if contentType(request) != PROTOBUF:
            return parseLokiPush(body, peer, received), None
        missing = LOKI.missing()
        if missing is not None:
            raise BodyError(501, missing)
        return parseLokiProtobuf(unsnappy(body, self.maxBody), peer, received), None

    def render_POST(self, request: Request) -> object:
        kind = contentType(request)
        if kind not in ("application/json", "text/json", PROTOBUF):
            return self.bodyError(
                request,
                415,
                f"unsupported content type {kind!r}: send application/json or "
                f"{PROTOBUF} (snappy-compressed)",
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
