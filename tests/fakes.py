"""
Test doubles shared by the tests: resources, stores and their threads.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from logsvc.record import Record
from logsvc.store.base import StoreError
from logsvc.store.memory import MemoryStore


class FakeStreamingRequest:
    """
    A request that records what a streaming resource (export, tail) does
    with it: what it writes, its producer, whether it finished, whether it
    dropped the connection.  Fire C{finishing} to play a client that left.
    """

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.finished = False
        self.producer: Any = None
        self.finishing: Deferred[None] = Deferred()
        self.headers: dict[bytes, bytes] = {}
        self.channel = self
        self.lost = False

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.headers[name] = value

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def notifyFinish(self) -> Deferred[None]:
        return self.finishing

    def write(self, data: bytes) -> None:
        assert not self.finished, "write after finish"
        self.written.append(data)

    def finish(self) -> None:
        self.finished = True

    def loseConnection(self) -> None:
        self.lost = True


class HeldStore(MemoryStore):
    """
    A MemoryStore whose appends commit only when the test calls L{release}.
    """

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[list[Record], Deferred[int]]] = []

    def append(self, records: list[Record]) -> Deferred[int]:
        d: Deferred[int] = Deferred()
        self.held.append((records, d))
        return d

    def release(self) -> None:
        """
        Commit every held append, in order, firing its Deferred.
        """
        held, self.held = self.held, []
        for records, d in held:
            MemoryStore.append(self, records).chainDeferred(d)

    def failAll(self) -> None:
        """
        Fail every held append with L{StoreError}: nothing of them is stored.
        """
        held, self.held = self.held, []
        for _, d in held:
            d.errback(StoreError("disk full"))


class DirectReactor:
    """
    Runs calls from threads at once, in the calling thread: for store
    threads tested without a running reactor.
    """

    def callFromThread(self, f: Any, *args: Any, **kw: Any) -> None:
        f(*args, **kw)
