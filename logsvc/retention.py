"""
Retention (C{--retain}, C{--max-db-size}) and the free-disk floor
(C{--min-free-disk}).

L{RetentionService} asks the store to delete old records one chunk at a time
(L{IStore.deleteOld}): each backend deletes its own way (SQLite in small
transactions on its writer thread, PostgreSQL by dropping whole partitions),
and ingest keeps committing between chunks.

L{DiskFloor} watches the free space of the database's file system; below the
floor, HTTP ingest answers 507, new TCP connections are refused, and open ones
stop being read, so the store never meets a full disk in the middle of a
transaction.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from logsvc.health import ComponentHealth
from logsvc.limits import FlowControl
from logsvc.times import nowMicros

log = Logger()

#: Records one retention chunk deletes at most (a backend that drops whole
#: partitions may delete more at once).
DEFAULT_CHUNK = 10_000


class DiskFloor:
    """
    Free space of the file system holding C{path}, against a floor.

    @ivar low: True while free space is below C{floor} bytes.
    @ivar flow: a L{FlowControl} that pauses TCP ingest connections while low.
    """

    def __init__(
        self, path: str, floor: int, *, statvfs: Any = os.statvfs, stalled: Callable[[], bool] = lambda: False
    ) -> None:
        """
        @param stalled: true while the store cannot write for lack of space
            (it started on a full disk), which counts as low whatever the
            floor.
        """
        self.directory = os.path.dirname(os.path.abspath(path))
        self.floor = floor
        self._stalled = stalled
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
        low = self.free < self.floor or self._stalled()
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
            self._sweepCall = self.clock.callLater(min(1.0, self.interval), self.sweep)

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
        d = self.store.deleteOld(cutoff=cutoff, maxBytes=maxBytes, chunk=chunk)
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
