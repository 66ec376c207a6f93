"""
The lifetime the store's helper threads share (the search indexer, the WAL
checkpointer): started once beside the writer, stopped with a Deferred that
fires on the reactor thread once the thread has closed its connection.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorFromThreads


class HelperThread:
    """
    A store thread beside the writer.  Subclasses open their connection on
    their thread and hand it to L{_serve}; they keep their state under
    C{_cond} and leave L{_loop} once C{_stopping} is set.  A thread that
    ends without serving calls L{_finished} itself.
    """

    def __init__(self, reactor: IReactorFromThreads) -> None:
        self._reactor = reactor
        self._cond = threading.Condition()
        self._stopping = False
        self._done: Deferred[None] | None = None

    def _startThread(self, body: Callable[[], None], name: str) -> None:
        self._done = Deferred()
        threading.Thread(target=body, name=name, daemon=True).start()

    def stop(self) -> Deferred[None]:
        """
        Stop after the work in progress.

        @return: a Deferred firing once the thread has closed its connection
            (at once when it never started).
        """
        if self._done is None:
            return succeed(None)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        return self._done

    def _finished(self) -> None:
        assert self._done is not None
        self._reactor.callFromThread(self._done.callback, None)

    def _serve(self, conn: sqlite3.Connection) -> None:
        """
        Run L{_loop} on C{conn}, then close it and fire L{stop}'s Deferred.
        """
        try:
            self._loop(conn)
        finally:
            conn.close()
            self._finished()

    def _loop(self, conn: sqlite3.Connection) -> None:
        """
        The thread's work, until C{_stopping}.  Override.
        """
        raise NotImplementedError()
