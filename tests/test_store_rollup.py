"""
Tests for L{logsvc.store.sqlite.rollup}: counts per minute kept by the
writer, answering histograms and tops exactly as the records do.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Generator
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks

from logsvc.query import Query
from logsvc.record import Record
from logsvc.store.sqlite.connection import MINUTE, connect
from logsvc.store.sqlite.plan import selectHistogram, selectTop
from logsvc.store.sqlite.rollup import rollupHistogram, rollupTop
from tests.storetests import T0
from tests.test_store_sqlite import SqliteTestCase

SERVICES = ["api", "web", "db"]
SOURCES = ["h1", "h2"]
BASE = T0 - T0 % MINUTE


def randomRecords(rng: random.Random, count: int) -> list[Record]:
    """Records over about two and a half hours from BASE, of every level."""
    return [
        Record(
            BASE + rng.randrange(-2 * MINUTE, 150 * MINUTE), T0, rng.randrange(8), rng.choice(SOURCES),
            rng.choice(SERVICES), "m", None,
        )
        for _ in range(count)
    ]


#: Queries the rollup answers (besides the time range).
ROLLUP_QUERIES = [
    Query(),
    Query(level=3),
    Query(services=("api",)),
    Query(services=("api", "db"), level=5),
    Query(sources=("h2",)),
    Query(q="service:web"),
    Query(q="-service:web level>=warning"),
    Query(q="service:api OR service:db"),
    Query(q="source:h1 level:info"),
    Query(q="service:a*"),
]

#: Queries it leaves to the records.
RECORD_QUERIES = [
    Query(q="m"),
    Query(q="service:api source:h1"),
    Query(services=("api",), sources=("h1",)),
    Query(fields=(("k", "v"),)),
    Query(q="id>3"),
]


def expectRollup(query: Query, column: str) -> bool:
    """Whether the rollup answers a top of a ROLLUP_QUERIES query by column: not service and source together."""
    names = {column}
    if query.services or "service:" in query.q:
        names.add("service")
    if query.sources or "source:" in query.q:
        names.add("source")
    return not {"service", "source"} <= names


class RollupTests(SqliteTestCase):
    @inlineCallbacks
    def fill(self, records: list[Record]) -> Generator[Deferred[Any], Any, None]:
        self.store = self.startStore()
        for start in range(0, len(records), 97):
            yield self.store.append(records[start : start + 97])

    def both(self, f: Any) -> Deferred[Any]:
        return self.store.read(f)  # type: ignore[no-any-return]

    @inlineCallbacks
    def assertAgrees(self, ranges: list[tuple[int | None, int | None]], usesRollup: bool) -> Generator[Deferred[Any], Any, None]:
        for query in ROLLUP_QUERIES if usesRollup else RECORD_QUERIES:
            for since, until in ranges:
                bounded = replace(query, since=since, until=until)
                for column in ("level", "service", "source"):
                    fast, slow = yield self.both(
                        lambda conn, q=bounded, c=column: (rollupTop(conn, q, c), selectTop(conn, q, c))
                    )
                    if usesRollup and expectRollup(query, column):
                        self.assertIsNotNone(fast, (query, column))
                    if fast is not None:
                        self.assertEqual(fast, slow, (bounded, column))
                    if not usesRollup:
                        self.assertIsNone(fast, (query, column))
                if since is None or until is None:
                    continue
                for width in (MINUTE, 5 * MINUTE, 60 * MINUTE):
                    origin = since - since % width
                    fast, slow = yield self.both(
                        lambda conn, q=bounded, o=origin, w=width: (
                            rollupHistogram(conn, q, o, w),
                            selectHistogram(conn, q, o, w),
                        )
                    )
                    if usesRollup and until - since > 2 * MINUTE:
                        self.assertIsNotNone(fast, (bounded, width))
                    if fast is not None:
                        self.assertEqual(fast, slow, (bounded, width))
                    if not usesRollup:
                        self.assertIsNone(fast)

    @inlineCallbacks
    def test_agreesWithRecords(self) -> Generator[Deferred[Any], Any, None]:
        """For ranges with and without partial minutes at the edges, the rollup's answers equal the records'."""
        rng = random.Random(4)
        yield self.fill(randomRecords(rng, 3000))
        ranges: list[tuple[int | None, int | None]] = [
            (BASE, BASE + 20 * MINUTE),
            (BASE + 12_345, BASE + 17 * MINUTE + 999),
            (BASE - MINUTE - 5, BASE + 40 * MINUTE),
            (None, None),
            (BASE + 3 * MINUTE + 1, None),
            (None, BASE + 9 * MINUTE - 1),
            (BASE - 7, BASE + 150 * MINUTE + 5),
            (BASE + 61 * MINUTE + 3, BASE + 149 * MINUTE),
        ]
        ranges += [
            (BASE + rng.randrange(-3 * MINUTE, 30 * MINUTE), BASE + rng.randrange(31 * MINUTE, 33 * MINUTE))
            for _ in range(5)
        ]
        yield self.assertAgrees(ranges, True)
        yield self.assertAgrees(ranges[:3], False)

    @inlineCallbacks
    def test_deletesLeaveIt(self) -> Generator[Deferred[Any], Any, None]:
        """Retention's deletes (by time and by size) take records out of the rollup too."""
        rng = random.Random(5)
        yield self.fill(randomRecords(rng, 2000))
        yield self.store.deleteOld(cutoff=BASE + 10 * MINUTE + 123, maxBytes=None, chunk=300)
        ranges: list[tuple[int | None, int | None]] = [(BASE - 5 * MINUTE, BASE + 40 * MINUTE), (None, None)]
        yield self.assertAgrees(ranges, True)
        yield self.store.deleteOld(cutoff=None, maxBytes=1, chunk=500)
        yield self.assertAgrees(ranges, True)

    @inlineCallbacks
    def test_storeAnswersFromRollup(self) -> Generator[Deferred[Any], Any, None]:
        """The store's histogram and top give the records' answers whichever way they are read."""
        rng = random.Random(6)
        records = randomRecords(rng, 500)
        yield self.fill(records)
        query = Query(since=BASE + 7, until=BASE + 25 * MINUTE + 3, q="service:api OR service:web")
        counts = yield self.store.histogram(query, BASE, 5 * MINUTE)
        expected: dict[tuple[int, int], int] = {}
        for r in records:
            if query.since <= r.ts < query.until and r.service in ("api", "web"):  # type: ignore[operator]
                key = ((r.ts - BASE) // (5 * MINUTE), r.level)
                expected[key] = expected.get(key, 0) + 1
        self.assertEqual(counts, expected)
        top = yield self.store.top(replace(query, q=""), "source")
        self.assertEqual(sum(top.values()), sum(1 for r in records if query.since <= r.ts < query.until))  # type: ignore[operator]

    @inlineCallbacks
    def test_backfill(self) -> Generator[Deferred[Any], Any, None]:
        """A database made before the rollup (schema 3) gets it filled from its records at start."""
        rng = random.Random(7)
        records = randomRecords(rng, 400)
        path = self.mktemp()
        store = self.startStore(path)
        yield store.append(records)
        yield store.stopService()
        conn = connect(path)
        conn.execute("DROP TRIGGER logs_rollup_delete")
        conn.execute("DROP TABLE rollup_service")
        conn.execute("DROP TABLE rollup_source")
        for table in ("rollup_level", "rollup_level_hour", "rollup_service_hour", "rollup_source_hour"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA user_version=3")
        conn.close()
        self.store = self.startStore(path)
        yield self.assertAgrees([(BASE - 5 * MINUTE, BASE + 40 * MINUTE)], True)

    def test_negativeMinutes(self) -> None:
        """Times before 1970 fall in the minute that floors them, in Python and in SQL alike."""
        from logsvc.store.sqlite.connection import MINUTE_SQL

        conn = sqlite3.connect(":memory:")
        for ts in (-1, -MINUTE, -MINUTE - 1, 0, MINUTE - 1, MINUTE, -7 * MINUTE + 3):
            (sql,) = conn.execute(f"SELECT {MINUTE_SQL.format(ts='?')}".replace("?", str(ts))).fetchone()
            self.assertEqual(sql, ts // MINUTE, ts)
