"""
Tests for L{logsvc.ingest.otlpgrpc}: endpoint strings, peer names, and the
listener itself with grpcio's server on a loopback port and grpcio's client
(run on a thread, as it blocks), in front of a real pipeline.
"""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from twisted.internet.defer import Deferred, fail, inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from logsvc.auth import Tokens
from logsvc.ingest.otlpgrpc import EndpointError, OTLPGrpcService, grpcAddress, peerHost
from logsvc.metrics import Metrics
from logsvc.pipeline import Pipeline
from logsvc.record import Record
from logsvc.store.base import StoreError
from logsvc.store.memory import MemoryStore
from tests.e2e.trust import makeCertificate
from tests.test_extras import withoutModule
from tests.test_formats_otlp import exportRequest


class AddressTests(SynchronousTestCase):
    def test_tcp(self) -> None:
        """tcp:PORT listens on every IPv4 interface; interface= names one (IPv6 bracketed)."""
        self.assertEqual(grpcAddress("tcp:4317"), ("0.0.0.0:4317", {}))
        self.assertEqual(grpcAddress("tcp:4317:interface=127.0.0.1"), ("127.0.0.1:4317", {}))
        self.assertEqual(grpcAddress("tcp:port=0:interface=\\:\\:1"), ("[::1]:0", {}))

    def test_ssl(self) -> None:
        """ssl: takes privateKey, certKey and extraCertChain."""
        self.assertEqual(
            grpcAddress("ssl:4317:privateKey=k.pem:certKey=c.pem"), ("0.0.0.0:4317", {"privateKey": "k.pem", "certKey": "c.pem"})
        )

    def test_refused(self) -> None:
        """Other kinds, bad ports, unknown arguments and ssl: without a key are refused, naming the problem."""
        for bad, why in [
            ("unix:/tmp/s", "tcp:PORT"),
            ("tcp", "tcp:PORT"),
            ("tcp:http", "bad port"),
            ("tcp:70000", "bad port"),
            ("tcp:4317:backlog=5", "unknown argument"),
            ("ssl:4317", "privateKey"),
            ("tcp:4317:oops", "NAME=VALUE"),
        ]:
            error = self.assertRaises(EndpointError, grpcAddress, bad)
            self.assertIn(why, str(error))

    def test_option(self) -> None:
        """--otlp-grpc is checked at startup: an endpoint it cannot serve is a one-line usage error."""
        from twisted.python.usage import UsageError

        from logsvc.config import parseConfig

        config = parseConfig("--otlp-grpc", "tcp:4317:interface=127.0.0.1")
        self.assertEqual(config.otlpGrpc, "tcp:4317:interface=127.0.0.1")
        error = self.assertRaises(UsageError, parseConfig, "--otlp-grpc", "unix:/tmp/otlp.sock")
        self.assertEqual(
            str(error), "--otlp-grpc unix:/tmp/otlp.sock: not a gRPC endpoint; use tcp:PORT or ssl:PORT:privateKey=KEY.pem"
        )

    def test_peerHost(self) -> None:
        """grpc peer strings name the host as TCP peers are named."""
        self.assertEqual(peerHost("ipv4:127.0.0.1:5000"), "127.0.0.1")
        self.assertEqual(peerHost("ipv6:[::1]:5000"), "::1")
        self.assertEqual(peerHost("unix:/tmp/x"), "unix")
        self.assertEqual(peerHost("weird"), "unknown")


class MissingExtraTests(SynchronousTestCase):
    def test_refused(self) -> None:
        """Without grpcio (its import made to fail) the listener is refused, naming the pip command."""
        withoutModule(self, "grpc")
        pipeline = Pipeline(MemoryStore())
        with self.assertRaises(EndpointError) as caught:
            OTLPGrpcService("tcp:0:interface=127.0.0.1", pipeline, maxMessage=1024)
        self.assertIn("pip install 'logsvc[otlp]'", str(caught.exception))


