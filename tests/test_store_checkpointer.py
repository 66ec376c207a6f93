"""
Tests for L{logsvc.store.sqlite.checkpointer.WalCheckpointer}, on real WAL files.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from logsvc.record import Record
from logsvc.store.sqlite.checkpointer import WalCheckpointer
from logsvc.store.sqlite.connection import connect, createSchema, insertRecords
from tests.fakes import DirectReactor

WAIT = 30.0


def waitFor(condition: Any) -> bool:
    """Poll C{condition()} until true, for WAIT seconds at most."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


class WalCheckpointerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()
        self.writer = connect(self.path)
        self.addCleanup(self.writer.close)
        # Only the checkpointer checkpoints here.
        self.writer.execute("PRAGMA wal_autocheckpoint=0")
        createSchema(self.writer)

    def start(self, **kw: Any) -> WalCheckpointer:
        checkpointer = WalCheckpointer(self.path, reactor=DirectReactor(), **kw)  # type: ignore[arg-type]
        checkpointer.start()

        def stop() -> None:
            stopped = threading.Event()
            checkpointer.stop().addBoth(lambda _: stopped.set())
            self.assertTrue(stopped.wait(WAIT))

        self.addCleanup(stop)
        return checkpointer

    def commit(self, count: int) -> None:
        self.writer.execute("BEGIN")
        insertRecords(self.writer, [Record(n, n, 6, "h", "s", "x" * 200, None) for n in range(count)])
        self.writer.execute("COMMIT")

    def walSize(self) -> int:
        return os.path.getsize(self.path + "-wal")

    def test_wal_stays_bounded(self) -> None:
        """
        Commits reported to the checkpointer are checkpointed, so the WAL
        starts over instead of growing with every commit.
        """
        checkpointer = self.start(records=500, seconds=60)
        for commits in range(1, 21):
            self.commit(500)
            checkpointer.committed(500)
            self.assertTrue(waitFor(lambda n=commits: checkpointer.checkpoints >= n), commits)  # type: ignore[misc]
            if commits == 1:
                oneCommit = self.walSize()
        # Without checkpoints the WAL would hold all 20 commits (later
        # commits touch more pages than the first: the tables have grown).
        self.assertLess(self.walSize(), 5 * oneCommit)

    def test_unchecked_wal_grows(self) -> None:
        """
        The same commits without the checkpointer leave every page in the
        WAL (so the test above measures the checkpointer).
        """
        for _ in range(20):
            self.commit(500)
        self.assertGreater(self.walSize(), 20 * 500 * 200)

    def test_waits_for_enough_records(self) -> None:
        """Fewer records than the threshold wait (up to the time limit)."""
        checkpointer = self.start(records=1000, seconds=60)
        self.commit(10)
        checkpointer.committed(10)
        time.sleep(0.2)
        self.assertEqual(checkpointer.checkpoints, 0)
        self.commit(990)
        checkpointer.committed(990)
        self.assertTrue(waitFor(lambda: checkpointer.checkpoints == 1))

    def test_trickle_checkpointed_in_time(self) -> None:
        """A few records are checkpointed once the time limit passes."""
        checkpointer = self.start(records=1000, seconds=0.05)
        self.commit(1)
        checkpointer.committed(1)
        self.assertTrue(waitFor(lambda: checkpointer.checkpoints == 1))

    def test_stop_ends_thread(self) -> None:
        """stop() fires once the thread has closed its connection, idle or not."""
        checkpointer = WalCheckpointer(self.path, reactor=DirectReactor())  # type: ignore[arg-type]
        checkpointer.start()
        checkpointer.committed(1)
        stopped = threading.Event()
        checkpointer.stop().addBoth(lambda _: stopped.set())
        self.assertTrue(stopped.wait(WAIT))
        self.assertNotIn("logsvc-sqlite-checkpoint", [t.name for t in threading.enumerate()])
