"""
L{logsvc.client.LogClient} against the in-memory service, and against a port
nobody listens on.
"""

from __future__ import annotations

from datetime import UTC, datetime

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from logsvc.client import LogClient, LogServiceError, LogServiceUnreachable, Page, encodeFilters
from logsvc.testing import MemoryLogService
from tests.e2e.server import freePort


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
        Lists repeat, datetimes become RFC 3339, fields become field.KEY, None
        is dropped.
        """
        args = encodeFilters(
            {
                "service": ["a", "b"],
                "since": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                "fields": {"user": "u1"},
                "q": None,
                "limit": 5,
            }
        )
        self.assertEqual(
            args,
            [
                ("service", "a"),
                ("service", "b"),
                ("since", "2026-01-02T03:04:05+00:00"),
                ("field.user", "u1"),
                ("limit", "5"),
            ],
        )


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
