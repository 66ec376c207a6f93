# -*- test-case-name: tests.test_web_otlp -*-
"""
C{POST /v1/logs} (and C{/otlp/v1/logs}): OTLP/HTTP logs, protobuf
(C{application/x-protobuf}) or JSON (C{application/json}), gzip allowed,
answered C{200} with an C{ExportLogsServiceResponse} in the request's
encoding once the records are durable.  Records the request held but that
were refused are counted in its C{partial_success}.  The mapping is in
L{logsvc.formats.otlp}.

Errors are JSON (C{{"error": ...}}), as everywhere in logsvc, rather than
OTLP's C{google.rpc.Status}: exporters only log an error body, and the
status code carries the retry decision (503 is retryable, 400/413/415 not).

Without the extra C{logsvc[otlp]} (C{opentelemetry-proto}) the endpoint
answers 501 naming it (L{logsvc.extras.OTLP}), and a line saying so is
logged when the tree is built; the bindings are imported only once they are
known to be there.
"""

from __future__ import annotations

from typing import Any

import orjson
from twisted.logger import Logger
from twisted.web.resource import IResource
from twisted.web.server import Request

from logsvc.extras import OTLP
from logsvc.pipeline import Pipeline
from logsvc.record import Record
from logsvc.web.body import ShipperEndpoint
from logsvc.web.common import Branch
from logsvc.web.errors import errorBody
from logsvc.web.ingest import contentType

log = Logger()

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class OTLPLogs(ShipperEndpoint):
    """
    The OTLP/HTTP logs endpoint.
    """

    transport = "otlp"

    def render_POST(self, request: Request) -> object:
        missing = OTLP.missing()
        if missing is not None:
            return errorBody(request, 501, missing)
        kind = contentType(request)
        if kind not in (PROTOBUF, JSON):
            return self.bodyError(
                request, 415, f"unsupported content type {kind!r}: send {PROTOBUF} or {JSON}"
            )
        return super().render_POST(request)

    def parse(self, request: Request, body: bytes, peer: str, received: int) -> tuple[list[Record], Any]:
        from logsvc.formats.otlp import parseOTLPJSON, parseOTLPProtobuf

        kind = contentType(request)
        parser = parseOTLPProtobuf if kind == PROTOBUF else parseOTLPJSON
        batch = parser(body, peer, received)
        if batch.rejected:
            self.sink.refuse("invalid", batch.rejected)
        return batch.records, (batch, kind)

    def stored(self, request: Request, parsed: Any, first: int) -> bytes:
        from google.protobuf.json_format import MessageToDict

        from logsvc.formats.otlp import exportResponse

        batch, kind = parsed
        response = exportResponse(batch)
        request.setResponseCode(200)
        request.setHeader(b"content-type", kind.encode("ascii"))
        if kind == PROTOBUF:
            return response.SerializeToString()  # type: ignore[no-any-return]
        # OTLP JSON: lowerCamelCase keys, 64-bit integers as strings.
        return orjson.dumps(MessageToDict(response))


def otlpTree(pipeline: Pipeline, *, maxBody: int) -> tuple[IResource, IResource]:
    """
    @return: the C{v1} subtree (holding C{logs}) and the C{otlp} subtree
        (holding C{v1/logs}), sharing one endpoint.
    """
    missing = OTLP.missing()
    if missing is not None:
        log.warn("POST /v1/logs answers 501: {why}", why=missing)
    else:
        # Read the mapping now, not in the first request (its first import
        # compiles it where no bytecode is cached, and configures the C
        # version: milliseconds that request's sender would wait).
        import logsvc.formats.otlp  # noqa: F401
    logs = OTLPLogs(pipeline, maxBody=maxBody)
    return Branch.path([b"logs"], logs), Branch.path([b"v1", b"logs"], logs)
