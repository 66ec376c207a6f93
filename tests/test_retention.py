"""
Tests for L{logsvc.retention}: chunked deletes, the highest id kept, disk
space returned, the disk floor.
"""

from __future__ import annotations

import os
import sqlite3
from types import SimpleNamespace

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from logsvc.record import Record
from logsvc.retention import DiskFloor, RetentionService
from logsvc.store.sqlite.connection import INSERT_SQL, connect, createSchema
from logsvc.store.sqlite.retention import deleteChunk, usedBytes
from logsvc.store.sqlite.store import SqliteStore

DAY = 86_400_000_000


def fill(conn: sqlite3.Connection, timestamps: list[int], size: int = 10) -> None:
    conn.execute("BEGIN")
    conn.executemany(
        INSERT_SQL, [Record(ts, ts, 6, "h", "s", "m" * size, None) for ts in timestamps]
    )
    conn.execute("COMMIT")


def ids(conn: sqlite3.Connection) -> list[int]:
    return [row[0] for row in conn.execute("SELECT id FROM logs ORDER BY id")]


class DeleteChunkTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp() + "-dir", "db.sqlite3")
        os.makedirs(os.path.dirname(self.path))
        self.conn = connect(self.path)
        createSchema(self.conn)
        self.addCleanup(self.conn.close)

    def test_olderThanCutoff(self) -> None:
        """Records with ts before the cutoff go, at most a chunk per call; newer ones stay."""
        fill(self.conn, [1 * DAY, 2 * DAY, 3 * DAY, 10 * DAY, 11 * DAY])
        self.assertEqual(deleteChunk(self.conn, cutoff=5 * DAY, maxBytes=None, chunk=2), 2)
        self.assertEqual(ids(self.conn), [3, 4, 5])
        self.assertEqual(deleteChunk(self.conn, cutoff=5 * DAY, maxBytes=None, chunk=2), 1)
        self.assertEqual(deleteChunk(self.conn, cutoff=5 * DAY, maxBytes=None, chunk=2), 0)
        self.assertEqual(ids(self.conn), [4, 5])

    def test_highestIdKept(self) -> None:
        """The record with the highest id survives even when expired, so ids are never reused."""
        fill(self.conn, [1 * DAY, 2 * DAY])
        while deleteChunk(self.conn, cutoff=100 * DAY, maxBytes=None, chunk=10):
            pass
        self.assertEqual(ids(self.conn), [2])
        fill(self.conn, [3 * DAY])
        self.assertEqual(ids(self.conn), [2, 3])

    def test_maxBytesDeletesOldestAndReturnsSpace(self) -> None:
        """Over max-db-size the oldest ids go until data fits, and the file shrinks (incremental vacuum)."""
        fill(self.conn, list(range(20_000)), size=400)
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = os.path.getsize(self.path)
        target = usedBytes(self.conn) // 4
        rounds = 0
        while deleteChunk(self.conn, cutoff=None, maxBytes=target, chunk=1000):
            rounds += 1
            self.assertLess(rounds, 100)
        self.assertLessEqual(usedBytes(self.conn), target)
        remaining = ids(self.conn)
        self.assertEqual(remaining[-1], 20_000)
        self.assertEqual(remaining, list(range(remaining[0], 20_001)))
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.assertLess(os.path.getsize(self.path), before / 2)

    def test_usedBytesCountsAttachedFiles(self) -> None:
        """The search index's file, attached on the writer, counts toward max-db-size."""
        alone = usedBytes(self.conn)
        self.conn.execute("ATTACH DATABASE ? AS search", (self.path + "-other",))
        self.conn.execute("CREATE TABLE search.filler (data BLOB)")
        self.conn.execute("INSERT INTO search.filler VALUES (zeroblob(200000))")
        self.assertGreaterEqual(usedBytes(self.conn), alone + 200_000)


class FakeStatvfs:
    def __init__(self) -> None:
        self.free = 10_000

    def __call__(self, path: str) -> SimpleNamespace:
        return SimpleNamespace(f_bavail=self.free, f_frsize=1)


class DiskFloorTests(SynchronousTestCase):
    def test_lowPausesAndRefuses(self) -> None:
        """Below the floor, connections are paused and new ones refused; above it again, they resume."""
        statvfs = FakeStatvfs()
        disk = DiskFloor("/tmp/x.sqlite3", 5_000, statvfs=statvfs)
        transport = StringTransport()
        disk.flow.registerProducer(transport)
        self.assertFalse(disk.check())
        self.assertIsNone(disk.refusal())
        statvfs.free = 4_000
        self.assertTrue(disk.check())
        self.assertEqual(transport.producerState, "paused")
        self.assertIsNotNone(disk.refusal())
        statvfs.free = 6_000
        self.assertFalse(disk.check())
        self.assertEqual(transport.producerState, "producing")


class RetentionServiceTests(TestCase):
    def test_sweepsOnWriterThread(self) -> None:
        """A sweep deletes expired records through the running store, chunk after chunk."""
        path = os.path.join(self.mktemp() + "-dir", "db.sqlite3")
        os.makedirs(os.path.dirname(path))
        store = SqliteStore(path)
        store.startService()
        self.addCleanup(store.stopService)
        clock = Clock()
        service = RetentionService(store, retain=86400, clock=clock, chunk=3, interval=60)
        service.running = 1
        d = store.append([Record(ts, ts, 6, "h", "s", "m", None) for ts in (DAY, DAY, DAY, DAY)])

        def sweep(_: object) -> object:
            return service.sweep()

        def first(deleted: int) -> object:
            self.assertEqual(deleted, 3)
            self.assertEqual(clock.getDelayedCalls()[0].getTime(), service.pause)
            return service.sweep()

        def second(deleted: int) -> object:
            self.assertEqual(deleted, 0)  # the highest id stays
            self.assertEqual(service.deleted, 3)
            return store.count()

        d.addCallback(sweep).addCallback(first).addCallback(second)
        d.addCallback(self.assertEqual, 1)
        return d

    def test_failingSweepReportsDegraded(self) -> None:
        """A failing sweep marks retention degraded in its health report; the next sweep that works clears it."""
        from twisted.internet.defer import fail, succeed

        outcomes = [fail(sqlite3.OperationalError("database or disk is full")), succeed(0)]
        store = SimpleNamespace(deleteOld=lambda **kwargs: outcomes.pop(0))
        clock = Clock()
        service = RetentionService(store, retain=86400, clock=clock, interval=60)
        service.running = 1
        service.sweep()
        self.assertEqual(service.health.report()["state"], "degraded")
        self.assertEqual(service.health.report()["reason"], "database or disk is full")
        self.assertEqual(len(self.flushLoggedErrors(sqlite3.OperationalError)), 1)
        clock.advance(60)
        self.assertEqual(service.health.report(), {"state": "ok", "reason": None})
        self.assertEqual(service.health.failures, 1)
