# -*- test-case-name: tests.test_store_sqlite,tests.test_store_postgres -*-
"""
The queue between the reactor thread and a store's writer thread, which both
backends share: appends and calls go in on the reactor thread; the writer
takes everything queued at once (group commit) up to a transaction's worth
of records, and runs the calls between transactions.

Who owns what: the reactor thread puts jobs in; only the writer thread takes
them out and fires their Deferreds (through C{callFromThread}).
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.failure import Failure

from logsvc.record import Record

Connection = TypeVar("Connection")

_STOP = object()

#: One queued append: its records and the Deferred to fire with the first id.
Append = tuple[list[Record], Deferred[int]]


@dataclass
class Turn(Generic[Connection]):
    """
    What the writer takes in one turn: appends for one transaction, calls to
    run after it, and whether a stop was asked for.
    """

    appends: list[Append] = field(default_factory=list)
    calls: list[tuple[Callable[[Connection], Any], Deferred[Any]]] = field(default_factory=list)
    stopping: bool = False


class WriteQueue(Generic[Connection]):
    """
    Jobs for one writer thread.

    @ivar maxRecords: most records one turn takes (more wait for the next).
    """

    def __init__(self, reactor: IReactorFromThreads, maxRecords: int) -> None:
        self._reactor = reactor
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.maxRecords = maxRecords

    # On the reactor thread

    def append(self, records: list[Record], d: Deferred[int]) -> None:
        self._jobs.put((records, d))

    def call(self, f: Callable[[Connection], Any], d: Deferred[Any]) -> None:
        self._jobs.put((f, d))

    def stop(self) -> None:
        """
        Ask the writer to end after the jobs queued so far.
        """
        self._jobs.put(_STOP)

    # On the writer thread

    def take(self, timeout: float | None = None) -> Turn[Connection] | None:
        """
        Wait for a job, then take every job queued behind it, up to
        L{maxRecords} records and up to the first call or stop.

        @return: the turn, or L{None} when C{timeout} seconds passed
            without a job.
        """
        try:
            pending = [self._jobs.get(timeout=timeout)]
        except queue.Empty:
            return None
        turn: Turn[Connection] = Turn()
        size = 0
        while True:
            for job in pending:
                if job is _STOP:
                    turn.stopping = True
                elif isinstance(job[0], list):
                    turn.appends.append(job)
                    size += len(job[0])
                else:
                    turn.calls.append(job)
            pending = []
            if size >= self.maxRecords or turn.calls or turn.stopping:
                return turn
            try:
                pending.append(self._jobs.get_nowait())
            except queue.Empty:
                return turn

    def leftovers(self) -> list[Append]:
        """
        @return: the appends queued after the stop (they raced with it).
        """
        found: list[Append] = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return found
            if job is not _STOP and isinstance(job[0], list):
                found.append(job)

    def runCalls(self, conn: Connection, turn: Turn[Connection]) -> None:
        """
        Run the turn's calls on C{conn}, firing each Deferred with the
        result or the failure.
        """
        for f, d in turn.calls:
            try:
                result = f(conn)
            except BaseException:
                self._reactor.callFromThread(d.errback, Failure())
            else:
                self._reactor.callFromThread(d.callback, result)

    def failAll(self, turn: Turn[Connection], failure: Failure) -> None:
        """
        Fail every append and call of C{turn} with C{failure}.
        """
        for _, d in turn.appends:
            self._reactor.callFromThread(d.errback, failure)
        for _, d in turn.calls:
            self._reactor.callFromThread(d.errback, failure)
