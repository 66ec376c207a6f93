"""
Tests for L{logsvc.store.sqlite.SqliteStore}: the store contract of
L{tests.storetests} against a real file and real threads, and what only the
SQLite store promises (schema version, reopening, stop commits the queue).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Generator
from itertools import accumulate
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from logsvc.query import Query
from logsvc.record import Record
from logsvc.startup import StartupError
from logsvc.store.base import IStore, StoreError
from logsvc.store.memory import MemoryStore
from logsvc.store.sqlite.connection import SCHEMA_VERSION, createSchema
from logsvc.store.sqlite.store import SqliteStore
from tests.storetests import SECOND, T0, StoreTestsMixin, record


class SqliteTestCase(TestCase):
    timeout = 30

    def startStore(self, path: str | None = None) -> SqliteStore:
        """
        @return: a started store on C{path} (a new temporary file by default),
            stopped at cleanup if still running.
        """
        if path is None:
            path = self.mktemp()
        store = SqliteStore(path)
        store.startService()
        self.addCleanup(lambda: store.stopService() if store.running else None)
        return store

    def pragma(self, path: str, name: str) -> Any:
        conn = sqlite3.connect(path)
        try:
            return conn.execute(f"PRAGMA {name}").fetchone()[0]
        finally:
            conn.close()


class SqliteStoreContractTests(StoreTestsMixin, SqliteTestCase):
    def makeStore(self) -> IStore:
        return self.startStore()

    def settle(self) -> Deferred[None]:
        # Queries read the search index's part, not only the tail it lacks.
        return self.store.whenIndexed()  # type: ignore[attr-defined,no-any-return]


class SqliteStoreUnindexedContractTests(StoreTestsMixin, SqliteTestCase):
    """
    The contract with the search index paused: every search reads the
    records the index does not hold, row by row.
    """

    def makeStore(self) -> IStore:
        store = self.startStore()
        store.indexing = False
        return store

    def test_interface(self) -> None:
        """SqliteStore provides IStore."""
        self.assertTrue(verifyObject(IStore, self.store))


class SqliteStoreTests(SqliteTestCase):
    @inlineCallbacks
    def test_schemaVersion(self) -> Generator[Deferred[Any], Any, None]:
        """A new database carries the schema version in PRAGMA user_version, in WAL mode."""
        path = self.mktemp()
        store = self.startStore(path)
        yield store.stopService()
        self.assertEqual(self.pragma(path, "user_version"), SCHEMA_VERSION)
        self.assertEqual(self.pragma(path, "journal_mode"), "wal")

    @inlineCallbacks
    def test_checkpointsOffTheWriter(self) -> Generator[Deferred[Any], Any, None]:
        """
        The writer's own automatic checkpoint is only the fallback: a
        checkpointer thread runs while the store does, and ends with it.
        """
        from logsvc.store.sqlite.checkpointer import FALLBACK_PAGES

        store = self.startStore()
        pages = yield store.callInWriter(lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        self.assertEqual(pages, FALLBACK_PAGES)
        self.assertIn("logsvc-sqlite-checkpoint", [t.name for t in threading.enumerate()])
        yield store.stopService()
        self.assertNotIn("logsvc-sqlite-checkpoint", [t.name for t in threading.enumerate()])

    def test_failedStartLeavesNoCheckpointer(self) -> None:
        """
        A store whose search file cannot be opened fails to start, and
        leaves no checkpoint thread behind.
        """
        from logsvc.store.sqlite.searchindex import searchPath

        def checkpointers() -> int:
            return sum(t.name == "logsvc-sqlite-checkpoint" for t in threading.enumerate())

        before = checkpointers()
        path = self.mktemp()
        os.makedirs(searchPath(path))
        store = SqliteStore(path)
        self.assertRaises(StartupError, store.startService)
        self.assertEqual(checkpointers(), before)

    @inlineCallbacks
    def test_reopenKeepsRecords(self) -> Generator[Deferred[Any], Any, None]:
        """Records survive closing and reopening the file, and new ids continue after them."""
        path = self.mktemp()
        store = self.startStore(path)
        first = yield store.append([record("a"), record("b")])
        yield store.stopService()
        again = self.startStore(path)
        rows = yield again.query(Query(order="asc"))
        self.assertEqual([(row[0], row[6]) for row in rows], [(first, "a"), (first + 1, "b")])
        nextId = yield again.append([record("c")])
        self.assertEqual(nextId, first + 2)

    def test_newerSchemaRefused(self) -> None:
        """A database made by a newer schema version is refused at start, saying which version."""
        path = self.mktemp()
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
        conn.close()
        store = SqliteStore(path)
        error = self.assertRaises(StartupError, store.startService)
        self.assertIn(f"version {SCHEMA_VERSION + 1}", str(error))
        self.assertFalse(store.running)
        self.assertEqual(self.pragma(path, "user_version"), SCHEMA_VERSION + 1)

    def test_stopAfterFailedStart(self) -> None:
        """Stopping a store whose start failed fires at once instead of waiting forever."""
        path = self.mktemp()
        os.mkdir(path)
        store = SqliteStore(path)
        self.assertRaises(StartupError, store.startService)
        self.successResultOf(store.stopService())

    @inlineCallbacks
    def test_stopCommitsQueue(self) -> Generator[Deferred[Any], Any, None]:
        """stopService fires only after every append queued before it is committed."""
        path = self.mktemp()
        store = self.startStore(path)
        appends = [store.append([record(f"{n}.{i}") for i in range(100)]) for n in range(50)]
        yield store.stopService()
        firsts = yield gatherResults(appends)
        self.assertEqual(len(firsts), 50)
        conn = sqlite3.connect(path)
        try:
            count = conn.execute("SELECT count(*) FROM logs").fetchone()[0]
        finally:
            conn.close()
        self.assertEqual(count, 5000)

    @inlineCallbacks
    def test_readerSeesCommits(self) -> Generator[Deferred[Any], Any, None]:
        """A query after an append fired sees the appended records."""
        store = self.startStore()
        for n in range(5):
            yield store.append([record(str(n))])
            total = yield store.count()
            self.assertEqual(total, n + 1)

    @inlineCallbacks
    def test_oddPath(self) -> Generator[Deferred[Any], Any, None]:
        """A database path holding "#", "?", "%" or spaces works for reads as well as writes."""
        directory = self.mktemp()
        os.mkdir(directory)
        for name in ("a#b.db", "c?d.db", "e%20f.db", "g h.db"):
            store = self.startStore(os.path.join(directory, name))
            yield store.append([record(name)])
            rows = yield store.query(Query())
            self.assertEqual([row[6] for row in rows], [name])
            yield store.stopService()
        self.assertEqual(
            sorted(n for n in os.listdir(directory) if n.endswith(".db")),
            ["a#b.db", "c?d.db", "e%20f.db", "g h.db"],
        )

    @inlineCallbacks
    def test_unbindableAppendFails(self) -> Generator[Deferred[Any], Any, None]:
        """An append SQLite cannot store fails with StoreError, stores nothing, and the store goes on."""
        store = self.startStore()
        for bad in (record("x", ts=2**64), record(object())):  # type: ignore[arg-type]
            failed = store.append([record("good"), bad])
            yield self.assertFailure(failed, StoreError)
        first = yield store.append([record("after")])
        rows = yield store.query(Query())
        self.assertEqual([(row[0], row[6]) for row in rows], [(first, "after")])

    @inlineCallbacks
    def test_badAppendSparesOthers(self) -> Generator[Deferred[Any], Any, None]:
        """An append that fails does not fail other appends committed in the same transaction."""
        store = self.startStore()
        gate = threading.Event()
        blocked = store.callInWriter(lambda conn: gate.wait(10))
        good1 = store.append([record("one")])
        bad = store.append([record("bad", ts=2**64)])
        good2 = store.append([record("two")])
        gate.set()
        yield blocked
        yield self.assertFailure(bad, StoreError)
        yield gatherResults([good1, good2])
        rows = yield store.query(Query(order="asc"))
        self.assertEqual([row[6] for row in rows], ["one", "two"])

    @inlineCallbacks
    def test_callInWriter(self) -> Generator[Deferred[Any], Any, None]:
        """callInWriter runs a function on the writer's connection and fires with its result."""
        store = self.startStore()
        yield store.append([record("a"), record("b")])
        count = yield store.callInWriter(
            lambda conn: conn.execute("SELECT count(*) FROM logs").fetchone()[0]
        )
        self.assertEqual(count, 2)


