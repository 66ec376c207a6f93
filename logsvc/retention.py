"""
Retention (C{--retain}, C{--max-db-size}) and the free-disk floor
(C{--min-free-disk}).

L{RetentionService} deletes old records in small transactions on the store's
writer thread (L{SqliteStore.callInWriter}), one chunk per writer turn, so
ingest batches keep committing between chunks.  The record with the highest id
is never deleted: ids are the rowid of an C{INTEGER PRIMARY KEY} without
C{AUTOINCREMENT}, so SQLite would hand an emptied table's ids out again, and a
reader's cursor or a tail's C{Last-Event-ID} would then point at other records.
Freed pages go back to the file system with C{PRAGMA incremental_vacuum} when
the database was created with C{auto_vacuum=INCREMENTAL} (every database
logsvc creates); an older file keeps its size but reuses the freed pages.

L{DiskFloor} watches the free space of the database's file system; below the
floor, HTTP ingest answers 507, new TCP connections are refused, and open ones
stop being read, so the store never meets a full disk in the middle of a
transaction.
"""

from __future__ import annotations

import os
import re
import sqlite3
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from logsvc.health import ComponentHealth
from logsvc.limits import FlowControl
from logsvc.record import nowMicros

log = Logger()

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

#: Rows one retention transaction deletes at most.
DEFAULT_CHUNK = 10_000


