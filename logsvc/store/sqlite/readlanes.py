# -*- test-case-name: tests.test_store_readlanes -*-
"""
Reads on two lanes of threads, with a time budget.

Every read starts on the I{quick} lane, whose threads run a statement for at
most L{QUICK_SECONDS}; one that takes longer is interrupted there and run
again from the start on the I{slow} lane, where it may take up to the
search budget (C{--search-timeout}), past which it fails with
L{QueryTimeout}.  So a cheap query (a page of recent records, a rare word)
never queues behind expensive ones (a common word over millions of
records): those occupy the slow lane, and the quick lane's threads are
free again within L{QUICK_SECONDS} of any query, whatever it costs.  A read
known to be long (an export page) goes to the slow lane at once.

Statements are interrupted by SQLite's progress handler, which SQLite calls
every L{PROGRESS_STEPS} virtual machine steps of the running statement.

Who owns what: each reader thread owns its connection (opened on first use
by C{connect}); the reactor thread only submits and receives results.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from logsvc.store.base import QueryTimeout

#: Seconds a read may run on the quick lane before it moves to the slow one.
QUICK_SECONDS = 0.25

#: Default seconds a read may take in all (C{--search-timeout}).
DEFAULT_SEARCH_TIMEOUT = 10.0

#: SQLite virtual machine steps between two looks at the clock: about 10 ms
#: of work (measured: 20,000 steps took 1.1 ms), so the look, which must win
#: the GIL back from the reactor thread, costs little, and a read stops
#: within tens of milliseconds of its budget.
PROGRESS_STEPS = 200_000


def defaultLaneThreads() -> tuple[int, int]:
    """
    @return: the threads of the quick and the slow lane for this machine:
        two quick ones, and a slow one per core (at least two).
    """
    return 2, max(2, os.cpu_count() or 1)


class _Bumped(Exception):
    """
    A read passed the quick lane's budget: run it on the slow lane.
    """


class ReadLanes:
    """
    See the module docstring.

    @ivar searchTimeout: seconds a read may take in all (L{None}: no limit).
    @ivar moved: reads moved from the quick lane to the slow one so far.
    @ivar timedOut: reads stopped by the budget so far.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        reactor: Any,
        *,
        searchTimeout: float | None = DEFAULT_SEARCH_TIMEOUT,
        quickSeconds: float = QUICK_SECONDS,
        threads: tuple[int, int] | None = None,
    ) -> None:
        """
        @param connect: opens a reader connection (called on a reader thread).
        """
        quick, slow = threads or defaultLaneThreads()
        self._connect = connect
        self._reactor = reactor
        self.searchTimeout = searchTimeout
        self.quickSeconds = quickSeconds
        self.quick = ThreadPool(minthreads=1, maxthreads=quick, name="logsvc-sqlite-read-quick")
        self.slow = ThreadPool(minthreads=0, maxthreads=slow, name="logsvc-sqlite-read-slow")
        self.moved = 0
        self.timedOut = 0
        self._local = threading.local()
        self._generation = 0

    def start(self) -> None:
        self.quick.start()
        self.slow.start()

    def stop(self) -> None:
        self.quick.stop()
        self.slow.stop()

    def reconnect(self) -> None:
        """
        Make every reader thread open a new connection before its next
        read (the way to open changed: see L{SqliteStore.waitingForSpace}).
        """
        self._generation += 1

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        generation = self._generation
        if conn is not None and self._local.generation != generation:
            conn.close()
            conn = None
        if conn is None:
            conn = self._local.conn = self._connect()
            self._local.generation = generation
        return conn

    def _run(self, f: Callable[[sqlite3.Connection], Any], seconds: float | None, quickLane: bool) -> Any:
        conn = self._connection()
        if seconds is None:
            return f(conn)
        deadline = time.monotonic() + seconds
        conn.set_progress_handler(lambda: time.monotonic() > deadline, PROGRESS_STEPS)
        try:
            return f(conn)
        except sqlite3.OperationalError as e:
            if time.monotonic() <= deadline or "interrupt" not in str(e):
                raise
            if quickLane:
                raise _Bumped() from None
            raise QueryTimeout(seconds) from None
        finally:
            conn.set_progress_handler(None, 0)

    def read(self, f: Callable[[sqlite3.Connection], Any], *, long: bool = False) -> Deferred[Any]:
        """
        Run C{f(connection)} on the quick lane, moving to the slow lane if
        it takes longer than C{quickSeconds}; C{long} reads start on the slow
        lane.  C{f} must only read: it may run twice.

        @return: a Deferred firing with its result, or failing with
            L{QueryTimeout} past the search budget.
        """
        if long:
            return self._slow(f, self.searchTimeout)
        quick = self.quickSeconds
        if self.searchTimeout is not None:
            quick = min(quick, self.searchTimeout)
        d = deferToThreadPool(self._reactor, self.quick, self._run, f, quick, True)

        def moved(failure: Failure) -> Deferred[Any]:
            failure.trap(_Bumped)
            self.moved += 1
            left = None if self.searchTimeout is None else max(0.0, self.searchTimeout - quick)
            return self._slow(f, left)

        return d.addErrback(moved)

    def _slow(self, f: Callable[[sqlite3.Connection], Any], seconds: float | None) -> Deferred[Any]:
        d = deferToThreadPool(self._reactor, self.slow, self._run, f, seconds, False)

        def timedOut(failure: Failure) -> Failure:
            if isinstance(failure.value, QueryTimeout):
                self.timedOut += 1
                failure.value.seconds = self.searchTimeout
            return failure

        return d.addErrback(timedOut)
