"""
WAL checkpoints on a thread of their own, off the writer's path.

SQLite checkpoints a WAL database from the connection whose commit takes the
WAL past C{wal_autocheckpoint} pages: that commit copies the WAL's pages
back into the database file and syncs it before it returns, so under load
one commit in a few takes tens of milliseconds longer, and every sender whose
records are queued behind it waits too (measured: COMMIT was a fifth of the
writer's time during TCP ingest).  L{WalCheckpointer} runs C{PASSIVE}
checkpoints from a connection of its own instead, which never block the
writer.  The writer keeps SQLite's automatic checkpoint as the fallback, at
a much larger WAL (L{FALLBACK_PAGES}), for a checkpointer that cannot keep up.

Who owns what: the store's writer reports each commit (L{committed}); the
checkpointer owns its connection and thread.
"""

from __future__ import annotations

import sqlite3
import time

from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger

from logsvc.health import ComponentHealth
from logsvc.store.sqlite.connection import connect
from logsvc.store.sqlite.helper import HelperThread

#: Records committed since the last checkpoint that start the next one.
CHECKPOINT_RECORDS = 10_000

#: Seconds a committed record waits at most for a checkpoint (a trickle of
#: records is checkpointed about once a second, not once a commit).
CHECKPOINT_SECONDS = 1.0

#: The writer's own C{wal_autocheckpoint}, in pages: only reached when this
#: thread falls behind (SQLite's default is 1,000).
FALLBACK_PAGES = 16_384


class WalCheckpointer(HelperThread):
    """
    The thread that checkpoints one database's WAL soon after commits.

    @ivar checkpoints: checkpoints run so far.
    @ivar health: degraded from a failed checkpoint until one succeeds (the
        next commits bring the next try).
    """

    log = Logger()

    def __init__(
        self,
        path: str,
        *,
        reactor: IReactorFromThreads,
        fsync: str = "normal",
        records: int = CHECKPOINT_RECORDS,
        seconds: float = CHECKPOINT_SECONDS,
    ) -> None:
        super().__init__(reactor)
        self.path = path
        self.checkpoints = 0
        self.health = ComponentHealth("wal_checkpointer")
        self._fsync = fsync
        self._records = records
        self._seconds = seconds
        self._pending = 0
        self._since = 0.0

    def start(self) -> None:
        """
        Start the thread; the database must exist (the writer created it).
        """
        self._startThread(self._run, "logsvc-sqlite-checkpoint")

    def committed(self, records: int) -> None:
        """
        The writer committed C{records} more records.  Never blocks.
        """
        with self._cond:
            first = not self._pending
            if first:
                self._since = time.monotonic()
            self._pending += records
            # The first records start the thread's clock; enough of them
            # start a checkpoint.
            if first or self._pending >= self._records:
                self._cond.notify()

    def _due(self) -> float | None:
        # Seconds until the next checkpoint is due, 0 for now, None for
        # "when records come".
        if not self._pending:
            return None
        if self._pending >= self._records:
            return 0
        return max(0.0, self._since + self._seconds - time.monotonic())

    def _run(self) -> None:
        try:
            conn = connect(self.path, fsync=self._fsync)
        except BaseException as e:
            # The writer's own automatic checkpoint still bounds the WAL.
            self.health.failed(e)
            self.log.failure("cannot open {path} to checkpoint it", path=self.path)
            self._finished()
            return
        self._serve(conn)

    def _loop(self, conn: sqlite3.Connection) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._stopping and (wait := self._due()) != 0:
                    cond.wait(wait)
                if self._stopping:
                    return
                self._pending = 0
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as e:
                # Busy with the writer's fallback checkpoint, say: the next
                # commits bring the next try.
                self.health.failed(e)
                self.log.warn("checkpoint of {path} failed: {error}", path=self.path, error=e)
            else:
                self.checkpoints += 1
                self.health.succeeded()
