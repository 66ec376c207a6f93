"""
C{GET /logs/tail}: committed records as Server-Sent Events, live.

Each record is one event: C{id:} its record id, C{data:} its JSON (as in
C{GET /logs}).  The C{GET /logs} filters apply (L{TAIL_PARAMETERS}; any other
parameter, C{limit} and C{cursor} among them, is a 400).  With a C{Last-Event-ID} header or C{since_id}, the
records committed after that id are replayed from the store first, then the
stream turns live, with no gap and no duplicate: the tail subscribes to
committed batches I{before} it reads the store, holds what arrives meanwhile,
and sends only ids above the last one sent.

A comment line (C{: keep-alive}) goes out every C{heartbeat} seconds so idle
streams stay open through proxies.  A client that does not keep up has its
events held up to C{maxBuffer} records and C{maxBufferBytes} bytes; past that it gets one final
C{event: overflow} (its C{data} names the last id sent, to resume from) and
the stream ends.  One L{TailHub} subscribes to the pipeline for every tail and
renders each record once, so idle tails cost a set entry each.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from logsvc.batchmatch import BatchIndex, indexesOf
from logsvc.matcher import MatchRecord
from logsvc.pagesize import PAGE_BYTES, rowBytes
from logsvc.pipeline import Pipeline
from logsvc.query import EVERYTHING, FILTER_PARAMETERS, Query, QueryError, parseQuery
from logsvc.record import Record, renderRow
from logsvc.store.base import ICommitFeed, IStore, QueryTimeout, Row
from logsvc.times import nowMicros
from logsvc.web.common import JSONResource, isGone
from logsvc.web.errors import errorBody

#: The parameters of C{GET /logs/tail} (besides C{field.KEY}).
TAIL_PARAMETERS = FILTER_PARAMETERS | {"since_id"}
#: Seconds between keep-alive comments.
DEFAULT_HEARTBEAT = 15.0
#: Records a tail may hold for a client that does not keep up.
DEFAULT_MAX_BUFFER = 10_000
#: Bytes of events a tail may hold for a client that does not keep up (one
#: committed batch is held whatever its size).
DEFAULT_MAX_BUFFER_BYTES = 4 * PAGE_BYTES
#: Seconds of tail matching the reactor does at a time (then it serves
#: acks, C{/health} and the rest before going on).
TIME_SLICE = 0.005
#: Committed records waiting to be matched for the tails past which the
#: dearest tail is cut off (the tails cost more than the CPU can give).
MAX_BACKLOG = 20_000
#: Records per store read while replaying.
REPLAY_PAGE = 1000


def eventBytes(row: Row) -> bytes:
    """
    @return: the SSE event of one stored row.
    """
    return b"id: %d\ndata: %s\n\n" % (row[0], orjson.dumps(renderRow(row)))


class CommittedBatch:
    """
    One committed batch as the tails see it, each event rendered at most once
    however many tails want it.
    """

    def __init__(self, first: int, records: list[Record]) -> None:
        self.first = first
        self.records = records
        self.last = first + len(records) - 1
        self._events: list[bytes | None] = [None] * len(records)
        self._joined: bytes | None = None
        #: Tails with equal filters share one pass over the batch and its
        #: events joined.
        self._selected: dict[Query, tuple[list[int], bytes]] = {}
        #: The batch indexed for every tail's query (L{BatchIndex}): each
        #: record cut into words once, each query a few look-ups.
        self._index: BatchIndex | None = None

    def row(self, index: int) -> Row:
        return (self.first + index, *self.records[index])

    def event(self, index: int) -> bytes:
        event = self._events[index]
        if event is None:
            event = self._events[index] = eventBytes(self.row(index))
        return event

    def select(self, query: Query | None, after: int) -> tuple[bytes, int, int]:
        """
        @param query: the tail's filters, or L{None} for none.
        @param after: only ids above this one.
        @return: the events, their count, and the last id among them (or
            C{after} when none).
        """
        start = max(0, after - self.first + 1)
        if start >= len(self.records):
            return b"", 0, after
        if query is None:
            if start == 0:
                if self._joined is None:
                    self._joined = b"".join(self.event(i) for i in range(len(self.records)))
                return self._joined, len(self.records), self.last
            return b"".join(self.event(i) for i in range(start, len(self.records))), len(self.records) - start, self.last
        cached = self._selected.get(query)
        if cached is None:
            if self._index is None:
                self._index = BatchIndex([MatchRecord(self.row(i)) for i in range(len(self.records))])
            selected = indexesOf(self._index.matching(query.filter))
            joined = b"".join(self.event(i) for i in selected)
            cached = self._selected[query] = (selected, joined)
        selected, joined = cached
        if not selected:
            return b"", 0, after
        if start == 0:
            return joined, len(selected), self.first + selected[-1]
        chosen = [i for i in selected if i >= start]
        if not chosen:
            return b"", 0, after
        return b"".join(self.event(i) for i in chosen), len(chosen), self.first + chosen[-1]


def _filtersNothing(query: Query) -> bool:
    return (
        query.since is None
        and query.until is None
        and query.level is None
        and not query.sources
        and not query.services
        and not query.fields
        and query.search == EVERYTHING
    )


class TailHub:
    """
    The one pipeline subscriber all tails share, and their heartbeat.

    @ivar lastId: the id of the last committed record seen, or L{None}.
    """

    def __init__(
        self,
        pipeline: ICommitFeed | Pipeline,
        *,
        clock: Any,
        heartbeat: float = DEFAULT_HEARTBEAT,
        timeSlice: float = TIME_SLICE,
        maxBacklog: int = MAX_BACKLOG,
    ) -> None:
        """
        @param pipeline: where committed batches come from: the pipeline, or
            the store when it feeds every node's commits (L{ICommitFeed}).
        @param timeSlice: seconds the reactor spends matching tails at a
            time before it serves other work.
        @param maxBacklog: committed records not yet matched for every tail
            past which the dearest tail is cut off.
        """
        self.pipeline = pipeline
        self.clock = clock
        self.heartbeat = heartbeat
        self.sessions: set[TailSession] = set()
        self.lastId: int | None = None
        self.timeSlice = timeSlice
        self.maxBacklog = maxBacklog
        #: Tails cut off because matching them fell behind.
        self.shed = 0
        #: Committed batches not yet handed to every tail, each with the
        #: tails still waiting for it; and their records.
        self._queue: deque[tuple[CommittedBatch, list[TailSession]]] = deque()
        self._backlog = 0
        self._resumeCall: Any = None
        self._unsubscribe: Any = None
        self._beat: LoopingCall | None = None

    def add(self, session: TailSession) -> None:
        if self._unsubscribe is None:
            # Once subscribed, stay: lastId then always names the current
            # position for the next tail to start from.
            self._unsubscribe = self.pipeline.subscribe(self._committed)
        if not self.sessions:
            self._beat = LoopingCall(self._heartbeat)
            self._beat.clock = self.clock
            self._beat.start(self.heartbeat, now=False)
        self.sessions.add(session)

    def remove(self, session: TailSession) -> None:
        self.sessions.discard(session)
        if not self.sessions and self._beat is not None:
            if self._beat.running:
                self._beat.stop()
            self._beat = None

    def _committed(self, first: int, records: list[Record]) -> None:
        self.lastId = first + len(records) - 1
        if not self.sessions:
            return
        batch = CommittedBatch(first, records)
        self._queue.append((batch, list(self.sessions)))
        self._backlog += len(records)
        if self._backlog > self.maxBacklog and self.sessions:
            # One a commit: the others then catch up sooner.
            self._shed()
        if self._resumeCall is None:
            self._deliver()

    def _deliver(self) -> None:
        """
        Hand queued batches to their tails, in order, for at most
        C{timeSlice} seconds; the rest in a later reactor turn, so matching
        many tails never holds the reactor (acks, C{/health}) for long.
        """
        self._resumeCall = None
        # The hub's clock: the reactor's time in service, a test's Clock
        # (which stands still while work is done) in tests.
        seconds = self.clock.seconds
        deadline = seconds() + self.timeSlice
        queue = self._queue
        while queue:
            batch, waiting = queue[0]
            while waiting:
                session = waiting.pop()
                started = time.perf_counter()
                session.committed(batch)
                session.cost += time.perf_counter() - started
                session.seen += len(batch.records)
                if seconds() >= deadline and (waiting or len(queue) > 1):
                    if self._resumeCall is None:
                        self._resumeCall = self.clock.callLater(0, self._deliver)
                    return
            queue.popleft()
            self._backlog -= len(batch.records)

    def _shed(self) -> None:
        """
        The tails together cost more than the reactor can give them: cut
        off the dearest one per record (it gets the overflow event and
        resumes from its last id, as a slow client does).
        """
        dearest = max(self.sessions, key=lambda s: s.cost / max(1, s.seen))
        self.shed += 1
        dearest.fellBehind()
        # Its share of the queue is gone with it.
        for _, waiting in self._queue:
            if dearest in waiting:
                waiting.remove(dearest)

    def _heartbeat(self) -> None:
        for session in list(self.sessions):
            session.keepAlive()


@implementer(IPushProducer)
class TailSession:
    """
    One client's tail: replay, then live; see the module docstring.

    @ivar lastSent: the id of the last record sent (or skipped as not
        matching during replay), or L{None} before any.
    """

    log = Logger()

    def __init__(
        self,
        hub: TailHub,
        store: IStore,
        request: Request,
        query: Query,
        sinceId: int | None,
        *,
        maxBuffer: int = DEFAULT_MAX_BUFFER,
        maxBufferBytes: int = DEFAULT_MAX_BUFFER_BYTES,
        replayPage: int = REPLAY_PAGE,
    ) -> None:
        self.hub = hub
        self.store = store
        self.request = request
        self.query = query
        self.filter: Query | None = None if _filtersNothing(query) else query
        self.lastSent = sinceId
        self.maxBuffer = maxBuffer
        self.replayPage = replayPage
        self.replaying = sinceId is not None
        self.maxBufferBytes = maxBufferBytes
        self._held: deque[tuple[bytes, int]] = deque()
        self._heldRecords = 0
        self._heldBytes = 0
        self._early: list[CommittedBatch] = []
        self._earlyRecords = 0
        self._paused = False
        self._reading = False
        self.closed = False
        #: Seconds spent matching committed batches for this tail, and the
        #: records they held (what its query costs per record).
        self.cost = 0.0
        self.seen = 0

    def start(self) -> None:
        """
        Send the headers, subscribe, and start the replay (if any).
        """
        request = self.request
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-accel-buffering", b"no")
        request.registerProducer(self, True)
        request.notifyFinish().addBoth(lambda _: self.close())
        self.hub.add(self)
        opening = b"retry: 1000\n: logsvc tail\n\n"
        if self.lastSent is None and self.hub.lastId is not None:
            # Name the position now, so a client that reconnects before any
            # record arrives resumes from here.
            self.lastSent = self.hub.lastId
        if self.lastSent is not None and not self.replaying:
            opening += b"id: %d\n\n" % self.lastSent
        request.write(opening)
        if self.replaying:
            self._replayNext()

    # Replay

    def _replayNext(self) -> None:
        if self.closed or self._paused or self._reading or not self.replaying:
            return
        assert self.lastSent is not None
        self._reading = True
        d = self.store.afterId(self.query, self.lastSent, self.replayPage)
        d.addCallbacks(self._replayed, self._replayFailed)

    def _replayed(self, rows: list[Row]) -> None:
        self._reading = False
        if self.closed:
            return
        if rows:
            self._send(b"".join(eventBytes(row) for row in rows), len(rows))
            self.lastSent = rows[-1][0]
        # A page cut short by its byte budget is not the end of the replay.
        if len(rows) < self.replayPage and sum(rowBytes(row) for row in rows) <= PAGE_BYTES:
            self._goLive()
        else:
            self._replayNext()

    def _replayFailed(self, failure: Any) -> None:
        self._reading = False
        if isinstance(failure.value, QueryTimeout):
            error = str(failure.value)
        else:
            error = "replay failed"
            self.log.failure("tail replay failed", failure=failure)
        self._end(b"event: error\ndata: %s\n\n" % orjson.dumps({"error": error, "last_id": self.lastSent}))

    def _goLive(self) -> None:
        self.replaying = False
        early, self._early = self._early, []
        self._earlyRecords = 0
        for batch in early:
            self.committed(batch)

    # Live

    def committed(self, batch: CommittedBatch) -> None:
        """
        Take a committed batch: held while replaying, else sent (or held
        while the client is slow).
        """
        if self.closed:
            return
        if self.replaying:
            self._early.append(batch)
            self._earlyRecords += len(batch.records)
            if self._earlyRecords > self.maxBuffer:
                self._overflow()
            return
        after = self.lastSent if self.lastSent is not None else batch.first - 1
        data, count, _ = batch.select(self.filter, after)
        # Records of the batch that did not match are passed over too.
        self.lastSent = max(after, batch.last)
        if count:
            self._send(data, count)

    def _send(self, data: bytes, count: int) -> None:
        if self._paused or self._held:
            self._held.append((data, count))
            self._heldRecords += count
            self._heldBytes += len(data)
            # One batch alone is always held (however big its records).
            if self._heldRecords > self.maxBuffer or (self._heldBytes > self.maxBufferBytes and len(self._held) > 1):
                self._overflow()
            return
        self.request.write(data)

    def fellBehind(self) -> None:
        """
        Matching this tail costs more than the service can spend: end it as
        a client that fell behind, with the id to resume from.
        """
        self._overflow()

    def _overflow(self) -> None:
        # The last id the client has been sent: held events never reached it.
        sent = self._sentId()
        body = orjson.dumps(
            {
                "error": f"tail fell behind by more than {self.maxBuffer} records or {self.maxBufferBytes} bytes;"
                " resume from last_id",
                "last_id": sent,
            }
        )
        self._held.clear()
        self._heldRecords = self._heldBytes = 0
        self._end(b"event: overflow\ndata: %s\n\n" % body)

    def _sentId(self) -> int | None:
        if not self._held:
            return self.lastSent
        # Events held back start right after the last id written.
        first = self._held[0][0]
        held = int(first[4 : first.index(b"\n")])
        return held - 1

    def keepAlive(self) -> None:
        """
        Write a comment, unless the client is behind.
        """
        if not self.closed and not self._paused and not self._held:
            self.request.write(b": keep-alive\n\n")
            # A stream the client only reads is not idle: keep the HTTP
            # channel's idle timeout (--idle-timeout) from closing it.
            resetTimeout = getattr(self.request.channel, "resetTimeout", None)
            if resetTimeout is not None:
                resetTimeout()

    def _end(self, final: bytes) -> None:
        if self.closed:
            return
        request = self.request
        self.close()
        if not isGone(request):
            request.write(final)
            request.unregisterProducer()
            request.finish()

    def close(self) -> None:
        """
        Stop: unsubscribe and drop what is held.
        """
        if self.closed:
            return
        self.closed = True
        self.hub.remove(self)
        self._held.clear()
        self._early = []

    # IPushProducer

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        while self._held and not self._paused and not self.closed:
            data, count = self._held.popleft()
            self._heldRecords -= count
            self._heldBytes -= len(data)
            self.request.write(data)
        self._replayNext()

    def stopProducing(self) -> None:
        self.close()


class TailResource(JSONResource):
    """
    C{GET /logs/tail}; see the module docstring.
    """

    isLeaf = True

    def __init__(
        self,
        store: IStore,
        pipeline: Pipeline,
        *,
        clock: Any = None,
        heartbeat: float = DEFAULT_HEARTBEAT,
        maxBuffer: int = DEFAULT_MAX_BUFFER,
        now: Callable[[], int] = nowMicros,
    ) -> None:
        """
        @param clock: schedules the heartbeats.
        @param now: the current time in microseconds, for relative times.
        """
        super().__init__()
        if clock is None:
            from twisted.internet import reactor as clock
        self.store = store
        # Several nodes on one database: tails follow every node's commits.
        self.hub = TailHub(ICommitFeed(store, pipeline), clock=clock, heartbeat=heartbeat)
        self.maxBuffer = maxBuffer
        self.now = now

    def render_GET(self, request: Request) -> object:
        try:
            query = parseQuery(
                request.args or {}, allowUnlimited=True, accepted=TAIL_PARAMETERS, now=self.now
            )
            sinceId = _sinceId(request)
        except QueryError as e:
            return errorBody(request, 400, str(e), **e.details())
        TailSession(self.hub, self.store, request, query, sinceId, maxBuffer=self.maxBuffer).start()
        return NOT_DONE_YET


def _sinceId(request: Request) -> int | None:
    header = request.getHeader(b"last-event-id")
    if header is not None and header.strip():
        text, name = header.decode("latin-1").strip(), "Last-Event-ID"
    else:
        values = (request.args or {}).get(b"since_id")
        if not values or not values[-1].strip():
            return None
        text, name = values[-1].decode("utf-8", "replace").strip(), "since_id"
    try:
        value = int(text)
    except ValueError:
        raise QueryError(name, f"not a record id: {text!r}") from None
    if value < 0:
        raise QueryError(name, "must not be negative")
    return value
