"""Tests for C{POST /v1/logs} and C{/otlp/v1/logs} (L{logsvc.web.otlp}) over the real tree."""

from __future__ import annotations

import gzip

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from twisted.internet.defer import Deferred, fail

from logsvc.record import Record
from logsvc.store.base import StoreError
from tests.shippers import ShipperTestCase
from tests.test_extras import withoutModule
from tests.test_formats_otlp import GOLDEN, exportRequest

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


class OTLPHTTPTests(ShipperTestCase):
    """
    OTLP/HTTP logs, protobuf and JSON.
    """

    def test_protobuf(self) -> None:
        """
        A protobuf export is stored and answered 200 with an empty protobuf
        ExportLogsServiceResponse, at both paths.
        """
        body = exportRequest(
            LogRecord(severity_number=17, body=AnyValue(string_value="boom"), time_unix_nano=1_795_000_000_000_000_000),
            resource={"service.name": "api", "host.name": "web1"},
        )
        for path in ("/v1/logs", "/otlp/v1/logs"):
            code, raw, response = self.request("POST", path, body, PROTOBUF)
            self.assertEqual(code, 200)
            self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/x-protobuf"])
            answer = ExportLogsServiceResponse.FromString(raw)
            self.assertFalse(answer.HasField("partial_success"))
        self.assertEqual(
            [(r["ts"], r["level"], r["source"], r["service"], r["message"]) for r in self.rows()],
            [(1_795_000_000_000_000, 3, "web1", "api", "boom")] * 2,
        )
        self.assertIn(b'logsvc_records_accepted_total{transport="otlp"} 2.0', self.service.metrics.render())

    def test_jsonGzip(self) -> None:
        """
        The spec's JSON example, gzip-encoded, is stored; the answer is JSON.
        """
        body = gzip.compress((GOLDEN / "otlp-logs.json").read_bytes())
        code, answer, response = self.request("POST", "/v1/logs", body, {**JSON, "content-encoding": "gzip"})
        self.assertEqual((code, answer), (200, {}))
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        [row] = self.rows()
        self.assertEqual((row["service"], row["message"]), ("my.service", "Example log record"))

    def test_partialSuccess(self) -> None:
        """
        Refused records are counted in partial_success (rejectedLogRecords as
        a string, OTLP JSON's int64) and the rest stored.
        """
        body = orjson.dumps(
            {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "ok"}}, {"timeUnixNano": "soon"}]}]}]}
        )
        code, answer, _ = self.request("POST", "/v1/logs", body, JSON)
        self.assertEqual(code, 200)
        self.assertEqual(answer["partialSuccess"]["rejectedLogRecords"], "1")
        self.assertIn("logRecords[1]", answer["partialSuccess"]["errorMessage"])
        self.assertEqual([r["message"] for r in self.rows()], ["ok"])

    def test_refusals(self) -> None:
        """
        An unknown content type is 415, a corrupt body 400, a bomb 413, GET
        405; each a JSON error, nothing stored.
        """
        code, answer, _ = self.request("POST", "/v1/logs", b"x", {"content-type": "text/plain"})
        self.assertEqual(code, 415)
        self.assertIn("application/x-protobuf", answer["error"])
        code, answer, _ = self.request("POST", "/v1/logs", b"\xff\xff\xff", PROTOBUF)
        self.assertEqual(code, 400)
        self.assertIn("invalid OTLP protobuf body", answer["error"])
        bomb = gzip.compress(b"\x00" * (self.service.root.children[b"v1"].children[b"logs"].maxBody + 1))
        code, answer, _ = self.request("POST", "/v1/logs", bomb, {**PROTOBUF, "content-encoding": "gzip"})
        self.assertEqual(code, 413)
        self.assertEqual(self.request("GET", "/v1/logs")[0], 405)
        self.assertEqual(self.request("POST", "/v1/nope", b"", PROTOBUF)[0], 404)
        self.assertEqual(self.rows(), [])

    def test_storeFailure(self) -> None:
        """A store failure is a retryable 503 (the exporter sends again)."""

        def failing(records: list[Record]) -> Deferred[int]:
            return fail(StoreError("disk full"))

        self.service.store.append = failing  # type: ignore[method-assign]
        code, answer, _ = self.request("POST", "/v1/logs", exportRequest(LogRecord()), PROTOBUF)
        self.assertEqual(code, 503)
        self.assertIn("disk full", answer["error"])


class MissingExtraTests(ShipperTestCase):
    """
    Without the extra logsvc[otlp] (its import made to fail in process).
    """

    def test_501(self) -> None:
        """
        Both paths answer 501 with a JSON error naming the pip command, for
        either encoding; nothing is stored.
        """
        withoutModule(self, "opentelemetry.proto.collector.logs.v1.logs_service_pb2")
        body = exportRequest(LogRecord(body=AnyValue(string_value="lost?")))
        for path in ("/v1/logs", "/otlp/v1/logs"):
            for headers in (PROTOBUF, JSON):
                code, answer, response = self.request("POST", path, body, headers)
                self.assertEqual(code, 501)
                self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
                self.assertIn("pip install 'logsvc[otlp]'", answer["error"])
        self.assertEqual(self.rows(), [])

    def test_warnedWhenBuilt(self) -> None:
        """Building the tree without the extra logs a warning naming the pip command."""
        from twisted.logger import globalLogPublisher

        from logsvc.web.otlp import otlpTree

        withoutModule(self, "opentelemetry.proto.collector.logs.v1.logs_service_pb2")
        events: list[dict[str, object]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        otlpTree(self.service.pipeline, maxBody=1024)
        [warning] = [e for e in events if e.get("log_namespace") == "logsvc.web.otlp"]
        self.assertIn("pip install 'logsvc[otlp]'", str(warning["why"]))