class SqliteMatchesMemoryTests(SqliteTestCase):
    @inlineCallbacks
    def test_randomQueries(self) -> Generator[Deferred[Any], Any, None]:
        """For random records and random filters, orders, limits and cursors, SQLite answers as MemoryStore does."""
        rng = random.Random(20261122)
        sources = ["web1", "web2", "db", ""]
        services = ["api", "worker", ""]
        words = ["disk", "full", "timeout", "user", "login", "ok"]
        records = [
            record(
                " ".join(rng.sample(words, rng.randint(1, 3))),
                ts=T0 + rng.randrange(50) * SECOND,
                level=rng.randrange(8),
                source=rng.choice(sources),
                service=rng.choice(services),
                fields=rng.choice(
                    [None, {"user": rng.choice(["ann", "bob"])}, {"code": rng.randrange(3)}]
                ),
            )
            for _ in range(300)
        ]
        store = self.startStore()
        memory = MemoryStore()
        for start in range(0, 300, 50):
            yield store.append(records[start : start + 50])
            yield memory.append(records[start : start + 50])
        for n in range(150):
            since = T0 + rng.randrange(50) * SECOND if rng.random() < 0.3 else None
            until = T0 + rng.randrange(50) * SECOND if rng.random() < 0.3 else None
            cursor = (
                (T0 + rng.randrange(50) * SECOND, rng.randrange(1, 301))
                if rng.random() < 0.4
                else None
            )
            query = Query(
                since=since,
                until=until,
                level=rng.randrange(8) if rng.random() < 0.4 else None,
                sources=tuple(rng.sample(sources, rng.randint(1, 2))) if rng.random() < 0.3 else (),
                services=tuple(rng.sample(services, rng.randint(1, 2)))
                if rng.random() < 0.3
                else (),
                q=rng.choice(words) if rng.random() < 0.3 else "",
                fields=((("user", rng.choice(["ann", "bob"])),) if rng.random() < 0.2 else ()),
                limit=rng.choice([None, 1, 5, 20, 100]),
                order=rng.choice(["asc", "desc"]),
                cursor=cursor,
            )
            mine = yield store.query(query)
            theirs = yield memory.query(query)
            self.assertEqual(mine, theirs, (n, query))


