"""
End to end with OpenTelemetry's own Python SDK and exporters (OTLP over
HTTP/protobuf and gRPC) and a Loki protobuf push written as Promtail writes
it, against a real C{twistd -n logsvc}.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from typing import Any

import cramjam
from twisted.trial.unittest import TestCase

from tests.e2e.server import TwistdServer, startWithTokens
from tests.e2e.test_senders import storedRows
from tests.e2e.trust import makeCertificate
from tests.ports import freePort
from tests.test_formats_loki import PROMTAIL_PUSH


def sdkLogger(exporter: Any, name: str) -> tuple[logging.Logger, Any]:
    """
    @return: a stdlib logger whose records go through the OpenTelemetry SDK
        to C{exporter}, and the SDK's logger provider (shut it down to flush).
    """
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    provider = LoggerProvider(
        resource=Resource.create({"service.name": "checkout", "host.name": "web7", "deployment.environment": "e2e"})
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    logger.addHandler(handler)
    return logger, provider


def traced(logger: logging.Logger) -> str:
    """
    Log two records, one inside a span.

    @return: the span's trace id, as lowercase hex.
    """
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("e2e")
    with tracer.start_as_current_span("pay") as span:
        logger.warning("payment %s failed", "p-1", extra={"order": 42})
        traceID = format(span.get_span_context().trace_id, "032x")
    logger.debug("retrying")
    return traceID


class OTLPTests(TestCase):
    """
    The OpenTelemetry Python SDK's exporters, unchanged but for the address.
    """

    def check(self, rows: list[dict[str, Any]], traceID: str) -> None:
        warning, debug = rows
        self.assertEqual(
            (warning["level"], warning["source"], warning["service"], warning["message"]),
            (4, "web7", "checkout", "payment p-1 failed"),
        )
        self.assertEqual(warning["fields"]["order"], 42)
        self.assertEqual(warning["fields"]["trace_id"], traceID)
        self.assertEqual(len(warning["fields"]["span_id"]), 16)
        self.assertEqual(warning["fields"]["deployment.environment"], "e2e")
        self.assertEqual((debug["level"], debug["message"]), (7, "retrying"))
        self.assertNotIn("trace_id", debug["fields"])

    def test_httpExporter(self) -> None:
        """
        opentelemetry-exporter-otlp-proto-http's log exporter, pointed at
        /v1/logs, stores records with their level, resource, attributes and
        trace context.
        """
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        server = TwistdServer(self.mktemp())
        server.start()
        self.addCleanup(server.kill)
        logger, provider = sdkLogger(OTLPLogExporter(endpoint=server.httpURL + "/v1/logs", timeout=10), "e2e.otlp.http")
        traceID = traced(logger)
        provider.shutdown()
        self.check(storedRows(server, 2), traceID)

    def test_grpcExporter(self) -> None:
        """
        opentelemetry-exporter-otlp-proto-grpc's log exporter, pointed at
        --otlp-grpc, stores the same records.
        """
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        port = freePort()
        server = TwistdServer(self.mktemp(), "--otlp-grpc", f"tcp:{port}:interface=127.0.0.1")
        server.start()
        self.addCleanup(server.kill)
        logger, provider = sdkLogger(OTLPLogExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=10), "e2e.otlp.grpc")
        traceID = traced(logger)
        provider.shutdown()
        self.check(storedRows(server, 2), traceID)
        self.assertIn("--otlp-grpc listening on 127.0.0.1:", server.log())


    def test_grpcExporterTLS(self) -> None:
        """
        The gRPC exporter over TLS (--otlp-grpc ssl:...), trusting the
        server's certificate and sending an ingest token as metadata, stores
        the same records; without the token nothing is stored.
        """
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        key, cert = makeCertificate(os.path.abspath(self.mktemp()))
        port = freePort()
        server, _ = startWithTokens(
            self,
            TwistdServer,
            "ingest s3cret\nread r3ad\n",
            "--otlp-grpc",
            f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}",
        )
        with open(cert, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        refused = OTLPLogExporter(endpoint=f"localhost:{port}", credentials=credentials, timeout=5)
        logger, provider = sdkLogger(refused, "e2e.otlp.grpc.refused")
        logger.warning("no token")
        provider.shutdown()
        exporter = OTLPLogExporter(
            endpoint=f"localhost:{port}", credentials=credentials, headers={"authorization": "Bearer s3cret"}, timeout=10
        )
        logger, provider = sdkLogger(exporter, "e2e.otlp.grpc.tls")
        traceID = traced(logger)
        provider.shutdown()
        # Exactly the two records sent with the token: "no token" is not there.
        self.check(storedRows(server, 2), traceID)


class LokiProtobufTests(TestCase):
    """
    A Loki protobuf push as Promtail sends it: a PushRequest, snappy block
    compressed, POSTed as application/x-protobuf.
    """

    def test_promtailPush(self) -> None:
        """The push is answered 204 and its entries stored as mapped."""
        server = TwistdServer(self.mktemp())
        server.start()
        self.addCleanup(server.kill)
        request = urllib.request.Request(
            server.httpURL + "/loki/api/v1/push",
            data=bytes(cramjam.snappy.compress_raw(PROMTAIL_PUSH)),
            headers={"Content-Type": "application/x-protobuf", "User-Agent": "promtail/3.0.0"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            self.assertEqual(response.status, 204)
        rows = storedRows(server, 3)
        self.assertEqual(
            [(r["level"], r["source"], r["service"], r["message"]) for r in rows],
            [(4, "web1", "varlogs", "first"), (4, "web1", "varlogs", "second"), (6, "127.0.0.1", "api", "third")],
        )
        self.assertEqual(rows[1]["fields"], {"filename": "/var/log/app.log", "trace_id": "abc"})


