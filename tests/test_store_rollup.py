"""
Tests for L{logsvc.store.rollup} and its SQL in each backend
(L{logsvc.store.sqlite.rollup}, L{logsvc.store.postgres.rollup}): counts
per minute kept by the writer and by retention, answering histograms and
tops exactly as the records do, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Generator
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase

from logsvc.query import Query
from logsvc.record import Record
from logsvc.store.rollup import (
    MINUTE,
    ROLLUPS,
    RollupSQL,
    countRecords,
    edgeParts,
    rollupHistogram,
    rollupTop,
    tableRows,
)
from tests.pgtests import makeDatabase
from tests.storetests import T0
from tests.test_store_postgres import PostgresTestCase
from tests.test_store_sqlite import SqliteTestCase

SERVICES = ["api", "web", "db"]
SOURCES = ["h1", "h2"]
BASE = T0 - T0 % MINUTE


def randomRecords(rng: random.Random, count: int, spread: tuple[int, int] = (-2 * MINUTE, 150 * MINUTE)) -> list[Record]:
    """Records over C{spread} from BASE (by default, about two and a half hours), of every level."""
    return [
        Record(
            BASE + rng.randrange(*spread), T0, rng.randrange(8), rng.choice(SOURCES),
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

#: Ranges with and without partial minutes at their edges, open or not.
RANGES: list[tuple[int | None, int | None]] = [
    (BASE, BASE + 20 * MINUTE),
    (BASE + 12_345, BASE + 17 * MINUTE + 999),
    (BASE - MINUTE - 5, BASE + 40 * MINUTE),
    (None, None),
    (BASE + 3 * MINUTE + 1, None),
    (None, BASE + 9 * MINUTE - 1),
    (BASE - 7, BASE + 150 * MINUTE + 5),
    (BASE + 61 * MINUTE + 3, BASE + 149 * MINUTE),
]


def expectRollup(query: Query, column: str) -> bool:
    """Whether the rollup answers a top of a ROLLUP_QUERIES query by column: not service and source together."""
    names = {column}
    if query.services or "service:" in query.q:
        names.add("service")
    if query.sources or "source:" in query.q:
        names.add("source")
    return not {"service", "source"} <= names


class CountRecordsTests(SynchronousTestCase):
    def test_oneRowPerKey(self) -> None:
        """A batch is counted into one row per key of each table, hours by their first minute."""
        records = [
            Record(BASE + 61 * MINUTE, T0, 3, "h2", "web", "m", None),
            Record(BASE + 61 * MINUTE + 5, T0, 3, "h1", "web", "m", None),
            Record(BASE, T0, 6, "h1", "api", "m", None),
            Record(-1, T0, 6, "h1", "api", "m", None),
        ]
        counts = {table: sorted(rows) for table, rows in tableRows(countRecords(records)).items()}
        minute = BASE // MINUTE
        hour = minute - minute % 60
        self.assertEqual(
            counts["rollup_level"], [(-1, 6, 1), (minute, 6, 1), (minute + 61, 3, 2)]
        )
        self.assertEqual(
            counts["rollup_source"],
            [(-1, 6, "h1", 1), (minute, 6, "h1", 1), (minute + 61, 3, "h1", 1), (minute + 61, 3, "h2", 1)],
        )
        self.assertEqual(
            counts["rollup_service_hour"], [(-60, 6, "api", 1), (hour, 6, "api", 1), (hour + 60, 3, "web", 2)]
        )


class EdgePartsTests(SynchronousTestCase):
    def test_edgesReadTheShorterSide(self) -> None:
        """
        A partial minute at an edge is read from the records when it is at
        most half a minute long; a longer one is its whole minute from the
        rollup less the records of the rest of that minute, outside the range.
        """
        second = MINUTE // 60
        m = BASE // MINUTE
        short = Query(since=BASE + 50 * second, until=BASE + 10 * MINUTE + 30 * second)
        self.assertEqual(
            edgeParts(short, m + 1, m + 10),
            (m + 1, m + 10, [replace(short, until=BASE + MINUTE), replace(short, since=BASE + 10 * MINUTE)], []),
        )
        long = Query(since=BASE + 10 * second, until=BASE + 10 * MINUTE + 40 * second)
        self.assertEqual(
            edgeParts(long, m + 1, m + 10),
            (m, m + 11, [], [
                replace(long, since=BASE, until=long.since), replace(long, since=long.until, until=BASE + 11 * MINUTE)
            ]),
        )
        aligned = Query(since=BASE, until=BASE + 10 * MINUTE)
        self.assertEqual(edgeParts(aligned, m, m + 10), (m, m + 10, [], []))
        self.assertEqual(edgeParts(Query(), None, None), (None, None, [], []))
        # With a lookup that finds nothing outside the range, no edge reads records.
        asked: list[tuple[int, int]] = []

        def nothing(since: int, until: int) -> bool:
            asked.append((since, until))
            return False

        self.assertEqual(edgeParts(short, m + 1, m + 10, nothing), (m, m + 11, [], []))
        self.assertEqual(asked, [(BASE, short.since), (short.until, BASE + 11 * MINUTE)])
        self.assertEqual(edgeParts(short, m + 1, m + 10, lambda since, until: True), edgeParts(short, m + 1, m + 10))
        self.assertEqual(edgeParts(long, m + 1, m + 10, nothing), edgeParts(long, m + 1, m + 10))
        openEnded = Query(since=long.since)
        self.assertEqual(edgeParts(openEnded, m + 1, None), (m, None, [], [Query(since=BASE, until=long.since)]))


class RollupTestsMixin:
    """
    The rollup of a backend's store agrees with its records.  A subclass
    is also a test case with C{startStore(location)}.
    """

    store: Any

    def newLocation(self) -> str:
        """
        @return: where a new store keeps its records.
        """
        raise NotImplementedError()

    def rollupSQL(self, conn: Any) -> RollupSQL:
        """
        @return: the backend's L{RollupSQL} on a reader's connection.
        """
        raise NotImplementedError()

    def makeOlderSchema(self, location: str) -> None:
        """
        Turn the (stopped) store at C{location} into the last schema
        version without the rollup.
        """
        raise NotImplementedError()

    startStore: Any
    assertEqual: Any
    assertIsNone: Any
    assertIsNotNone: Any

    @inlineCallbacks
    def fill(self, records: list[Record], location: str | None = None) -> Generator[Deferred[Any], Any, None]:
        self.store = self.startStore(location)
        for start in range(0, len(records), 97):
            yield self.store.append(records[start : start + 97])

    def both(self, f: Any) -> Deferred[Any]:
        return self.store.read(lambda conn: f(self.rollupSQL(conn)))  # type: ignore[no-any-return]

    @inlineCallbacks
    def assertAgrees(self, ranges: list[tuple[int | None, int | None]], usesRollup: bool) -> Generator[Deferred[Any], Any, None]:
        for query in ROLLUP_QUERIES if usesRollup else RECORD_QUERIES:
            for since, until in ranges:
                bounded = replace(query, since=since, until=until)
                for column in ("level", "service", "source"):
                    fast, slow = yield self.both(
                        lambda sql, q=bounded, c=column: (rollupTop(sql, q, c), sql.recordsTop(q, c))
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
                        lambda sql, q=bounded, o=origin, w=width: (
                            rollupHistogram(sql, q, o, w),
                            sql.recordsHistogram(q, o, w),
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
        ranges = RANGES + [
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
    def test_edgeMinutes(self) -> Generator[Deferred[Any], Any, None]:
        """
        Records on either side of minute boundaries, in a range starting
        and ending inside minutes: the store's histogram and tops count
        exactly the records in the range, those of the partial minutes too.
        """
        records = [
            Record(BASE + m * MINUTE + offset, T0, level, source, service, "m", None)
            for m in range(6)
            for offset, level, source, service in (
                (-1, 3, "h1", "api"), (0, 4, "h2", "web"), (1, 6, "h1", "db"), (MINUTE // 2, 7, "h2", "api")
            )
        ]
        yield self.fill(records)
        for since, until in (
            (BASE + 1, BASE + 5 * MINUTE), (BASE, BASE + 5 * MINUTE + 1), (BASE + 2, BASE + 4 * MINUTE - 1),
            (BASE + MINUTE // 2, BASE + 3 * MINUTE + MINUTE // 2 + 1), (BASE + MINUTE // 2 + 1, BASE + 3 * MINUTE + MINUTE // 2),
            # The rest of the first minute holds no record: that minute is whole.
            (BASE - MINUTE // 3, BASE + 3 * MINUTE + 7),
        ):
            inRange = [r for r in records if since <= r.ts < until]
            query = Query(since=since, until=until)
            counts = yield self.store.histogram(query, BASE, MINUTE)
            expected: dict[tuple[int, int], int] = {}
            for r in inRange:
                key = ((r.ts - BASE) // MINUTE, r.level)
                expected[key] = expected.get(key, 0) + 1
            self.assertEqual(counts, expected, (since, until))
            for column, index in (("level", 2), ("source", 3), ("service", 4)):
                top = yield self.store.top(query, column)
                wanted: dict[Any, int] = {}
                for r in inRange:
                    wanted[r[index]] = wanted.get(r[index], 0) + 1
                self.assertEqual(top, wanted, (since, until, column))
            fast = yield self.both(lambda sql, q=query: rollupHistogram(sql, q, BASE, MINUTE))
            self.assertIsNotNone(fast)

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
        """A database made before the rollup gets it filled from its records at start."""
        rng = random.Random(7)
        records = randomRecords(rng, 400)
        location = self.newLocation()
        yield self.fill(records, location)
        yield self.store.stopService()
        self.makeOlderSchema(location)
        self.store = self.startStore(location)
        yield self.assertAgrees([(BASE - 5 * MINUTE, BASE + 40 * MINUTE), (None, None)], True)


class SqliteRollupTests(RollupTestsMixin, SqliteTestCase):
    def newLocation(self) -> str:
        return self.mktemp()

    def rollupSQL(self, conn: Any) -> RollupSQL:
        from logsvc.store.sqlite.rollup import SqliteRollupSQL

        return SqliteRollupSQL(conn)

    def makeOlderSchema(self, location: str) -> None:
        from logsvc.store.sqlite.connection import connect

        conn = connect(location)
        conn.execute("DROP TRIGGER logs_rollup_delete")
        for table in ROLLUPS:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA user_version=3")
        conn.close()

    @inlineCallbacks
    def test_edgeTopsFromIndexes(self) -> Generator[Deferred[Any], Any, None]:
        """
        An edge's top by level or service, counted in index ranges (one per
        level, one per (level, service) pair of the minutes' counts), equals
        the records' top, after retention's deletes too, and when there are
        more pairs than it counts one by one.
        """
        from logsvc.store.sqlite import rollup
        from logsvc.store.sqlite.plan import selectTop

        rng = random.Random(8)
        yield self.fill(randomRecords(rng, 2000))
        yield self.store.deleteOld(cutoff=BASE + 10 * MINUTE + 123, maxBytes=None, chunk=300)
        ranges = [(BASE + 10 * MINUTE + 5, BASE + 10 * MINUTE + MINUTE // 2), (BASE + 3, BASE + 90 * MINUTE + 7)]
        ranges += [(BASE + rng.randrange(0, 140 * MINUTE), 0) for _ in range(5)]
        for most in (rollup._MOST_PAIRS, 1):
            self.patch(rollup, "_MOST_PAIRS", most)
            for since, until in ranges:
                query = Query(since=since, until=until or since + rng.randrange(1, 2 * MINUTE))
                for column in ("level", "service", "source"):
                    fast, slow = yield self.both(
                        lambda sql, q=query, c=column: (sql.recordsTop(q, c), selectTop(sql.conn, q, c))
                    )
                    self.assertEqual(fast, slow, (query, column, most))

    @inlineCallbacks
    def test_topsOverDays(self) -> Generator[Deferred[Any], Any, None]:
        """
        Tops over several days (whole days from the counts per day, the
        hours and minutes around them from theirs) equal the records' tops,
        after retention's deletes too.
        """
        from logsvc.store.sqlite.plan import selectTop

        rng = random.Random(9)
        day = 1440 * MINUTE
        start = BASE - BASE % day
        yield self.fill(randomRecords(rng, 3000, (-day // 2, 3 * day + day // 3)))
        ranges: list[tuple[int | None, int | None]] = [
            (start, start + 2 * day), (start - 7, start + 3 * day + 5 * MINUTE + 3), (None, None),
            (start + day // 3 + 11, None), (None, start + 2 * day + 61 * MINUTE),
        ]
        ranges += [(start + rng.randrange(-day, day), start + rng.randrange(2 * day, 4 * day)) for _ in range(5)]

        @inlineCallbacks
        def check() -> Generator[Deferred[Any], Any, None]:
            for since, until in ranges:
                for q in ("", "service:api OR service:db", "level>=warning", "-source:h1"):
                    query = Query(since=since, until=until, q=q)
                    for column in ("service", "source", "level"):
                        fast, slow = yield self.both(
                            lambda sql, q=query, c=column: (rollupTop(sql, q, c), selectTop(sql.conn, q, c))
                        )
                        if expectRollup(query, column):
                            self.assertIsNotNone(fast, (query, column))
                            self.assertEqual(fast, slow, (query, column))

        yield check()
        yield self.store.deleteOld(cutoff=start + day // 2 + 17, maxBytes=None, chunk=300)
        yield check()

    @inlineCallbacks
    def test_daysFilledFromHours(self) -> Generator[Deferred[Any], Any, None]:
        """A database of schema version 6 (no counts per day) gets them summed from its counts per hour at start."""
        from logsvc.store.sqlite.connection import DAY_ROLLUPS, connect

        rng = random.Random(10)
        day = 1440 * MINUTE
        records = randomRecords(rng, 500, (-day, 2 * day))
        path = self.mktemp()
        store = self.startStore(path)
        yield store.append(records)
        yield store.stopService()
        conn = connect(path)
        for table in DAY_ROLLUPS:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA user_version=6")
        # Read before the upgrade (as while the writer cannot open), tops
        # come from the counts per hour.
        from logsvc.store.sqlite.rollup import SqliteRollupSQL

        before = rollupTop(SqliteRollupSQL(conn), Query(since=BASE - day, until=BASE + day), "source")
        conn.close()
        self.store = self.startStore(path)
        counts = yield self.store.top(Query(since=BASE - day, until=BASE + day), "source")
        expected: dict[str, int] = {}
        for r in records:
            if BASE - day <= r.ts < BASE + day:
                expected[r.source] = expected.get(r.source, 0) + 1
        self.assertEqual(counts, expected)
        self.assertEqual(before, expected)
        conn = connect(path)
        self.assertEqual(conn.execute("SELECT sum(n) FROM rollup_source_day").fetchone()[0], len(records))
        conn.close()

    def test_negativeMinutes(self) -> None:
        """Times before 1970 fall in the minute that floors them, in Python and in SQL alike."""
        from logsvc.store.sqlite.connection import MINUTE_SQL

        conn = sqlite3.connect(":memory:")
        for ts in (-1, -MINUTE, -MINUTE - 1, 0, MINUTE - 1, MINUTE, -7 * MINUTE + 3):
            (sql,) = conn.execute(f"SELECT {MINUTE_SQL.format(ts='?')}".replace("?", str(ts))).fetchone()
            self.assertEqual(sql, ts // MINUTE, ts)


    def test_upsertsInStatements(self) -> None:
        """
        Counts written a statement per table (padded to a power of two rows
        with zero counts, split past the rows one statement holds) are the
        counts, added to what the tables held.
        """
        from logsvc.store.sqlite.connection import connect, createSchema
        from logsvc.store.sqlite.rollup import MAX_UPSERT_ROWS, addToRollup

        conn = connect(self.mktemp())
        createSchema(conn)
        rng = random.Random(3)
        many = [
            Record(BASE + n * MINUTE, T0, n % 8, f"h{n % 7}", f"s{n}", "m", None)
            for n in range(MAX_UPSERT_ROWS + 300)
        ]
        batches = [randomRecords(rng, 17), many, randomRecords(rng, 1), many[:5]]
        expected: dict[str, dict[tuple[Any, ...], int]] = {}
        for batch in batches:
            conn.execute("BEGIN")
            addToRollup(conn, batch)
            conn.execute("COMMIT")
            for table, rows in tableRows(countRecords(batch)).items():
                counts = expected.setdefault(table, {})
                for *key, n in rows:
                    counts[tuple(key)] = counts.get(tuple(key), 0) + n
        for table, counts in expected.items():
            stored = {tuple(row[:-1]): row[-1] for row in conn.execute(f"SELECT * FROM {table}")}
            self.assertEqual(stored, counts, table)
        conn.close()


class PostgresRollupTests(RollupTestsMixin, PostgresTestCase):
    timeout = 120

    def newLocation(self) -> str:
        return makeDatabase(self)

    def rollupSQL(self, conn: Any) -> RollupSQL:
        from logsvc.store.postgres.rollup import PostgresRollupSQL

        return PostgresRollupSQL(conn)

    def makeOlderSchema(self, location: str) -> None:
        from logsvc.store.postgres.connection import connect

        with connect(location) as conn:
            for table in ROLLUPS:
                conn.execute(f"DROP TABLE {table}")
            conn.execute("UPDATE logsvc_meta SET version = 1")

    @inlineCallbacks
    def test_backfill(self) -> Generator[Deferred[Any], Any, None]:
        """A database of schema 1 gets the rollup filled from its records at start, and says version 2."""
        yield RollupTestsMixin.test_backfill(self)
        from logsvc.store.postgres.connection import SCHEMA_VERSION

        version = yield self.store.read(lambda conn: conn.execute("SELECT version FROM logsvc_meta").fetchone()[0])
        self.assertEqual((version, SCHEMA_VERSION), (2, 2))

    def test_negativeMinutes(self) -> None:
        """Times before 1970 fall in the minute that floors them, in Python and in SQL alike."""
        from logsvc.store.postgres.connection import MINUTE_SQL, connect

        with connect(makeDatabase(self)) as conn:
            for ts in (-1, -MINUTE, -MINUTE - 1, 0, MINUTE - 1, MINUTE, -7 * MINUTE + 3, 2**62 + 1):
                (sql,) = conn.execute(f"SELECT {MINUTE_SQL.format(ts='%s::bigint')}", [ts]).fetchone()
                self.assertEqual(sql, ts // MINUTE, ts)

    @inlineCallbacks
    def test_twoNodes(self) -> Generator[Deferred[Any], Any, None]:
        """
        Two stores (nodes) on one database appending at once into the same
        minutes: every batch commits (no deadlock), and the counts equal
        the records'.
        """
        url = makeDatabase(self)
        a, b = self.startStore(url), self.startStore(url)
        self.store = a
        rng = random.Random(8)
        records = randomRecords(rng, 4000, (0, 20 * MINUTE))
        appends = [
            (a if n % 2 else b).append(records[start : start + 50]) for n, start in enumerate(range(0, len(records), 50))
        ]
        yield gatherResults(appends)
        total = yield b.count()
        self.assertEqual(total, len(records))
        yield self.assertAgrees([(BASE, BASE + 20 * MINUTE), (BASE + 5, BASE + 19 * MINUTE + 7), (None, None)], True)
        self.store = b
        yield self.assertAgrees([(BASE + 3 * MINUTE + 1, BASE + 11 * MINUTE)], True)

    @inlineCallbacks
    def test_droppedDays(self) -> Generator[Deferred[Any], Any, None]:
        """
        Retention dropping whole day partitions and trimming the day that
        straddles the cutoff takes their counts out, minute and hour tables
        alike, while another node goes on appending.
        """
        from logsvc.store.postgres.connection import DAY, connect, ensurePartitions

        url = makeDatabase(self)
        today = BASE - BASE % DAY
        self.startStore(url)
        with connect(url) as conn:
            ensurePartitions(conn, now=today - 3 * DAY, ahead=4)
        rng = random.Random(9)
        records = randomRecords(rng, 3000, (-3 * DAY, 3 * MINUTE))
        yield self.fill(records, url)
        other = self.startStore(url)
        cutoff = today - DAY + 13 * 3600 * 1_000_000 + 17
        while True:
            appended = other.append(randomRecords(rng, 100, (0, 3 * MINUTE)))
            deleted = yield self.store.deleteOld(cutoff=cutoff, maxBytes=None, chunk=200)
            yield appended
            if deleted < 200:
                break
        ranges: list[tuple[int | None, int | None]] = [(None, None), (today - 3 * DAY, BASE + 5 * MINUTE), (cutoff - 7, BASE)]
        yield self.assertAgrees(ranges, True)
        counted = yield self.store.read(
            lambda conn: conn.execute(
                "SELECT sum(n)::bigint FROM rollup_level_hour WHERE minute < %s", [cutoff // MINUTE - 60]
            ).fetchone()[0]
        )
        self.assertIsNone(counted)

    @inlineCallbacks
    def test_severalPartitionsInOneStep(self) -> Generator[Deferred[Any], Any, None]:
        """
        A retention step that trims two partitions (the default one, holding
        records far in the past, and the day straddling the cutoff) takes
        each partition's records out of the counts once.
        """
        from logsvc.store.postgres.connection import DAY, connect, ensurePartitions

        url = makeDatabase(self)
        self.startStore(url)
        with connect(url) as conn:
            ensurePartitions(conn, now=BASE, ahead=1)
        rng = random.Random(10)
        old = [r._replace(ts=r.ts - 400 * DAY) for r in randomRecords(rng, 300, (0, 30 * MINUTE))]
        yield self.fill([*old, *randomRecords(rng, 600, (0, 30 * MINUTE))], url)
        cutoff = BASE + 10 * MINUTE + 7
        deleted = yield self.store.deleteOld(cutoff=cutoff, maxBytes=None, chunk=10_000)
        self.assertGreater(deleted, 300)
        yield self.assertAgrees([(None, None), (BASE - 400 * DAY, BASE + 31 * MINUTE), (cutoff - 5, BASE + 20 * MINUTE)], True)

    @inlineCallbacks
    def test_nulCharacter(self) -> Generator[Deferred[Any], Any, None]:
        """
        A service holding NUL is counted as it is stored (U+FFFD), with the
        records that already say U+FFFD in the same batch, in one row.
        """
        records = [
            Record(BASE + 5, T0, 3, "h\x00", "a\x00", "m", None),
            Record(BASE + 6, T0, 3, "h\ufffd", "a\ufffd", "m", None),
        ]
        yield self.fill(records)
        query = Query(since=BASE - MINUTE, until=BASE + 2 * MINUTE)
        top = yield self.store.top(query, "service")
        self.assertEqual(top, {"a\ufffd": 2})
        top = yield self.store.top(replace(query, q='service:"a\x00"'), "source")
        self.assertEqual(top, {})
        yield self.assertAgrees([(BASE, BASE + MINUTE), (None, None)], True)
