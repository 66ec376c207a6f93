"""
C{GET /logs} with C{Accept: application/x-ndjson} (or C{format=ndjson}):
every matching record, one JSON object per line, streamed.

There is no implicit limit (an explicit C{limit} still caps the count).  The
records are read in keyset pages (C{PAGE} records each, on the store's reader
threads, rendered to JSON there) by an L{IPushProducer} registered on the
request.  An export without a limit whose time bounds are known (its
C{since} and C{until}, else, for queries without C{q} or field filters, the
matches' first and last times, asked of the store once) is read in time
slices, two at once on two reader threads, and written in order: the slice
being written, and the next one, sized from the records per second seen so
far to hold about C{AHEAD_PAGES} pages, so it is mostly read by the time
its turn comes.  Memory stays at a few pages however many records match:
the slice being written holds one page read ahead while the client is
behind, the next slice at most C{AHEAD_PAGES}; a client that disconnects
stops the reads.  Records committed after an export began may or may not
be in it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from logsvc.query import EVERYTHING, Query
from logsvc.store.base import IStore, QueryTimeout
from logsvc.web.common import JSON_TYPE, finishWith, isGone, timeoutBody

NDJSON_TYPE = b"application/x-ndjson"

#: Records per store read.
PAGE = 10_000

#: The first slice of an export with known bounds is this fraction of its
#: time range; later ones are sized from the records per second seen.
FIRST_SLICE = 1 / 64

#: Pages the slice after the one being written may hold before it waits.
AHEAD_PAGES = 2


def wantsNDJSON(request: Request) -> bool:
    """
    @return: True when C{request} asks for an NDJSON export (its C{Accept}
        header names NDJSON, or C{format=ndjson}).
    """
    accept = (request.getHeader(b"accept") or b"").lower()
    if b"ndjson" in accept or b"jsonlines" in accept:
        return True
    return (request.args or {}).get(b"format", [b""])[-1].lower() in (b"ndjson", b"jsonl")


class _Slice:
    """
    One time slice of an export: its next page's query and the pages read
    and not yet written.
    """

    def __init__(self, query: Query) -> None:
        self.query = query
        self.pages: deque[tuple[bytes, int]] = deque()
        self.reading = False
        self.done = False
        #: Records read so far.
        self.count = 0


@implementer(IPushProducer)
class ExportProducer:
    """
    Streams one export into one request.

    @ivar written: records written so far.
    """

    log = Logger()

    def __init__(
        self, store: IStore, request: Request, query: Query, *, page: int = PAGE, sliced: bool = True
    ) -> None:
        self.store = store
        self.request = request
        self.page = page
        self.sliced = sliced
        #: Records still allowed by an explicit limit, or None.
        self.remaining = query.limit
        self.query = replace(query, limit=page)
        self.written = 0
        self._paused = False
        self._stopped = False
        self._done = False
        self._lanes: deque[_Slice] = deque()
        #: The part of the time range no slice covers yet, and the next
        #: slice's width (microseconds).
        self._low = self._high = self._width = 0

    def start(self) -> None:
        """
        Send the headers and begin reading.
        """
        self.request.setHeader(b"content-type", NDJSON_TYPE)
        self.request.registerProducer(self, True)
        self.request.notifyFinish().addErrback(lambda _: self.stopProducing())
        query = self.query
        if self.remaining is None and self.sliced:
            if query.since is not None and query.until is not None:
                self._slice(query.since, query.until)
                return
            # Finding the bounds of a search would cost as much as the export.
            if query.search == EVERYTHING and not query.fields:
                self.store.timeRange(query).addCallbacks(self._gotTimeRange, self._failed)
                return
        self._lanes.append(_Slice(query))
        self._flush()

    def _gotTimeRange(self, found: tuple[int, int] | None) -> None:
        if found is None:
            self._finish()
            return
        low, high = found
        query = self.query
        self._slice(low if query.since is None else query.since, high + 1 if query.until is None else query.until)

    def _slice(self, low: int, high: int) -> None:
        self._low, self._high = low, high
        self._width = max(1, int((high - low) * FIRST_SLICE))
        self._addLanes()
        self._flush()

    def _addLanes(self) -> None:
        # Keep two slices going: the one being written and the next.
        while len(self._lanes) < 2 and self._low < self._high:
            if self.query.order == "desc":
                since, until = max(self._low, self._high - self._width), self._high
                self._high = since
            else:
                since, until = self._low, min(self._high, self._low + self._width)
                self._low = until
            self._lanes.append(_Slice(replace(self.query, since=since, until=until)))

    def _sized(self, lane: _Slice) -> None:
        # Size the next slices from the density of the one just read: about
        # AHEAD_PAGES pages each, growing at most fourfold at a time.
        query = lane.query
        assert query.since is not None and query.until is not None
        width = query.until - query.since
        if lane.count:
            wanted = int(width * AHEAD_PAGES * self.page / lane.count)
        else:
            wanted = width * 4
        self._width = max(1, min(wanted, self._width * 4))

    def _read(self, lane: _Slice) -> None:
        query = lane.query
        if self.remaining is not None:
            query = replace(query, limit=min(self.page, self.remaining))
        lane.reading = True
        self.store.exportPage(query).addCallbacks(self._gotPage, self._failed, (lane,))

    def _pump(self) -> None:
        # The slice being written reads one page ahead of the client; the
        # next slice reads up to AHEAD_PAGES while it waits its turn.
        if self._stopped or self._done:
            return
        for held, lane in zip((1, AHEAD_PAGES), list(self._lanes)[:2], strict=False):
            if not lane.reading and not lane.done and len(lane.pages) < held:
                self._read(lane)

    def _gotPage(self, result: tuple[bytes, int, tuple[int, int] | None], lane: _Slice) -> None:
        lane.reading = False
        if self._stopped or self._done or isGone(self.request):
            return
        body, count, last = result
        lane.count += count
        if count:
            lane.pages.append((body, count))
        if last is None:
            lane.done = True
            if lane.query.since is not None and self._low < self._high:
                self._sized(lane)
        else:
            # A page the store cut by bytes (fewer records than asked)
            # sizes the next to fit, so the store reads it in one statement;
            # pages grow back as records get smaller.
            limit = lane.query.limit or self.page
            limit = max(1, count) if count < limit else min(self.page, limit * 2)
            lane.query = replace(lane.query.after(*last), limit=limit)
        self._flush()

    def _flush(self) -> None:
        """
        Write what the slices in order hold, while the client keeps up;
        finish after the last; then start the reads that are due.
        """
        lanes = self._lanes
        while lanes and not self._paused and not self._stopped:
            lane = lanes[0]
            while lane.pages and not self._paused:
                body, count = lane.pages.popleft()
                self.request.write(body)
                self.written += count
                if self.remaining is not None:
                    self.remaining -= count
                    if self.remaining <= 0:
                        self._finish()
                        return
            if lane.done and not lane.pages:
                lanes.popleft()
                self._addLanes()
                continue
            break
        if not lanes and not self._stopped:
            self._finish()
            return
        self._pump()

    def _failed(self, failure: Failure) -> None:
        if self._done:
            return
        self._done = True
        if isinstance(failure.value, QueryTimeout) and not getattr(self.request, "startedWriting", True):
            # Nothing sent yet: the client can still be told why, in JSON.
            self.request.unregisterProducer()
            self.request.setHeader(b"content-type", JSON_TYPE)
            finishWith(self.request, timeoutBody(self.request, failure.value))
            return
        self.log.failure("export failed after {n} records", failure=failure, n=self.written)
        if not isGone(self.request):
            # The status line is gone already: cut the stream short, so the
            # client sees an incomplete response rather than a clean end.
            self.request.unregisterProducer()
            self.request.channel.loseConnection()

    def _finish(self) -> None:
        self._done = True
        self.request.unregisterProducer()
        self.request.finish()

    # IPushProducer

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        if not self._stopped and not self._done and not isGone(self.request):
            self._flush()

    def stopProducing(self) -> None:
        self._stopped = True


class NDJSONExport:
    """
    The C{GET /logs} NDJSON handler.
    """

    def __init__(self, store: IStore, *, page: int = PAGE) -> None:
        self.store = store
        self.page = page

    def render(self, request: Request, query: Query) -> Any:
        """
        Stream C{query}'s records (parsed with C{allowUnlimited}).
        """
        ExportProducer(self.store, request, query, page=self.page).start()
        return NOT_DONE_YET