class InsertRecordsTests(SynchronousTestCase):
    def test_every_kind_of_text_round_trips(self) -> None:
        """
        insertRecords stores every record exactly, in order, across the
        multi-row statements it splits a batch into, and answers the last id.
        """
        from logsvc.store.sqlite.connection import MAX_STATEMENT_ROWS, insertRecords

        conn = sqlite3.connect(":memory:", isolation_level=None)
        createSchema(conn)
        batches = [
            [Record(1, 2, 3, "h", "s", 'plain "quoted" \\ \u2028 \U0001f600', '{"k": [1, 2.5]}'),
             Record(2**52, 2**52, 7, "", "", "", None)],
            [Record(5, 6, 0, "h", "s", "before\x00after", None)],
            [Record(n, n, n % 8, f"h{n}", "s", f"m{n}", None) for n in range(2 * MAX_STATEMENT_ROWS + 77)],
        ]
        lasts = [insertRecords(conn, records) for records in batches]
        self.assertEqual(lasts, list(accumulate(len(records) for records in batches)))
        stored = conn.execute(
            "SELECT ts, received, level, source, service, message, fields FROM logs ORDER BY id"
        ).fetchall()
        self.assertEqual(stored, [tuple(r) for records in batches for r in records])
        self.assertEqual(
            conn.execute("SELECT typeof(ts), typeof(level) FROM logs LIMIT 1").fetchone(), ("integer", "integer")
        )

    def test_one_statement_per_chunk(self) -> None:
        """
        A batch takes one statement per 4,096 records, and the rest at most
        three (the last one padded with rows SQLite skips), so the writer
        wins the GIL back few times.
        """
        from logsvc.store.sqlite.connection import MAX_STATEMENT_ROWS, insertRecords

        conn = sqlite3.connect(":memory:", isolation_level=None)
        createSchema(conn)
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        cases = ((1, 1), (2048, 1), (3960, 3), (MAX_STATEMENT_ROWS, 1), (MAX_STATEMENT_ROWS + 1, 2))
        for total, expected in cases:
            del statements[:]
            insertRecords(conn, [Record(n, n, 6, "h", "s", f"m{n}", None) for n in range(total)])
            self.assertEqual(len(statements), expected, total)
        stored = sum(total for total, _ in cases)
        self.assertEqual(conn.execute("SELECT count(*), max(id) FROM logs").fetchone(), (stored, stored))

    def test_padding_is_small(self) -> None:
        """
        The statements of a batch are powers of two holding every record,
        and pad at most a seventh of the records past the last full
        statement (or up to the smallest statement): padding rows cost the
        writer CPU like records.
        """
        from logsvc.store.sqlite.connection import (
            MAX_STATEMENT_ROWS,
            MIN_STATEMENT_ROWS,
            statementSizes,
        )

        for count in (*range(0, 300), 2150, 3073, 3960, 4095, 5000, 3 * MAX_STATEMENT_ROWS + 1):
            sizes = statementSizes(count)
            self.assertTrue(all(size & (size - 1) == 0 and size >= MIN_STATEMENT_ROWS for size in sizes), sizes)
            self.assertLessEqual(len([size for size in sizes if size < MAX_STATEMENT_ROWS]), 3, count)
            self.assertGreaterEqual(sum(sizes), count)
            self.assertLessEqual(sum(sizes) - count, max(MIN_STATEMENT_ROWS - 1, count % MAX_STATEMENT_ROWS // 7), count)
        self.assertEqual(statementSizes(2150), [2048, 64, 64])

    def test_null_refused_not_skipped(self) -> None:
        """
        A record with a NULL where the schema forbids one raises (the
        padding rows SQLite skips must not hide it), whatever its place.
        """
        from logsvc.store.sqlite.connection import insertRecords

        conn = sqlite3.connect(":memory:", isolation_level=None)
        createSchema(conn)
        good = [Record(n, n, 6, "h", "s", "m", None) for n in range(5)]
        for bad in (Record(None, 1, 6, "h", "s", "m", None), Record(1, 1, 6, "h", "s", None, None)):  # type: ignore[arg-type]
            for place in (0, 3, 5):
                conn.execute("BEGIN")
                with self.assertRaises(sqlite3.IntegrityError):
                    insertRecords(conn, good[:place] + [bad] + good[place:])
                conn.execute("ROLLBACK")
        self.assertEqual(conn.execute("SELECT count(*) FROM logs").fetchone(), (0,))


#: Run in a fresh interpreter: SQLite's memory used, as SQLite counts it,
#: after the same work with statistics on and after stopMemoryStatistics.
_MEMORY_PROBE = """
import _sqlite3, ctypes, json, sqlite3
from logsvc.store.sqlite.connection import stopMemoryStatistics
library = ctypes.CDLL(_sqlite3.__file__)
library.sqlite3_memory_used.restype = ctypes.c_int64
def work():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 100,)] * 1000)
    used = library.sqlite3_memory_used()
    conn.close()
    return used
before = work()
stopped = stopMemoryStatistics()
print(json.dumps([before, stopped, work()]))
"""


class MemoryStatisticsTests(SynchronousTestCase):
    """
    L{stopMemoryStatistics}, in a process of its own (it reinitializes
    SQLite, which no open connection may see).
    """

    def test_stops_counting(self) -> None:
        """
        SQLite counts the memory it uses until statistics are stopped, and
        connections work after.
        """
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        output = subprocess.run(
            [sys.executable, "-c", _MEMORY_PROBE],
            check=True,
            capture_output=True,
            cwd=root,
            env={**os.environ, "PYTHONPATH": root},
            timeout=60,
        ).stdout
        before, stopped, after = json.loads(output)
        self.assertGreater(before, 0)
        self.assertTrue(stopped)
        self.assertEqual(after, 0)


class WorkLimitTests(SqliteTestCase):
    @inlineCallbacks
    def test_regexPastTheLimit(self) -> Generator[Deferred[Any], Any, None]:
        """A regular expression that must check more records than WORK_LIMIT fails with a clear error; narrowed by a word, it runs."""
        from logsvc.store import base as module

        self.patch(module, "WORK_LIMIT", 50)
        store = self.startStore()
        yield store.append([record(f"line {n} {'rare' if n % 40 == 0 else 'common'}") for n in range(200)])
        yield store.whenIndexed()
        failure = yield self.assertFailure(store.query(Query(q='~"line \\\\d+"', limit=10)), module.WorkLimitExceeded)
        self.assertEqual(failure.param, "q")
        self.assertIn("more than 50 records", str(failure))
        rows = yield store.query(Query(q='rare ~"line \\\\d+"', limit=None))
        self.assertEqual(len(rows), 5)
