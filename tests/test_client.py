"""
L{logsvc.client.LogClient} against the in-memory service, and against a port
nobody listens on.
"""

from __future__ import annotations

import pathlib
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from logsvc.client import LogClient, LogServiceError, LogServiceUnreachable, Page, encodeFilters
from logsvc.ingest.tcp import HTTP_HINT, IngestFactory
from logsvc.pipeline import Pipeline
from logsvc.store.memory import MemoryStore
from logsvc.testing import MemoryLogService
from tests.ports import freePort


class LogClientTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.service = MemoryLogService()
        self.client = self.service.client()

    def test_send_one(self) -> None:
        """
        send() with a mapping stores one record and fires with 1.
        """
        self.assertEqual(self.successResultOf(self.client.send({"message": "hi", "n": 1})), 1)
        self.assertEqual(self.service.store.rows[0][6], "hi")

    def test_send_many(self) -> None:
        """
        send() with an iterable of mappings stores all, in order, as NDJSON.
        """
        count = self.successResultOf(self.client.send({"message": f"m{i}"} for i in range(5)))
        self.assertEqual(count, 5)
        self.assertEqual([row[6] for row in self.service.store.rows], [f"m{i}" for i in range(5)])

    def test_query_filters_and_paging(self) -> None:
        """
        query() passes filters through and returns a Page whose next cursor
        fetches the rest.
        """
        self.successResultOf(
            self.client.send(
                [{"message": f"m{i}", "service": "api" if i % 2 else "web", "level": "error"} for i in range(6)]
            )
        )
        page = self.successResultOf(self.client.query(service=["api"], level="error", limit=2, order="asc"))
        self.assertIsInstance(page, Page)
        self.assertEqual([r["message"] for r in page.logs], ["m1", "m3"])
        rest = self.successResultOf(
            self.client.query(service=["api"], level="error", limit=2, order="asc", cursor=page.next)
        )
        self.assertEqual([r["message"] for r in rest.logs], ["m5"])
        self.assertIsNone(rest.next)

    def test_server_error_carries_status_and_text(self) -> None:
        """
        A refusal fails with LogServiceError carrying the status and the
        server's error text.
        """
        failure = self.failureResultOf(self.client.send({"message": "x", "ts": "yesterday"}), LogServiceError)
        self.assertEqual(failure.value.status, 400)
        self.assertEqual(failure.value.message, "ts: cannot parse 'yesterday'")
        self.assertEqual(failure.value.body["index"], 0)

    def test_query_error(self) -> None:
        """
        A bad filter fails with LogServiceError 400 naming the parameter.
        """
        failure = self.failureResultOf(self.client.query(since="never"), LogServiceError)
        self.assertEqual((failure.value.status, failure.value.body["param"]), (400, "since"))

    def test_encode_filters(self) -> None:
        """
        Several names repeat, datetimes become RFC 3339, fields become
        field.KEY (booleans and None as JSON), None is dropped.
        """
        args = encodeFilters(
            service=["a", "b"],
            since=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            fields={"user": "u1", "ok": True, "gone": None},
            q=None,
            limit=5,
        )
        self.assertEqual(
            args,
            [
                ("since", "2026-01-02T03:04:05+00:00"),
                ("service", "a"),
                ("service", "b"),
                ("field.user", "u1"),
                ("field.ok", "true"),
                ("field.gone", "null"),
                ("limit", "5"),
            ],
        )


class TypedFiltersTests(SynchronousTestCase):
    """
    LogClient's filters are typed keyword-only arguments.
    """

    def setUp(self) -> None:
        self.service = MemoryLogService()
        self.client = self.service.client()
        self.successResultOf(
            self.client.send([{"message": "a", "service": "api"}, {"message": "b", "service": "web"}])
        )

    def test_typoIsTypeError(self) -> None:
        """
        A misspelt filter is a TypeError on every method, not a search for
        every record.
        """
        with self.assertRaises(TypeError):
            self.client.query(servce="api")  # type: ignore[call-arg]
        with self.assertRaises(TypeError):
            self.client.stats(levle="error")  # type: ignore[call-arg]
        with self.assertRaises(TypeError):
            self.client.queryPages(lambda page: None, sevice="api")  # type: ignore[call-arg]
        with self.assertRaises(TypeError):
            self.client.queryAll(q="x", limt=3)  # type: ignore[call-arg]
        with self.assertRaises(TypeError):
            self.client.tail(lambda record: None, souce="h")  # type: ignore[call-arg]
        with self.assertRaises(TypeError):
            self.client.query("api")  # type: ignore[misc]

    def test_oneNameOrSeveral(self) -> None:
        """
        service and source take one name or an iterable of names.
        """
        one = self.successResultOf(self.client.query(service="api"))
        self.assertEqual([r["message"] for r in one.logs], ["a"])
        several = self.successResultOf(self.client.query(service=("api", "web"), order="asc"))
        self.assertEqual([r["message"] for r in several.logs], ["a", "b"])

    def test_relativeTimes(self) -> None:
        """
        since and until take the server's relative times as text.
        """
        page = self.successResultOf(self.client.query(since="1h", until="now"))
        self.assertEqual(len(page.logs), 2)
        page = self.successResultOf(self.client.query(until="now-1h"))
        self.assertEqual(page.logs, [])

    def test_deprecatedAliases(self) -> None:
        """
        query_pages and query_all still work, with a DeprecationWarning
        naming the new name.
        """
        pages: list[Page] = []
        count = self.successResultOf(self.client.query_pages(pages.append, service="api"))
        self.assertEqual(count, 1)

        async def collect() -> list[str]:
            return [r["message"] async for r in self.client.query_all(order="asc")]

        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(collect())), ["a", "b"])
        warnings = self.flushWarnings([self.test_deprecatedAliases])
        self.assertEqual(
            sorted(str(w["message"]) for w in warnings),
            ["LogClient.query_all is deprecated; use queryAll", "LogClient.query_pages is deprecated; use queryPages"],
        )
        self.assertTrue(all(w["category"] is DeprecationWarning for w in warnings))


