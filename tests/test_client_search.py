"""
Tests for the search side of L{logsvc.client.LogClient}: C{query_all},
C{query_pages}, C{stats} and C{tail} against the real Resource tree in memory.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from logsvc.client import LogServiceError, Page, _EventStream
from logsvc.record import Record
from logsvc.testing import MemoryLogService

T0 = 1_767_323_045_000_000


def rec(message: str, level: int = 6) -> Record:
    """A record with this message."""
    return Record(T0, T0, level, "h", "api", message, None)


class QueryAllTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.service = MemoryLogService()
        self.service.store.append([rec(f"m{n}", level=3 if n % 2 else 6) for n in range(25)])
        self.client = self.service.client()

    def test_async_iterator(self) -> None:
        """query_all yields every match across pages, in order."""

        async def collect() -> list[str]:
            return [r["message"] async for r in self.client.query_all(level="error", order="asc", limit=4)]

        found = self.successResultOf(Deferred.fromCoroutine(collect()))
        self.assertEqual(found, [f"m{n}" for n in range(1, 25, 2)])

    def test_pages(self) -> None:
        """query_pages calls back once per page and fires with the count."""
        pages: list[Page] = []
        count = self.successResultOf(self.client.query_pages(pages.append, limit=10))
        self.assertEqual((count, [len(p.logs) for p in pages]), (25, [10, 10, 5]))

    def test_pages_error(self) -> None:
        """A bad filter fails query_pages with the server's reason."""
        failure = self.failureResultOf(self.client.query_pages(lambda page: None, order="up"), LogServiceError)
        self.assertEqual(failure.value.status, 400)

    def test_stats(self) -> None:
        """stats returns the /stats object for the filters given."""
        body = self.successResultOf(self.client.stats(level="error", interval="1h"))
        self.assertEqual((body["total"], body["levels"]), (12, {"error": 12}))
        top = self.successResultOf(self.client.stats(by="level"))
        self.assertEqual(top["values"], [{"value": "info", "count": 13}, {"value": "error", "count": 12}])


class TailClientTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.service = MemoryLogService()
        self.client = self.service.client()
        self.clock = Clock()
        self.received: list[dict[str, Any]] = []

    def commit(self, *messages: str) -> None:
        self.service.pipeline.submit([rec(m) for m in messages])
        self.service.treq.flush()

    def test_live_and_resume(self) -> None:
        """Records arrive once each; after the server cuts the tail off, it resumes after the last id."""
        self.commit("before")
        tail = self.client.tail(self.received.append, clock=self.clock, sinceId=0, q="-skip")
        self.service.treq.flush()
        self.commit("a", "skip me", "b")
        self.assertEqual([r["message"] for r in self.received], ["before", "a", "b"])
        # Cut every tail off as a slow client would be.
        for session in list(self.service.root.children[b"logs"].children[b"tail"].hub.sessions):
            session._overflow()
        self.service.treq.flush()
        self.commit("c")
        self.clock.advance(1)
        self.service.treq.flush()
        self.commit("d")
        self.assertEqual([r["message"] for r in self.received], ["before", "a", "b", "c", "d"])
        self.assertEqual(tail.lastId, 6)
        tail.stop()
        self.assertTrue(tail.done.called)

    def test_refused(self) -> None:
        """A tail the server refuses (bad filter) ends with the server's error."""
        tail = self.client.tail(self.received.append, clock=self.clock, level="loud")
        self.service.treq.flush()
        failure = self.failureResultOf(tail.done, LogServiceError)
        self.assertEqual(failure.value.status, 400)


class EventStreamTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """Events split across reads, CRLF, comments and multi-line data parse as SSE says."""
        events: list[tuple[str, str | None, str]] = []
        stream = _EventStream(lambda *e: events.append(e))
        for chunk in [b": hi\r\n\r\nid: 1\ndata: {", b'"a":1}\n\nevent: overflow\ndata: x\ndata: y\n\nid: 9\n\n']:
            stream.dataReceived(chunk)
        self.assertEqual(events, [("message", "1", '{"a":1}'), ("overflow", None, "x\ny"), ("position", "9", "")])
