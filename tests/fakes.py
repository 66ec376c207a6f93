"""
Test doubles shared by the resource tests.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred


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