class PublicSurfaceTests(SynchronousTestCase):
    """
    What logsvc.client exports, and nothing else.
    """

    def test_all(self) -> None:
        """
        __all__ names the client's public API; each name exists; the TCP
        sender is no longer re-exported (it lives in logsvc.sender).
        """
        import logsvc.client

        self.assertEqual(
            sorted(logsvc.client.__all__),
            [
                "DEFAULT_CONNECT_TIMEOUT",
                "DEFAULT_TIMEOUT",
                "FieldValue",
                "LogClient",
                "LogServiceError",
                "LogServiceUnreachable",
                "Names",
                "Page",
                "Tail",
                "TimeBound",
            ],
        )
        for name in logsvc.client.__all__:
            self.assertTrue(hasattr(logsvc.client, name), name)
        for name in ("TCPSender", "LogsvcObserver", "tlsContext", "SenderFull"):
            self.assertFalse(hasattr(logsvc.client, name), name)

    def test_pyTyped(self) -> None:
        """
        The package carries a py.typed marker, so type checkers read its
        annotations.
        """
        import logsvc

        marker = pathlib.Path(logsvc.__file__).parent / "py.typed"
        self.assertTrue(marker.exists())


class UnreachableTests(TestCase):
    def test_connection_refused(self) -> None:
        """
        A server that cannot be reached fails with LogServiceUnreachable, not
        LogServiceError.
        """
        pool = HTTPConnectionPool(reactor, persistent=False)
        client = LogClient(
            f"http://127.0.0.1:{freePort()}", httpClient=HTTPClient(Agent(reactor, pool=pool))
        )
        d: Deferred[int] = client.send({"message": "x"})
        return self.assertFailure(d, LogServiceUnreachable)

    @inlineCallbacks
    def test_messageNamesURL(self) -> Generator[Deferred[Any], Any, None]:
        """
        The default client says which URL it cannot reach and why.
        """
        url = f"http://127.0.0.1:{freePort()}"
        client = LogClient(url, connectTimeout=5)
        self.addCleanup(client.close)
        failure = yield self.assertFailure(client.query(), LogServiceUnreachable)
        self.assertTrue(str(failure).startswith(f"cannot reach {url}/logs: "), str(failure))
        self.assertIn("refused", str(failure).lower())

    @inlineCallbacks
    def test_ingestPortIsNotHTTP(self) -> Generator[Deferred[Any], Any, None]:
        """
        Pointed at a TCP ingest port, the client fails at once with
        LogServiceUnreachable quoting the port's hint, and nothing is stored.
        """
        store = MemoryStore()
        factory = IngestFactory(Pipeline(store, reactor=reactor, delay=0))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = LogClient(f"http://127.0.0.1:{port.getHost().port}", timeout=10)
        self.addCleanup(client.close)
        failure = yield self.assertFailure(client.query(level="error"), LogServiceUnreachable)
        self.assertEqual(failure.notHTTP, HTTP_HINT.decode().rstrip("\n"))
        self.assertIn("is not logsvc's HTTP API", str(failure))
        self.assertIn("TCP ingest port", str(failure))
        self.assertEqual(store.rows, [])

    @inlineCallbacks
    def test_silentServerTimesOut(self) -> Generator[Deferred[Any], Any, None]:
        """
        A server that accepts and never answers fails the request after the
        client's timeout, as unreachable.
        """
        port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = LogClient(f"http://127.0.0.1:{port.getHost().port}", timeout=0.3)
        self.addCleanup(client.close)
        failure = yield self.assertFailure(client.stats(by="level"), LogServiceUnreachable)
        self.assertIn("no answer within 0.3 s", str(failure))
