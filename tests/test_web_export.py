"""
Tests for L{logsvc.web.export}: NDJSON export of C{GET /logs}, its paging,
back-pressure and disconnects.
"""

from __future__ import annotations

from typing import Any

import orjson
import treq
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from logsvc.query import Query
from logsvc.record import Record
from logsvc.testing import MemoryLogService
from logsvc.web.export import AHEAD_PAGES, ExportProducer
from tests.fakes import FakeStreamingRequest

T0 = 1_767_323_045_000_000


class ExportAPITests(SynchronousTestCase):
    def setUp(self) -> None:
        self.service = MemoryLogService()
        self.service.store.append(
            [Record(T0 + n, T0 + n, 3 if n % 10 == 0 else 6, "h", "api", f"event {n}", None) for n in range(250)]
        )
        # Small pages so a test crosses many of them.
        self.service.root.children[b"logs"].search.export.page = 7

    def export(self, path: str, accept: bytes = b"application/x-ndjson") -> tuple[int, bytes, Any]:
        response = self.successResultOf(
            self.service.treq.get("http://logsvc.test" + path, headers={b"accept": [accept]})
        )
        return response.code, self.successResultOf(treq.content(response)), response

    def test_everything(self) -> None:
        """Without limit, every match streams as NDJSON, newest first, past the page limit of 100."""
        code, body, response = self.export("/logs")
        self.assertEqual(code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"application/x-ndjson"])
        records = [orjson.loads(line) for line in body.splitlines()]
        self.assertEqual([r["message"] for r in records], [f"event {n}" for n in reversed(range(250))])
        self.assertEqual(set(records[0]), {"id", "ts", "received", "level", "source", "service", "message", "fields"})

    def test_filters_order_limit(self) -> None:
        """Filters, order and an explicit limit apply to the export."""
        _, body, _ = self.export("/logs?level=error&order=asc")
        self.assertEqual([orjson.loads(x)["message"] for x in body.splitlines()], [f"event {n}" for n in range(0, 250, 10)])
        _, body, _ = self.export("/logs?limit=12&order=asc&q=event")
        self.assertEqual(len(body.splitlines()), 12)

    def test_format_argument(self) -> None:
        """format=ndjson exports without an Accept header."""
        _, body, _ = self.export("/logs?format=ndjson&level=error", accept=b"*/*")
        self.assertEqual(len(body.splitlines()), 25)

    def test_bad_query(self) -> None:
        """An invalid argument is a JSON 400 before any record is sent."""
        code, body, _ = self.export("/logs?order=sideways")
        self.assertEqual((code, orjson.loads(body)["param"]), (400, "order"))


class PagedStore:
    """A store whose export reads (and time-range reads) wait until the test fires them."""

    def __init__(self) -> None:
        self.reads: list[tuple[Query, Deferred[Any]]] = []
        self.ranges: list[tuple[Query, Deferred[Any]]] = []

    def exportPage(self, query: Query) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.reads.append((query, d))
        return d

    def timeRange(self, query: Query) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.ranges.append((query, d))
        return d


class ExportProducerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = PagedStore()
        self.request = FakeStreamingRequest()
        self.producer = ExportProducer(self.store, self.request, Query(limit=None), page=2, sliced=False)  # type: ignore[arg-type]
        self.producer.start()

    def test_pages_chain(self) -> None:
        """Each page continues after the last record of the previous one, and the end finishes."""
        self.store.reads[0][1].callback((b"a\nb\n", 2, (5, 2)))
        self.assertEqual(self.store.reads[1][0].cursor, (5, 2))
        self.store.reads[1][1].callback((b"c\n", 1, None))
        self.assertEqual((b"".join(self.request.written), self.request.finished), (b"a\nb\nc\n", True))
        self.assertEqual(len(self.store.reads), 2)

    def test_paused_holds_one_page(self) -> None:
        """While the client does not keep up, one page is read ahead and held, no more; resuming writes it and reads on."""
        self.producer.pauseProducing()
        self.store.reads[0][1].callback((b"a\nb\n", 2, (5, 2)))
        self.assertEqual((len(self.store.reads), self.request.written), (1, []))
        self.producer.resumeProducing()
        self.assertEqual((len(self.store.reads), self.request.written), (2, [b"a\nb\n"]))

    def test_reads_ahead_while_paused(self) -> None:
        """A page written just before a pause has the next one read, but not written."""
        self.store.reads[0][1].callback((b"a\n", 1, (5, 1)))
        self.producer.pauseProducing()
        self.store.reads[1][1].callback((b"b\n", 1, (6, 2)))
        self.assertEqual((len(self.store.reads), self.request.written), (2, [b"a\n"]))

    def test_one_read_at_a_time(self) -> None:
        """Resuming while a read is under way starts no second read."""
        self.producer.pauseProducing()
        self.producer.resumeProducing()
        self.assertEqual(len(self.store.reads), 1)

    def test_disconnect_stops(self) -> None:
        """A client that goes away stops the reads and gets nothing more written."""
        self.request.finishing.errback(Failure(ConnectionError("gone")))
        self.store.reads[0][1].callback((b"a\nb\n", 2, (5, 2)))
        self.assertEqual((len(self.store.reads), self.request.written), (1, []))

    def test_store_failure_cuts(self) -> None:
        """A failing read after the headers cuts the connection instead of ending cleanly."""
        self.store.reads[0][1].errback(Failure(RuntimeError("disk")))
        self.assertEqual((self.request.lost, self.request.finished), (True, False))
        self.flushLoggedErrors(RuntimeError)