def parseDuration(text: str) -> float:
    """
    Parse a duration: a number with an optional unit C{s}, C{m}, C{h}, C{d},
    C{w} (C{"30d"}, C{"12h"}, C{"90"} seconds).

    @return: seconds.
    @raise ValueError: for anything else, or a duration that is not positive.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (e.g. 30d, 12h, 90m)")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    if seconds <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return seconds


def usedBytes(conn: sqlite3.Connection) -> int:
    """
    @return: bytes of the pages that hold data in C{conn}'s database and
        the files attached to it (the search index's, on the store's
        writer); free pages are not counted: they are reused, or returned
        by incremental vacuum.
    """
    total = 0
    for _, name, _ in conn.execute("PRAGMA database_list").fetchall():
        if name == "temp":
            continue
        pageSize = conn.execute(f'PRAGMA "{name}".page_size').fetchone()[0]
        pages = conn.execute(f'PRAGMA "{name}".page_count').fetchone()[0]
        free = conn.execute(f'PRAGMA "{name}".freelist_count').fetchone()[0]
        total += (pages - free) * pageSize
    return int(total)


def deleteChunk(
    conn: sqlite3.Connection,
    *,
    cutoff: int | None,
    maxBytes: int | None,
    chunk: int = DEFAULT_CHUNK,
) -> int:
    """
    Delete at most C{chunk} records in one transaction: those with C{ts}
    before C{cutoff} (microseconds), else, while the data exceeds
    C{maxBytes}, the oldest by id.  Never the record with the highest id.
    Then return freed pages to the file system (incremental vacuum).

    Blocking: run it on the store's writer thread.

    @return: the number of records deleted.
    """
    deleted = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        top = conn.execute("SELECT max(id) FROM logs").fetchone()[0]
        if top is not None:
            if cutoff is not None:
                deleted += conn.execute(
                    "DELETE FROM logs WHERE id IN"
                    " (SELECT id FROM logs WHERE ts < ? AND id < ? ORDER BY ts LIMIT ?)",
                    (cutoff, top, chunk),
                ).rowcount
            if not deleted and maxBytes is not None and usedBytes(conn) > maxBytes:
                deleted += conn.execute(
                    "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE id < ? ORDER BY id LIMIT ?)",
                    (top, chunk),
                ).rowcount
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if deleted and conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        if free:
            # executescript steps the pragma to its end; execute() would free
            # a single page.
            conn.executescript(f"PRAGMA incremental_vacuum({int(free)});")
    return deleted


class DiskFloor:
    """
    Free space of the file system holding C{path}, against a floor.

    @ivar low: True while free space is below C{floor} bytes.
    @ivar flow: a L{FlowControl} that pauses TCP ingest connections while low.
    """

    def __init__(self, path: str, floor: int, *, statvfs: Any = os.statvfs) -> None:
        self.directory = os.path.dirname(os.path.abspath(path))
        self.floor = floor
        self.low = False
        self.free: int | None = None
        self.flow = FlowControl()
        self._statvfs = statvfs

    def check(self) -> bool:
        """
        Measure free space now (one C{statvfs}; cheap) and switch ingest off or
        on.

        @return: whether the disk is low.
        """
        try:
            st = self._statvfs(self.directory)
        except OSError as e:
            log.error("cannot measure free disk of {dir}: {e}", dir=self.directory, e=e)
            return self.low
        self.free = st.f_bavail * st.f_frsize
        low = self.free < self.floor
        if low != self.low:
            self.low = low
            if low:
                log.error(
                    "free disk {free} bytes is below the floor {floor}: refusing ingest",
                    free=self.free,
                    floor=self.floor,
                )
            else:
                log.info("free disk {free} bytes is above the floor again: ingest resumes", free=self.free)
            self.flow.set(low)
        return low

    def refusal(self) -> str | None:
        """
        @return: why a new ingest connection is refused, or L{None}.
        """
        return "free disk below the floor" if self.low else None


class RetentionService(Service):
    """
    A timer that enforces retention and watches the disk floor; see the module
    docstring.  Unlike C{TimerService}, an error in one sweep is logged and
    the next sweep still runs.

    @ivar deleted: records deleted since start.
    @ivar health: degraded from a failed sweep until one succeeds.
    """

    def __init__(
        self,
        store: Any,
        *,
        retain: float | None = None,
        maxBytes: int | None = None,
        disk: DiskFloor | None = None,
        clock: Any = None,
        interval: float = 10.0,
        diskInterval: float = 1.0,
        chunk: int = DEFAULT_CHUNK,
        pause: float = 0.01,
    ) -> None:
        """
        @param retain: seconds to keep records (by event time), or L{None}.
        @param maxBytes: most bytes of data to keep, or L{None}.
        @param interval: seconds between retention sweeps.
        @param diskInterval: seconds between free-disk checks.
        @param pause: seconds between two chunks of one sweep, so ingest
            commits get the writer thread in between.
        """
        if clock is None:
            from twisted.internet import reactor as clock
        self.store = store
        self.retain = retain
        self.maxBytes = maxBytes
        self.disk = disk
        self.clock = clock
        self.interval = interval
        self.diskInterval = diskInterval
        self.chunk = chunk
        self.pause = pause
        self.deleted = 0
        self.health = ComponentHealth("retention")
        self._sweepCall: IDelayedCall | None = None
        self._diskCall: IDelayedCall | None = None
        self._sweeping: Deferred[Any] | None = None

    def startService(self) -> None:
        Service.startService(self)
        if self.disk is not None:
            self.disk.check()
            self._diskCall = self.clock.callLater(self.diskInterval, self._checkDisk)
        if self.retain is not None or self.maxBytes is not None:
            self.store.callInWriter(
                lambda conn: conn.execute("PRAGMA auto_vacuum").fetchone()[0]
            ).addCallback(self._checkVacuum)
            self._sweepCall = self.clock.callLater(min(1.0, self.interval), self.sweep)

    def _checkVacuum(self, mode: int) -> None:
        if mode != 2:
            log.warn(
                "{path} was created without auto_vacuum=INCREMENTAL: space freed by retention is"
                " reused for new records but not returned to the file system; to convert it, stop"
                " logsvc and run: sqlite3 {path} 'PRAGMA auto_vacuum=INCREMENTAL; VACUUM;'",
                path=getattr(self.store, "path", "the database"),
            )

    def _checkDisk(self) -> None:
        assert self.disk is not None
        self.disk.check()
        self._diskCall = self.clock.callLater(self.diskInterval, self._checkDisk)

    def sweep(self) -> Deferred[Any]:
        """
        Delete one chunk now; schedule the next chunk soon when this one was
        full, else the next sweep after C{interval}.

        @return: a Deferred firing with the number deleted by this chunk.
        """
        self._sweepCall = None
        cutoff = None if self.retain is None else nowMicros() - int(self.retain * 1_000_000)
        maxBytes, chunk = self.maxBytes, self.chunk
        d = self.store.callInWriter(
            lambda conn: deleteChunk(conn, cutoff=cutoff, maxBytes=maxBytes, chunk=chunk)
        )
        self._sweeping = d

        def done(deleted: int) -> int:
            self.deleted += deleted
            self.health.succeeded()
            return deleted

        def failed(failure: Any) -> int:
            self.health.failed(failure.getErrorMessage())
            log.failure("retention sweep failed; will retry", failure)
            return 0

        def reschedule(deleted: int) -> int:
            self._sweeping = None
            if self.running:
                delay = self.pause if deleted >= chunk else self.interval
                self._sweepCall = self.clock.callLater(delay, self.sweep)
            return deleted

        return d.addCallbacks(done, failed).addCallback(reschedule)

    def stopService(self) -> Any:
        Service.stopService(self)
        for name in ("_sweepCall", "_diskCall"):
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)
        # Let a chunk in flight finish before the store closes.
        return self._sweeping
