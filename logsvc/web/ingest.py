"""
C{POST /logs}: a JSON object, a JSON array, NDJSON, plain text lines or the form
Python's C{logging.handlers.HTTPHandler} posts, stored all-or-nothing and
answered once durable.  Bodies may be gzip- or deflate-encoded.  A "form"
whose body starts with C{{} or C{[} is read as JSON, or NDJSON (what C{curl -d}
and C{--data-binary} send).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.web.server import Request

from logsvc.admission import Refused, senderOf
from logsvc.formats.detect import parseLines
from logsvc.formats.jsonline import DocumentError, parseJSONBody, parseJSONText, parseNDJSON
from logsvc.formats.pyform import parsePythonForm
from logsvc.ingest.sink import IngestSink, peerName
from logsvc.pipeline import Pipeline
from logsvc.record import Record, RecordError
from logsvc.store.base import StoreError
from logsvc.times import nowMicros
from logsvc.web.body import BodyError, precheck, refusalReason, refuse, requestBody
from logsvc.web.common import renderAsync, writeJSON
from logsvc.web.errors import errorBody

DEFAULT_MAX_BODY = 10 * 1024 * 1024

BodyParser = Callable[[bytes, str, int], list[Record]]


def parseTextBody(data: bytes, peer: str, received: int) -> list[Record]:
    """
    Parse a text body as TCP lines are parsed (JSON-object lines as JSON, the
    rest as plain text).

    @raise DocumentError: for the first rejected line.
    """
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    records, rejected = parseLines(lines, peer, received)
    if rejected:
        line, why = rejected[0]
        raise DocumentError(f"line {lines.index(line) + 1}: {why}", lines.index(line))
    return records


#: Content types whose every line is (at most) one record.
LINE_TYPES = frozenset(
    {"text/plain", "application/x-ndjson", "application/ndjson", "application/jsonlines", "application/x-jsonlines"}
)

#: Content types POST /logs takes (lower case, without parameters).
BODY_PARSERS: dict[str, BodyParser] = {
    "application/json": parseJSONBody,
    "application/x-ndjson": parseNDJSON,
    "application/ndjson": parseNDJSON,
    "application/jsonlines": parseNDJSON,
    "application/x-jsonlines": parseNDJSON,
    "text/plain": parseTextBody,
    # Python's logging.handlers.HTTPHandler
    "application/x-www-form-urlencoded": parsePythonForm,
}


def contentType(request: Request) -> str:
    """
    @return: the request's media type, lower case, without parameters;
        C{"application/json"} when absent.
    """
    raw = request.getHeader(b"content-type")
    if not raw:
        return "application/json"
    return raw.split(b";", 1)[0].strip().lower().decode("latin-1")


class LogsIngest:
    """
    The C{POST /logs} handler.
    """

    def __init__(self, pipeline: Pipeline, *, maxBody: int = DEFAULT_MAX_BODY) -> None:
        self.pipeline = pipeline
        self.sink = IngestSink(pipeline, "http")
        self.maxBody = maxBody

    def render(self, request: Request) -> object:
        sink = self.sink
        kind = contentType(request)
        parser = BODY_PARSERS.get(kind)
        if parser is None:
            sink.refuse("unsupported")
            return errorBody(
                request, 415, f"unsupported content type {kind!r}", supported=sorted(BODY_PARSERS)
            )
        try:
            body = requestBody(request, self.maxBody)
        except BodyError as e:
            sink.refuse(refusalReason(e.code))
            return errorBody(request, e.code, str(e))
        # Lines are records: a body of more lines than the queue holds is
        # refused before it is split, so its records never exist at once.
        lines = body.count(b"\n") + 1 if kind in LINE_TYPES else 0
        refused = precheck(self.pipeline, request, lines)
        if refused is not None:
            sink.refuse(refusalReason(refused.code))
            return errorBody(request, **refuse(request, refused))
        peer = peerName(request.getClientAddress())
        if parser is parsePythonForm and body.lstrip()[:1] in (b"{", b"["):
            # curl -d labels every body a form: JSON text is no LogRecord form.
            parser = parseJSONText
        try:
            records = parser(body, peer, nowMicros())
        except DocumentError as e:
            sink.refuse("invalid")
            return errorBody(request, 400, str(e), index=e.index)
        except RecordError as e:
            sink.refuse("invalid")
            return errorBody(request, 400, str(e), index=0)
        try:
            d = sink.submitAdmitted(senderOf(request), records)
        except Refused as e:
            sink.refuse(refusalReason(e.code))
            return errorBody(request, **refuse(request, e))
        return renderAsync(request, self.answer(request, records, d))

    def answer(self, request: Request, records: list[Record], d: Deferred[int]) -> Deferred[bytes]:
        """
        @param d: the submission of C{records}.
        @return: a Deferred firing with the response body once they are
            durable (201) or the store failed (503, nothing stored).
        """

        def stored(_: int) -> bytes:
            return writeJSON(request, 201, {"accepted": len(records)})

        def failed(failure: object) -> bytes:
            f = failure.trap(StoreError)  # type: ignore[attr-defined]
            assert f is StoreError
            return errorBody(request, 503, f"store failed: {failure.getErrorMessage()}")  # type: ignore[attr-defined]

        return d.addCallbacks(stored, failed)