class SlicedExportTests(SynchronousTestCase):
    """An unlimited export with known time bounds reads two time slices at once."""

    def start(self, query: Query) -> ExportProducer:
        self.store = PagedStore()
        self.request = FakeStreamingRequest()
        producer = ExportProducer(self.store, self.request, query, page=2)  # type: ignore[arg-type]
        producer.start()
        return producer

    def bounds(self, n: int) -> tuple[int | None, int | None]:
        query = self.store.reads[n][0]
        return query.since, query.until

    def test_two_slices_at_once_written_in_order(self) -> None:
        """
        The first slice is 1/64 of the range; it and the next are read at
        once, written in order; later slices are sized from the density seen.
        """
        self.start(Query(since=0, until=6400, order="asc", limit=None))
        self.assertEqual([self.bounds(0), self.bounds(1)], [(0, 100), (100, 200)])
        self.store.reads[1][1].callback((b"c\n", 1, None))
        self.assertEqual(self.request.written, [])
        self.store.reads[0][1].callback((b"a\n", 1, (7, 1)))
        self.assertEqual(self.request.written, [b"a\n"])
        self.assertEqual(self.store.reads[2][0].cursor, (7, 1))
        self.store.reads[2][1].callback((b"b\n", 1, None))
        self.assertEqual(self.request.written, [b"a\n", b"b\n", b"c\n"])
        # Two records in 100 us: slices of AHEAD_PAGES pages of 2 span 200 us.
        self.assertEqual([self.bounds(3), self.bounds(4)], [(200, 400), (400, 600)])
        self.assertFalse(self.request.finished)

    def test_every_time_covered_once(self) -> None:
        """Slices cover the range exactly, and the export ends after the last."""
        self.start(Query(since=0, until=1000, order="desc", limit=None))
        covered: list[tuple[int | None, int | None]] = []
        while not self.request.finished:
            pending = [(q, d) for q, d in self.store.reads if not d.called]
            self.assertLessEqual(len(pending), 2)
            query, d = pending[0]
            covered.append((query.since, query.until))
            d.callback((b"", 0, None))
        self.assertEqual(covered[0], (985, 1000))
        points = sorted(t for since, until in covered for t in range(since or 0, until or 0))
        self.assertEqual(points, list(range(1000)))

    def test_desc_latest_slice_first(self) -> None:
        """A newest-first export reads the latest slice as the one being written."""
        self.start(Query(since=0, until=6400, order="desc", limit=None))
        self.assertEqual([self.bounds(0), self.bounds(1)], [(6300, 6400), (6200, 6300)])

    def test_next_slice_holds_bounded_pages(self) -> None:
        """The slice waiting its turn stops reading after AHEAD_PAGES pages."""
        self.start(Query(since=0, until=6400, order="asc", limit=None))
        for n in range(AHEAD_PAGES):
            self.store.reads[-1][1].callback((b"x\n", 1, (150 + n, n)))
        self.assertEqual(len(self.store.reads), 1 + AHEAD_PAGES)
        self.assertEqual(self.request.written, [])

    def test_bounds_from_time_range(self) -> None:
        """Without since and until, the matches' first and last times bound the slices."""
        self.start(Query(limit=None, order="asc"))
        self.assertEqual(self.store.reads, [])
        self.store.ranges[0][1].callback((10, 6409))
        self.assertEqual([self.bounds(0), self.bounds(1)], [(10, 110), (110, 210)])

    def test_no_matches(self) -> None:
        """No matching record: the export ends at once, empty."""
        self.start(Query(limit=None))
        self.store.ranges[0][1].callback(None)
        self.assertEqual((self.request.written, self.request.finished, self.store.reads), ([], True, []))

    def test_limit_not_sliced(self) -> None:
        """An explicit limit reads one slice, page by page."""
        self.start(Query(since=0, until=100, limit=5))
        self.assertEqual([(q.since, q.until, q.limit) for q, _ in self.store.reads], [(0, 100, 2)])

    def test_search_bounds_not_asked(self) -> None:
        """A search without both bounds is not sliced: finding its bounds would cost a full search."""
        self.start(Query(q="word", limit=None))
        self.assertEqual((self.store.ranges, len(self.store.reads)), ([], 1))
