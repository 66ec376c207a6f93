"""
C{POST /gelf}: GELF messages over HTTP (one JSON object, an array, or one per
line), answered 202 once durable as Graylog's GELF HTTP input does.  Bodies
may be gzip- or zlib-compressed, said by C{Content-Encoding} or not (GELF
senders often compress without saying so).  The mapping is in
L{logsvc.formats.gelf}.
"""

from __future__ import annotations

from typing import Any

from twisted.web.server import Request

from logsvc.formats.compression import sniffCompression
from logsvc.formats.gelf import parseGelfBody
from logsvc.record import Record
from logsvc.web.body import ShipperEndpoint, decompress


class GelfHTTP(ShipperEndpoint):
    """
    The GELF HTTP endpoint.
    """

    transport = "gelf"

    def parse(self, request: Request, body: bytes, peer: str, received: int) -> tuple[list[Record], Any]:
        kind = sniffCompression(body)
        if kind is not None:
            body = decompress(body, kind, self.maxBody)
        return parseGelfBody(body, peer, received), None

    def stored(self, request: Request, parsed: Any, first: int) -> bytes:
        request.setResponseCode(202)
        return b""
