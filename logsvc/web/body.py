"""
Request bodies for every ingest endpoint: C{Content-Encoding} (gzip, deflate)
decoded incrementally with the size limit applied to the decoded bytes, and
L{ShipperEndpoint}: the answers every shipper endpoint shares (503 while the
queue is full or the store fails), its records submitted through an
L{logsvc.ingest.sink.IngestSink}.
"""

from __future__ import annotations

from typing import Any

from twisted.python.failure import Failure
from twisted.web.server import Request

from logsvc.admission import Refused, senderOf
from logsvc.formats.compression import InflateError, inflate, sniffCompression
from logsvc.formats.jsonline import DocumentError
from logsvc.ingest.sink import IngestSink, peerName
from logsvc.pipeline import Pipeline
from logsvc.record import Record, RecordError
from logsvc.store.base import StoreError
from logsvc.times import nowMicros
from logsvc.web.common import JSONResource, renderAsync
from logsvc.web.errors import errorBody

#: Encodings taken, lower case, as named in C{Content-Encoding}.
ENCODINGS = ("identity", "gzip", "x-gzip", "deflate")

class BodyError(Exception):
    """
    A request body cannot be taken.

    @ivar code: the HTTP status to answer (400, 413 or 415).
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def decompress(data: bytes, kind: str, limit: int) -> bytes:
    """
    L{inflate} for a request body.

    @raise BodyError: 413 when the decoded data would exceed C{limit}, 400
        when C{data} is corrupt or truncated.
    """
    try:
        return inflate(data, kind, limit)
    except InflateError as e:
        if e.tooLarge:
            raise BodyError(413, f"decompressed body exceeds max-body of {limit} bytes") from None
        raise BodyError(400, f"{e} body") from None


def unsnappy(data: bytes, limit: int) -> bytes:
    """
    Decode a snappy block (the raw format, not the framed one: what Loki's
    protobuf pushes hold).  The size the block declares is checked against
    C{limit} before anything is decoded.

    cramjam (the extra C{logsvc[loki]}: see L{logsvc.extras.LOKI}) must be
    installed.

    @raise BodyError: 413 when it declares more than C{limit} bytes, 400
        when it is corrupt or truncated.
    """
    from cramjam import DecompressionError, snappy

    try:
        declared = snappy.decompress_raw_len(data)
        if declared > limit:
            raise BodyError(413, f"decompressed body exceeds max-body of {limit} bytes")
        return bytes(snappy.decompress_raw(data))
    except DecompressionError as e:
        raise BodyError(400, f"invalid snappy body: {e}") from None


def requestBody(request: Request, maxBody: int) -> bytes:
    """
    Read C{request}'s body and undo its C{Content-Encoding}.

    The raw body is already capped by L{logsvc.web.app.LogsvcRequest}; the
    decoded body is capped here, as it is produced.

    @raise BodyError: 413 for a body over C{maxBody} (raw or decoded), 415 for
        an unknown encoding, 400 for a corrupt compressed body.
    """
    content = request.content
    if content is None:
        data = b""
    else:
        content.seek(0)
        data = content.read(maxBody + 1)
    if len(data) > maxBody:
        raise BodyError(413, f"body exceeds max-body of {maxBody} bytes")
    header = request.getHeader(b"content-encoding")
    if not header:
        return data
    codings = [c.strip().lower() for c in header.decode("latin-1").split(",") if c.strip()]
    for coding in reversed(codings):
        # Senders mislabel: graypy says "gzip,deflate" for one zlib layer, and
        # HTTP's "deflate" is zlib-wrapped but many clients send it raw.  So
        # the bytes' magic decides; a gzip layer that is not there is skipped.
        sniffed = sniffCompression(data)
        if coding in ("gzip", "x-gzip"):
            if sniffed is not None:
                data = decompress(data, sniffed, maxBody)
        elif coding == "deflate":
            data = decompress(data, sniffed or "raw", maxBody)
        elif coding != "identity":
            raise BodyError(
                415, f"unsupported content encoding {coding!r}; use one of {', '.join(ENCODINGS)}"
            )
    return data


def refusalReason(code: int) -> str:
    """
    @return: the metrics' C{reason} for a body refused with HTTP C{code}.
    """
    return {413: "too_large", 415: "unsupported", 503: "queue_full"}.get(code, "invalid")


def refuse(request: Request, refused: Refused) -> dict[str, Any]:
    """
    Set C{Retry-After} for a 503 refusal.

    @return: the refusal's status and message, as L{errorBody}'s arguments.
    """
    if refused.code == 503:
        request.setHeader(b"retry-after", b"1")
    return {"code": refused.code, "message": str(refused)}


def precheck(pipeline: Pipeline, request: Request, count: int = 0) -> Refused | None:
    """
    @param count: the records the body holds at most, when known before
        parsing (0: not known).
    @return: why C{request}'s submission cannot be admitted (see
        L{logsvc.admission}), asked before its body is parsed, or L{None}.
    """
    return pipeline.admission.refusal(senderOf(request), count)


class ShipperEndpoint(JSONResource):
    """
    A C{POST} endpoint for one shipper's wire format: read and decode the
    body (L{requestBody}), parse it (L{parse}), submit the records through
    its L{IngestSink} and answer once they are durable (L{stored}).  Shared
    answers: 413/415/400 for the body, 503 while the queue is full or when the
    store fails, 400 naming the first invalid record.  Refused bodies are
    counted in the sink's metrics (one per body, by reason).

    @cvar transport: the label records are counted under in the metrics.
    """

    isLeaf = True
    transport = "http"

    def __init__(self, pipeline: Pipeline, *, maxBody: int) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.sink = IngestSink(pipeline, self.transport)
        self.maxBody = maxBody

    def parse(self, request: Request, body: bytes, peer: str, received: int) -> tuple[list[Record], Any]:
        """
        Parse the decoded body.  Override.

        @return: the records to store, and what L{stored} needs to answer.
        @raise RecordError: to answer 400 (with C{index} for a DocumentError).
        @raise BodyError: to answer with its code.
        """
        raise NotImplementedError()

    def stored(self, request: Request, parsed: Any, first: int) -> bytes:
        """
        @param parsed: what L{parse} returned beside the records.
        @param first: the first stored record's id (0 when none was stored).
        @return: the response body once the records are durable.  Override.
        """
        raise NotImplementedError()

    def bodyError(self, request: Request, code: int, message: str, **extra: Any) -> bytes:
        """
        @return: the response to a refused request.  Override to change its shape.
        """
        return errorBody(request, code, message, **extra)

    def render_POST(self, request: Request) -> object:
        sink = self.sink
        try:
            body = requestBody(request, self.maxBody)
        except BodyError as e:
            sink.refuse(refusalReason(e.code))
            return self.bodyError(request, e.code, str(e))
        refused = precheck(self.pipeline, request)
        if refused is not None:
            sink.refuse(refusalReason(refused.code))
            return self.bodyError(request, **refuse(request, refused))
        peer = peerName(request.getClientAddress())
        try:
            records, parsed = self.parse(request, body, peer, nowMicros())
        except BodyError as e:
            sink.refuse(refusalReason(e.code))
            return self.bodyError(request, e.code, str(e))
        except DocumentError as e:
            sink.refuse("invalid")
            return self.bodyError(request, 400, str(e), index=e.index)
        except RecordError as e:
            sink.refuse("invalid")
            return self.bodyError(request, 400, str(e))
        if not records:
            return self.stored(request, parsed, 0)
        try:
            d = sink.submitAdmitted(senderOf(request), records)
        except Refused as e:
            sink.refuse(refusalReason(e.code))
            return self.bodyError(request, **refuse(request, e))

        def failed(failure: Failure) -> bytes:
            failure.trap(StoreError)
            return self.bodyError(request, 503, f"store failed: {failure.getErrorMessage()}")

        return renderAsync(request, d.addCallbacks(lambda first: self.stored(request, parsed, first), failed))
