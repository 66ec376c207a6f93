"""
Tests for the search side of L{logsvc.client.LogClient}: C{queryAll},
C{queryPages}, C{stats} and C{tail} against the real Resource tree in memory.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from logsvc.client import LogClient, LogServiceError, LogServiceUnreachable, Page, _EventStream
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
        """queryAll yields every match across pages, in order."""

        async def collect() -> list[str]:
            return [r["message"] async for r in self.client.queryAll(level="error", order="asc", limit=4)]

        found = self.successResultOf(Deferred.fromCoroutine(collect()))
        self.assertEqual(found, [f"m{n}" for n in range(1, 25, 2)])

    def test_pages(self) -> None:
        """queryPages calls back once per page and fires with the count."""
        pages: list[Page] = []
        count = self.successResultOf(self.client.queryPages(pages.append, limit=10))
        self.assertEqual((count, [len(p.logs) for p in pages]), (25, [10, 10, 5]))

    def test_pages_error(self) -> None:
        """A bad filter fails queryPages with the server's reason."""
        failure = self.failureResultOf(self.client.queryPages(lambda page: None, order="up"), LogServiceError)
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


class _RefusingHTTP:
    """An HTTP client whose every request fails as a refused connection."""

    def __init__(self) -> None:
        self.requests = 0

    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[Any]:
        self.requests += 1
        return fail(ConnectionRefusedError())


class TailConnectionTests(SynchronousTestCase):
    """
    A tail ends when its first connection fails, and retries forever, with a
    call per attempt, once it has streamed.
    """

    def setUp(self) -> None:
        self.service = MemoryLogService()
        self.client = self.service.client()
        self.received: list[dict[str, Any]] = []
        self.attempts: list[tuple[str | None, float]] = []

    def onReconnect(self, why: Exception | None, delay: float) -> None:
        self.attempts.append((type(why).__name__ if why is not None else None, delay))

    def test_firstConnectionFails(self) -> None:
        """
        When the first connection fails, done fails with
        LogServiceUnreachable naming the URL, and nothing is retried.
        """
        refusing = _RefusingHTTP()
        clock = Clock()
        client = LogClient("http://127.0.0.1:9", httpClient=refusing, clock=clock)  # type: ignore[arg-type]
        tail = client.tail(self.received.append, onReconnect=self.onReconnect)
        failure = self.failureResultOf(tail.done, LogServiceUnreachable)
        self.assertIn("cannot reach http://127.0.0.1:9/logs/tail", str(failure.value))
        clock.advance(60)
        self.assertEqual((refusing.requests, self.attempts), (1, []))

    def test_lostAfterStreamingRetriesForever(self) -> None:
        """
        Once a tail has streamed, a lost connection and failed attempts are
        retried (one onReconnect call each, waits doubling to the maximum)
        until the server is back; then it resumes after the last id.
        """
        self.service.pipeline.submit([rec("first")])
        tail = self.client.tail(
            self.received.append, sinceId=0, onReconnect=self.onReconnect, maxReconnectDelay=2.0
        )
        self.service.treq.flush()
        self.assertEqual([r["message"] for r in self.received], ["first"])
        working = self.client._http
        refusing = _RefusingHTTP()
        self.client._http = refusing
        for session in list(self.service.root.children[b"logs"].children[b"tail"].hub.sessions):
            session._overflow()
        self.service.treq.flush()
        for _ in range(4):
            self.service.clock.advance(2.0)
        self.assertEqual(
            self.attempts,
            [(None, 0.5), ("LogServiceUnreachable", 1.0)] + [("LogServiceUnreachable", 2.0)] * 3,
        )
        self.assertFalse(tail.done.called)
        self.service.pipeline.submit([rec("while away")])
        self.client._http = working
        self.service.clock.advance(2.0)
        self.service.treq.flush()
        self.assertEqual([r["message"] for r in self.received], ["first", "while away"])
        tail.stop()

    def test_silenceDropsTheStream(self) -> None:
        """
        A stream that delivers nothing, not even a keep-alive, for
        idleTimeout seconds is dropped and made anew.
        """
        tail = self.client.tail(self.received.append, onReconnect=self.onReconnect, idleTimeout=100.0)
        self.service.treq.flush()
        self.assertTrue(tail.connected)
        # The server's keep-alives (every 15 s) keep it open...
        self.service.clock.advance(90)
        self.service.treq.flush()
        self.service.clock.advance(90)
        self.service.treq.flush()
        self.assertEqual(self.attempts, [])
        # ...and a stream that falls silent is dropped.
        for session in list(self.service.root.children[b"logs"].children[b"tail"].hub.sessions):
            session.keepAlive = lambda: None  # type: ignore[method-assign]
        self.service.clock.advance(101)
        self.service.treq.flush()
        self.assertEqual(self.attempts, [(None, 0.5)])
        tail.stop()
