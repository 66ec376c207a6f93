"""
Tests for L{logsvc.web.tail}: the SSE live tail, its replay-then-live hand
over, filters, heartbeats and the cut-off of slow clients.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import treq
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from logsvc.pagesize import PAGE_BYTES
from logsvc.pipeline import Pipeline
from logsvc.query import Query
from logsvc.record import Record
from logsvc.store.memory import MemoryStore
from logsvc.testing import MemoryLogService
from logsvc.web.tail import TailHub, TailSession
from tests.fakes import FakeStreamingRequest
from tests.storetests import LANGUAGE_CASES, languageRecords

T0 = 1_767_323_045_000_000


def rec(message: str, level: int = 6, service: str = "api") -> Record:
    """A record with this message."""
    return Record(T0, T0, level, "h", service, message, None)


class FakeRequest(FakeStreamingRequest):
    """A request that records what a tail writes, and decodes its events."""

    def events(self) -> list[tuple[str | None, str | None, Any]]:
        """The (event, id, decoded data) of each event with data, in order."""
        found = []
        for block in b"".join(self.written).decode().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line and not line.startswith(":"))
            if "data" in fields:
                found.append((fields.get("event"), fields.get("id"), orjson.loads(fields["data"])))
        return found

    def ids(self) -> list[int]:
        return [int(i) for e, i, _ in self.events() if e is None and i is not None]


class ControlledStore(MemoryStore):
    """A MemoryStore whose replay reads wait until the test answers them."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[Deferred[Any], Query, int, int, list[Any]]] = []

    def afterId(self, query: Query, lastId: int, limit: int) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        snapshot = self.successResultOf(super().afterId(query, lastId, limit))
        self.reads.append((d, query, lastId, limit, snapshot))
        return d

    def successResultOf(self, d: Deferred[Any]) -> Any:
        found: list[Any] = []
        d.addCallback(found.append)
        return found[0]

    def answer(self, *, late: bool) -> None:
        """Answer the oldest read with what the store held when asked, or holds now."""
        d, query, lastId, limit, snapshot = self.reads.pop(0)
        d.callback(self.successResultOf(super().afterId(query, lastId, limit)) if late else snapshot)


class TailSessionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = ControlledStore()
        self.pipeline = Pipeline(self.store, reactor=self.clock, delay=0)
        self.hub = TailHub(self.pipeline, clock=self.clock, heartbeat=15)

    def tail(self, sinceId: int | None = None, query: Query | None = None, **kw: Any) -> FakeRequest:
        request = FakeRequest()
        TailSession(self.hub, self.store, request, query or Query(limit=None), sinceId, replayPage=2, **kw).start()  # type: ignore[arg-type]
        return request

    def commit(self, *messages: str) -> None:
        self.pipeline.submit([rec(m) for m in messages])

    def test_live(self) -> None:
        """Each committed record is one event with its id and JSON."""
        request = self.tail()
        self.commit("a", "b")
        self.assertEqual(
            [(i, d["message"]) for _, i, d in request.events()],
            [("1", "a"), ("2", "b")],
        )
        self.assertEqual(request.headers[b"content-type"], b"text/event-stream; charset=utf-8")

    def test_replay_then_live(self) -> None:
        """Records committed during the replay come once, after it, in order."""
        self.commit("1", "2", "3", "4", "5")
        request = self.tail(sinceId=2)
        self.commit("6")
        self.store.answer(late=False)  # 3, 4 (page of 2)
        self.commit("7")
        self.store.answer(late=True)  # 5, 6, 7 are there; a page of 2: 5, 6
        self.store.answer(late=True)  # 7
        self.commit("8")
        self.assertEqual(request.ids(), [3, 4, 5, 6, 7, 8])

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(["commit", "answer-early", "answer-late"]), st.integers(1, 3)), max_size=25), st.integers(0, 4))
    def test_no_gap_no_duplicate(self, steps: list[tuple[str, int]], since: int) -> None:
        """However commits and replay reads interleave, every id above since_id arrives once, in order."""
        self.setUp()
        self.commit(*[str(n) for n in range(4)])
        request = self.tail(sinceId=since)
        for action, n in steps:
            if action == "commit":
                self.commit(*["x"] * n)
            elif self.store.reads:
                self.store.answer(late=action == "answer-late")
        while self.store.reads:
            self.store.answer(late=True)
        self.commit("last")
        self.assertEqual(request.ids(), list(range(since + 1, len(self.store.rows) + 1)))

    def test_filters(self) -> None:
        """Only records matching the filters are sent, live and replayed."""
        self.pipeline.submit([rec("disk full", level=3), rec("fine"), rec("disk ok", service="db", level=3)])
        request = self.tail(sinceId=0, query=Query(level=3, q="disk", services=("api",), limit=None))
        self.store.answer(late=True)
        self.pipeline.submit([rec("disk gone", level=2), rec("disk fine")])
        self.assertEqual([d["message"] for _, _, d in request.events()], ["disk full", "disk gone"])

    def test_heartbeat(self) -> None:
        """Idle tails get a comment every heartbeat."""
        request = self.tail()
        self.clock.advance(15)
        self.clock.advance(15)
        self.assertEqual(b"".join(request.written).count(b": keep-alive\n\n"), 2)

    def test_slow_client_cut_off(self) -> None:
        """A client that stops reading gets held events up to the bound, then a final overflow event."""
        request = self.tail(maxBuffer=3)
        self.commit("a")
        request.producer.pauseProducing()
        self.commit("b", "c")
        self.assertFalse(request.finished)
        self.commit("d", "e")
        self.assertTrue(request.finished)
        event, _, data = request.events()[-1]
        self.assertEqual((event, data["last_id"]), ("overflow", 1))
        self.assertEqual(request.ids(), [1])
        self.assertEqual(self.hub.sessions, set())

    def test_slow_client_cut_off_by_bytes(self) -> None:
        """Held events are bounded in bytes too: big records overflow the tail long before the record bound; one batch alone is held."""
        request = self.tail(maxBuffer=1000, maxBufferBytes=10_000)
        request.producer.pauseProducing()
        self.commit("x" * 30_000)
        self.assertFalse(request.finished)
        self.commit("y" * 100)
        self.assertTrue(request.finished)
        event, _, data = request.events()[-1]
        self.assertEqual(event, "overflow")
        self.assertIn("10000 bytes", data["error"])

    def test_replay_cut_by_bytes_goes_on(self) -> None:
        """A replay page cut short by its byte budget is followed by the next page, not taken for the end of the replay."""
        self.store.rows.extend((n, 0, 0, 6, "h", "s", "x" * (PAGE_BYTES // 2), None) for n in range(1, 6))
        self.store._nextId = 6
        request = FakeRequest()
        TailSession(self.hub, self.store, request, Query(limit=None), 0, replayPage=100).start()  # type: ignore[arg-type]
        while self.store.reads:
            self.store.answer(late=True)
        self.assertEqual(request.ids(), [1, 2, 3, 4, 5])

    def test_resume_held(self) -> None:
        """Events held while paused go out in order on resume."""
        request = self.tail(maxBuffer=10)
        request.producer.pauseProducing()
        self.commit("a", "b")
        self.assertEqual(request.ids(), [])
        request.producer.resumeProducing()
        self.commit("c")
        self.assertEqual(request.ids(), [1, 2, 3])

    def test_disconnect_leaves(self) -> None:
        """A client that goes away leaves the hub; the last one stops the heartbeat and gets nothing more."""
        request = self.tail()
        request.finishing.errback(Failure(ConnectionError()))
        self.commit("after")
        self.assertEqual((self.hub.sessions, request.ids()), (set(), []))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.hub.lastId, 1)

    def test_position_named(self) -> None:
        """A live-only tail opened after commits names the current id, to resume from."""
        self.tail()
        self.commit("a")
        request = self.tail()
        self.assertIn(b"id: 1\n\n", b"".join(request.written))

    def test_many_idle_tails_one_subscription(self) -> None:
        """Hundreds of tails share one pipeline subscription and one timer."""
        requests = [self.tail() for _ in range(300)]
        self.assertEqual((len(self.pipeline._subscribers), len(self.clock.getDelayedCalls())), (1, 1))
        self.commit("a")
        # Matching 300 tails may take more than one time slice of the reactor.
        for _ in range(300):
            self.clock.advance(0)
        self.assertTrue(all(r.ids() == [1] for r in requests))

    def test_matching_yields_to_the_reactor(self) -> None:
        """Tails are matched a time slice at a time: past it, the rest waits for a later reactor turn, in order."""
        self.hub.timeSlice = 0
        requests = [self.tail() for _ in range(3)]
        self.commit("a")
        self.commit("b")
        self.assertEqual(sorted(len(r.ids()) for r in requests), [0, 0, 1])
        for _ in range(10):
            self.clock.advance(0)
        self.assertTrue(all(r.ids() == [1, 2] for r in requests))

    def test_dearest_tail_shed(self) -> None:
        """When matching falls behind by more than the backlog bound, the dearest tail per record is cut off with an overflow event; the others go on."""
        self.hub.timeSlice = 0
        self.hub.maxBacklog = 3
        cheap = self.tail()
        dear = self.tail()
        sessions = {s.request: s for s in self.hub.sessions}  # type: ignore[attr-defined]
        sessions[cheap].cost, sessions[dear].cost = 0.001, 1.0
        sessions[cheap].seen = sessions[dear].seen = 10
        self.commit("a", "b")
        self.commit("c", "d")
        self.assertTrue(dear.finished)
        self.assertEqual(dear.events()[-1][0], "overflow")
        for _ in range(10):
            self.clock.advance(0)
        self.assertEqual(cheap.ids(), [1, 2, 3, 4])
        self.assertEqual(self.hub.shed, 1)


class TailAPITests(SynchronousTestCase):
    def setUp(self) -> None:
        self.service = MemoryLogService()

    def test_stream(self) -> None:
        """GET /logs/tail streams records posted afterwards as SSE."""
        self.service.store.append([rec("old")])
        response = self.successResultOf(
            self.service.treq.get("http://logsvc.test/logs/tail?since_id=0&q=new+or+old", headers={b"accept": [b"text/event-stream"]})
        )
        chunks: list[bytes] = []
        treq.collect(response, chunks.append)
        self.service.pipeline.submit([rec("new or old")])
        self.service.treq.flush()
        text = b"".join(chunks).decode()
        self.assertEqual(re.findall(r"id: (\d+)\ndata", text), ["2"])
        self.assertEqual(response.code, 200)

    def test_last_event_id(self) -> None:
        """Last-Event-ID wins over since_id; a bad one is a 400 naming it."""
        self.service.store.append([rec("a"), rec("b"), rec("c")])
        response = self.successResultOf(
            self.service.treq.get("http://logsvc.test/logs/tail?since_id=0", headers={b"last-event-id": [b"2"]})
        )
        chunks: list[bytes] = []
        treq.collect(response, chunks.append)
        self.service.treq.flush()
        self.assertEqual(re.findall(r"id: (\d+)\ndata", b"".join(chunks).decode()), ["3"])
        response = self.successResultOf(
            self.service.treq.get("http://logsvc.test/logs/tail", headers={b"last-event-id": [b"x"]})
        )
        body = orjson.loads(self.successResultOf(treq.content(response)))
        self.assertEqual((response.code, body["param"]), (400, "Last-Event-ID"))




class TailQueryLanguageTests(SynchronousTestCase):
    """The live tail matches exactly what a search matches (L{LANGUAGE_CASES})."""

    def test_languageCases(self) -> None:
        """Over HTTP, a tail of each q streams exactly the records the case names."""
        service = MemoryLogService()
        responses = []
        for q, _ in LANGUAGE_CASES:
            response = self.successResultOf(
                service.treq.get("http://logsvc.test/logs/tail", params={"q": q}, headers={b"accept": [b"text/event-stream"]})
            )
            self.assertEqual(response.code, 200, q)
            chunks: list[bytes] = []
            treq.collect(response, chunks.append)
            responses.append(chunks)
        service.pipeline.submit(languageRecords())
        service.treq.flush()
        for (q, expected), chunks in zip(LANGUAGE_CASES, responses, strict=True):
            ids = [int(i) for i in re.findall(r"id: (\d+)\ndata", b"".join(chunks).decode())]
            self.assertEqual(ids, expected, q)

    def test_badQuery(self) -> None:
        """A tail's q that cannot be read is a JSON 400 naming the position."""
        service = MemoryLogService()
        response = self.successResultOf(service.treq.get("http://logsvc.test/logs/tail", params={"q": "(a"}))
        self.assertEqual(response.code, 400)
        self.assertEqual(self.successResultOf(response.json())["position"], 0)
