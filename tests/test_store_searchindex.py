"""
Tests for L{logsvc.store.sqlite.searchindex}: the indexer thread against the
store's writer (lag, pause, failure, stop), on real files.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from logsvc.record import Record
from logsvc.store.sqlite import searchindex
from logsvc.store.sqlite.connection import connect, createSchema, insertRecords
from logsvc.store.sqlite.searchindex import SearchIndexer, searchPath
from tests.fakes import DirectReactor

#: Longest a test waits for the indexer thread, in seconds.
WAIT = 30.0


def fired(d: Any) -> threading.Event:
    """An Event set once C{d} fires."""
    event = threading.Event()
    d.addBoth(lambda _: event.set())
    return event


class SearchIndexerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()
        self.records = connect(self.path)
        self.addCleanup(self.records.close)
        createSchema(self.records)

    def append(self, count: int) -> int:
        """Commit C{count} records; return the highest id."""
        self.records.execute("BEGIN")
        last = insertRecords(
            self.records, [Record(n, n, 6, "h", "s", f"word{n} common", '{"k": 1}') for n in range(count)]
        )
        self.records.execute("COMMIT")
        return last

    def start(self, top: int, **kw: Any) -> SearchIndexer:
        indexer = SearchIndexer(self.path, reactor=DirectReactor(), **kw)  # type: ignore[arg-type]
        indexer.start(top)
        self.addCleanup(lambda: self.assertTrue(fired(indexer.stop()).wait(WAIT)))
        return indexer

    def test_indexes_what_is_committed(self) -> None:
        """Committed records are indexed up to the top id, and whenIndexed fires after."""
        indexer = self.start(0)
        top = self.append(50)
        indexer.committed(top)
        self.assertTrue(fired(indexer.whenIndexed()).wait(WAIT))
        self.assertEqual(indexer.indexed, top)
        check = sqlite3.connect(searchPath(self.path))
        self.addCleanup(check.close)
        hits = check.execute("SELECT count(*) FROM logs_search WHERE logs_search MATCH 'common'").fetchone()[0]
        self.assertEqual(hits, 50)

    def test_gathers_records_before_indexing(self) -> None:
        """
        While no one waits for the index, the indexer waits for gather
        records (or gatherSeconds) before a transaction; once that many are
        committed it indexes without anyone asking, and whenIndexed does
        not wait for the gathering.
        """
        indexer = self.start(0, gather=30, gatherSeconds=WAIT * 10)
        few = self.append(10)
        indexer.committed(few)
        self.assertTrue(fired(indexer.whenIndexed()).wait(WAIT))
        self.assertEqual(indexer.indexed, few)
        more = self.append(10)
        indexer.committed(more)
        time.sleep(0.2)
        self.assertEqual(indexer.indexed, few)
        enough = self.append(20)
        indexer.committed(enough)
        self.assertIndexedSoon(indexer, enough)

    def test_gathers_for_a_while_only(self) -> None:
        """A few records committed are indexed after gatherSeconds, though no one asks."""
        indexer = self.start(0, gather=1000, gatherSeconds=0.05)
        top = self.append(3)
        indexer.committed(top)
        self.assertIndexedSoon(indexer, top)

    def assertIndexedSoon(self, indexer: SearchIndexer, top: int) -> None:
        """Wait up to WAIT seconds for the index to reach C{top}, no one asking."""
        deadline = time.monotonic() + WAIT
        while indexer.indexed < top and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(indexer.indexed, top)

    def test_writer_waits_for_lag(self) -> None:
        """waitForLag blocks while the index trails by maxLag or more, and returns once it catches up."""
        indexer = self.start(0, maxLag=10)
        indexer.indexing = False
        indexer.committed(self.append(40))
        # Paused: the writer must not wait for an index that is not being filled.
        waited = threading.Thread(target=indexer.waitForLag)
        waited.start()
        waited.join(WAIT)
        self.assertFalse(waited.is_alive())
        self.assertEqual(indexer.indexed, 0)
        indexer.indexing = True
        indexer.waitForLag()
        self.assertLess(40 - indexer.indexed, 10)

    def test_failure_releases_writer(self) -> None:
        """An index transaction that fails stops indexing and never leaves the writer waiting."""

        def broken(*args: Any, **kw: Any) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        self.patch(searchindex, "indexRange", broken)
        indexer = self.start(0, maxLag=10)
        indexer.committed(self.append(40))
        indexer.waitForLag()
        self.assertTrue(indexer.failed)
        self.assertTrue(fired(indexer.whenIndexed()).wait(WAIT))
        self.flushLoggedErrors()

    def test_recovers_from_transient_failure(self) -> None:
        """After failing transactions the indexer retries by itself with a growing delay, indexes everything, and reports itself healthy again."""
        original = searchindex.indexRange
        attempts: list[float] = []

        def flaky(conn: sqlite3.Connection, low: int, high: int, **kw: Any) -> None:
            attempts.append(time.monotonic())
            if len(attempts) <= 3:
                raise sqlite3.OperationalError("database or disk is full")
            original(conn, low, high, **kw)

        self.patch(searchindex, "indexRange", flaky)
        indexer = self.start(0, retryDelay=0.05, maxRetryDelay=0.5)
        top = self.append(40)
        indexer.committed(top)
        deadline = time.monotonic() + WAIT
        while indexer.indexed < top and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(indexer.indexed, top)
        self.assertFalse(indexer.failed)
        self.assertEqual(indexer.health.failures, 3)
        self.assertEqual(indexer.health.report(), {"state": "ok", "reason": None})
        # Backoff: the gaps between attempts grow (0.05, 0.1, 0.2 s).
        gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
        self.assertGreaterEqual(gaps[0], 0.04)
        self.assertGreaterEqual(gaps[2], 0.18)
        self.flushLoggedErrors()

    def test_failing_is_reported(self) -> None:
        """While index transactions fail, the indexer's health says degraded with the error."""
        failing = threading.Event()

        def broken(*args: Any, **kw: Any) -> None:
            failing.set()
            raise sqlite3.OperationalError("database or disk is full")

        self.patch(searchindex, "indexRange", broken)
        indexer = self.start(0, retryDelay=10.0)
        indexer.committed(self.append(5))
        self.assertTrue(failing.wait(WAIT))
        deadline = time.monotonic() + WAIT
        while not indexer.failed and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(
            indexer.health.report(),
            {"state": "degraded", "reason": "database or disk is full", "consecutive_failures": 1},
        )
        self.flushLoggedErrors()

    def test_stop_releases_writer(self) -> None:
        """Stopping ends the thread even with records left to index, and frees a waiting writer."""
        indexer = self.start(0, maxLag=10)
        indexer.indexing = False
        indexer.committed(self.append(40))
        self.assertTrue(fired(indexer.stop()).wait(WAIT))
        indexer.indexing = True
        indexer.waitForLag()
        self.assertEqual(indexer.indexed, 0)

    def test_resumes_from_mark(self) -> None:
        """A restarted indexer goes on from the mark it kept, not from the start."""
        top = self.append(30)
        first = SearchIndexer(self.path, reactor=DirectReactor())  # type: ignore[arg-type]
        first.start(top)
        self.assertTrue(fired(first.whenIndexed()).wait(WAIT))
        self.assertTrue(fired(first.stop()).wait(WAIT))
        top = self.append(5)
        calls: list[tuple[int, int]] = []
        original = searchindex.indexRange

        def spy(conn: sqlite3.Connection, low: int, high: int, **kw: Any) -> None:
            calls.append((low, high))
            original(conn, low, high, **kw)

        self.patch(searchindex, "indexRange", spy)
        indexer = self.start(top)
        self.assertTrue(fired(indexer.whenIndexed()).wait(WAIT))
        self.assertEqual(calls, [(30, 35)])