class ServiceTests(TestCase):
    """
    The listener over loopback, with the real reactor.
    """

    timeout = 30

    def setUp(self) -> None:
        self.store = MemoryStore()
        self.metrics = Metrics()
        self.pipeline = Pipeline(self.store, metrics=self.metrics, delay=0)

    def start(self, tokens: Tokens | None = None) -> OTLPGrpcService:
        service = OTLPGrpcService(
            "tcp:0:interface=127.0.0.1", self.pipeline, tokens=tokens, maxMessage=1024 * 1024
        )
        service.startService()
        self.addCleanup(service.stopService)
        return service

    def export(self, service: OTLPGrpcService, body: bytes, metadata: Any = None) -> Deferred[Any]:
        """
        @return: a Deferred firing with the response, or failing with the
            C{grpc.RpcError}, of one Export call made from a thread.
        """

        def call() -> Any:
            with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
                stub = LogsServiceStub(channel)
                return stub.Export(ExportLogsServiceRequest.FromString(body), metadata=metadata, timeout=10)

        return deferToThread(call)

    @inlineCallbacks
    def test_export(self) -> Any:
        """
        An Export is mapped as OTLP/HTTP is, stored, counted under
        otlp-grpc, and answered once durable with an empty response.
        """
        service = self.start()
        body = exportRequest(
            LogRecord(severity_number=9, body=AnyValue(string_value="over grpc")),
            resource={"service.name": "api"},
        )
        response = yield self.export(service, body)
        self.assertIsInstance(response, ExportLogsServiceResponse)
        self.assertFalse(response.HasField("partial_success"))
        self.assertEqual([row[3:7] for row in self.store.rows], [(6, "127.0.0.1", "api", "over grpc")])
        self.assertIn(b'logsvc_records_accepted_total{transport="otlp-grpc"} 1.0', self.metrics.render())

    @inlineCallbacks
    def test_tls(self) -> Any:
        """An ssl: endpoint serves Export over TLS to a client trusting its certificate."""
        key, cert = makeCertificate(self.mktemp())
        service = OTLPGrpcService(
            f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}", self.pipeline, maxMessage=1024 * 1024
        )
        service.startService()
        self.addCleanup(service.stopService)
        with open(cert, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())

        def call() -> Any:
            with grpc.secure_channel(f"localhost:{service.port}", credentials) as channel:
                body = exportRequest(LogRecord(body=AnyValue(string_value="over tls")))
                return LogsServiceStub(channel).Export(ExportLogsServiceRequest.FromString(body), timeout=10)

        yield deferToThread(call)
        self.assertEqual([row[6] for row in self.store.rows], ["over tls"])

    @inlineCallbacks
    def test_tokens(self) -> Any:
        """
        With tokens, an Export without an ingest token is UNAUTHENTICATED
        and stores nothing; with one (Bearer metadata) it is taken.
        """
        service = self.start(Tokens.fromPairs([("ingest", "s3cret"), ("read", "r")]))
        body = exportRequest(LogRecord(body=AnyValue(string_value="x")))
        for metadata in (None, [("authorization", "Bearer r")]):
            error = yield self.assertFailure(self.export(service, body, metadata), grpc.RpcError)
            self.assertEqual(error.code(), grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.store.rows, [])
        yield self.export(service, body, [("authorization", "Bearer s3cret")])
        self.assertEqual(len(self.store.rows), 1)

    @inlineCallbacks
    def test_storeFailure(self) -> Any:
        """A failing store is UNAVAILABLE, which exporters retry."""

        def failing(records: list[Record]) -> Deferred[int]:
            return fail(StoreError("disk full"))

        self.store.append = failing  # type: ignore[method-assign]
        service = self.start()
        error = yield self.assertFailure(self.export(service, exportRequest(LogRecord())), grpc.RpcError)
        self.assertEqual(error.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("disk full", error.details())

    @inlineCallbacks
    def test_queueFull(self) -> Any:
        """A full queue is UNAVAILABLE; one request over max-pending is RESOURCE_EXHAUSTED."""
        service = self.start()
        self.pipeline.maxPending = 1
        two = exportRequest(LogRecord(), LogRecord())
        error = yield self.assertFailure(self.export(service, two), grpc.RpcError)
        self.assertEqual(error.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("max-pending", error.details())
        self.assertEqual(self.store.rows, [])

    @inlineCallbacks
    def test_tooLarge(self) -> Any:
        """A message over maxMessage is refused by grpcio, nothing stored."""
        service = self.start()
        big = exportRequest(LogRecord(body=AnyValue(string_value="x" * (2 * 1024 * 1024))))
        error = yield self.assertFailure(self.export(service, big), grpc.RpcError)
        self.assertEqual(error.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(self.store.rows, [])

    @inlineCallbacks
    def test_stopWaitsForNothing(self) -> Any:
        """Stopping an idle listener fires promptly and frees the port."""
        service = self.start()
        port = service.port
        yield service.stopService()
        again = OTLPGrpcService(f"tcp:{port}:interface=127.0.0.1", self.pipeline, maxMessage=1024)
        again.startService()
        self.assertEqual(again.port, port)
        yield again.stopService()


