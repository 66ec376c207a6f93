"""
Tests for L{logsvc.store.sqlite.readlanes}: the search budget and the two
read lanes, on real SQLite connections and threads.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from logsvc.store.base import QueryTimeout
from logsvc.store.sqlite.readlanes import ReadLanes

#: A statement that runs for many seconds unless interrupted.
SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)"
    " SELECT count(*) FROM c"
)


def slow(conn: sqlite3.Connection) -> Any:
    return conn.execute(SLOW).fetchone()[0]


def cheap(conn: sqlite3.Connection) -> Any:
    return conn.execute("SELECT 42").fetchone()[0]


class ReadLanesTests(TestCase):
    def lanes(self, **kw: Any) -> ReadLanes:
        lanes = ReadLanes(lambda: sqlite3.connect(":memory:", check_same_thread=False), reactor, **kw)
        lanes.start()
        self.addCleanup(lanes.stop)
        return lanes

    @inlineCallbacks
    def test_budget(self) -> Any:
        """A read past the search budget is stopped and fails with QueryTimeout naming the budget and how to narrow the query."""
        lanes = self.lanes(searchTimeout=0.5, quickSeconds=0.1, threads=(1, 1))
        started = time.monotonic()
        failure = yield self.assertFailure(lanes.read(slow), QueryTimeout)
        took = time.monotonic() - started
        # The upper bound only says the read was interrupted rather than run
        # to its end (many seconds), with room for a loaded machine.
        self.assertTrue(0.4 < took < 10.0, took)
        self.assertEqual(failure.seconds, 0.5)
        self.assertIn("narrow it", str(failure))
        self.assertEqual((lanes.moved, lanes.timedOut), (1, 1))

    @inlineCallbacks
    def test_cheapNotBehindExpensive(self) -> Any:
        """While expensive reads hold every slow-lane thread, a cheap read still answers at once on the quick lane."""
        lanes = self.lanes(searchTimeout=5, quickSeconds=0.05, threads=(1, 2))
        expensive = [lanes.read(slow) for _ in range(4)]
        finished: list[Deferred[Any]] = []
        for d in expensive:
            d.addErrback(lambda f: f.trap(QueryTimeout))
            d.addBoth(lambda _, d=d: finished.append(d))
        # Let them all leave the quick lane.
        yield deferLater(0.5)
        answer = yield lanes.read(cheap)
        self.assertEqual(answer, 42)
        # Answered while every expensive read still runs (each takes its
        # whole 5 s budget; a wall-clock bound would fail on a loaded machine).
        self.assertEqual(finished, [])
        yield gatherResults(expensive)

    @inlineCallbacks
    def test_noBudget(self) -> Any:
        """Without a budget, reads run to the end (and stay on the quick lane when quick)."""
        lanes = self.lanes(searchTimeout=None, threads=(1, 1))
        self.assertEqual((yield lanes.read(cheap)), 42)
        self.assertEqual(lanes.moved, 0)


def deferLater(seconds: float) -> Deferred[None]:
    from twisted.internet.task import deferLater as later

    return later(reactor, seconds, lambda: None)
