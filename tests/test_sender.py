"""
Tests for L{logsvc.sender}: the at-least-once TCP sender and the
twisted.logger observer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.logger import Logger, LogLevel
from twisted.trial.unittest import SynchronousTestCase, TestCase

from logsvc.ingest.tcp import IngestFactory
from logsvc.pipeline import Pipeline
from logsvc.record import Record, normalize
from logsvc.sender import LogsvcObserver, SenderFull, TCPSender, _AckReader
from logsvc.store.memory import MemoryStore


class FakeConnection:
    """
    Drive a sender's connection by hand: what it wrote, acks to feed back.
    """

    def __init__(self, sender: TCPSender) -> None:
        self.protocol = _AckReader()
        self.protocol.sender = sender
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def lines(self) -> list[bytes]:
        return self.transport.value().splitlines()

    def ack(self, n: int) -> None:
        self.protocol.dataReceived(b"OK %d\n" % n)

    def drop(self) -> None:
        self.protocol.connectionLost(None)  # type: ignore[arg-type]


def makeSender(**kw: Any) -> tuple[TCPSender, Clock]:
    clock = Clock()
    endpoint = TCP4ClientEndpoint(clock, "127.0.0.1", 9)  # never started
    return TCPSender(endpoint, reactor=clock, **kw), clock


def messages(lines: list[bytes]) -> list[str]:
    return [orjson.loads(line)["message"] for line in lines]


class AccountingTests(SynchronousTestCase):
    def test_ackReleasesAndFlushFires(self) -> None:
        """Records stay until acknowledged; flush fires once all before it are acked."""
        sender, clock = makeSender()
        for i in range(3):
            sender.send(f"m{i}")
        flushed = sender.flush()
        conn = FakeConnection(sender)
        self.assertEqual(messages(conn.lines()), ["m0", "m1", "m2"])
        conn.ack(2)
        self.assertEqual(sender.queued, 1)
        self.assertNoResult(flushed)
        conn.ack(3)
        self.successResultOf(flushed)
        self.assertEqual((sender.queued, sender.acknowledged), (0, 3))

    def test_resendUnackedAfterReconnect(self) -> None:
        """After a reconnect exactly the unacknowledged records are sent again, in order."""
        sender, clock = makeSender()
        for i in range(4):
            sender.send(f"m{i}")
        first = FakeConnection(sender)
        first.ack(1)
        first.drop()
        sender.send("m4")
        clock.advance(0)
        second = FakeConnection(sender)
        self.assertEqual(messages(second.lines()), ["m1", "m2", "m3", "m4"])
        second.ack(4)  # acks count per connection
        self.assertEqual(sender.queued, 0)

    def test_windowBoundsWrites(self) -> None:
        """At most window records are written unacknowledged; acks open the window."""
        sender, clock = makeSender(window=2)
        for i in range(5):
            sender.send(f"m{i}")
        conn = FakeConnection(sender)
        self.assertEqual(messages(conn.lines()), ["m0", "m1"])
        conn.ack(1)
        self.assertEqual(messages(conn.lines()), ["m0", "m1", "m2"])

    def test_tokenFirstLine(self) -> None:
        """With a token, every connection starts with the AUTH line."""
        sender, clock = makeSender(token="sekrit")
        sender.send("m")
        conn = FakeConnection(sender)
        self.assertEqual(conn.lines()[0], b"AUTH sekrit")

    def test_dropOldest(self) -> None:
        """Under drop-oldest a full sender keeps the newest records and counts the dropped."""
        sender, clock = makeSender(maxQueued=3)
        for i in range(5):
            sender.send(f"m{i}")
        self.assertEqual((sender.queued, sender.dropped), (3, 2))
        conn = FakeConnection(sender)
        self.assertEqual(messages(conn.lines()), ["m2", "m3", "m4"])

    def test_dropOldestWhileWritten(self) -> None:
        """Dropping a record already on the wire keeps later acks aligned."""
        sender, clock = makeSender(maxQueued=2)
        sender.send("a")
        sender.send("b")
        conn = FakeConnection(sender)
        sender.send("c")  # drops "a", which the server has
        clock.advance(0)
        conn.ack(1)  # the server's ack of "a"
        self.assertEqual(sender.queued, 2)
        conn.ack(3)
        self.assertEqual(sender.queued, 0)

    def test_raise(self) -> None:
        """Under raise a full sender refuses the new record and keeps the old ones."""
        sender, clock = makeSender(maxQueued=2, whenFull="raise")
        sender.send("a")
        sender.send("b")
        self.assertRaises(SenderFull, sender.send, "c")
        self.assertEqual(sender.queued, 2)


class ObserverTests(SynchronousTestCase):
    def test_eventsBecomeRecords(self) -> None:
        """Log events are queued as records with message, level, time and service."""
        sender, clock = makeSender()
        observer = LogsvcObserver(sender, service="api", host="h1")
        log = Logger(namespace="app.web", observer=observer)
        log.warn("disk at {pct}%", pct=91)
        try:
            raise ZeroDivisionError("boom")
        except ZeroDivisionError:
            log.failure("oops")
        conn = FakeConnection(sender)
        first, second = [orjson.loads(line) for line in conn.lines()]
        self.assertEqual(
            (first["message"], first["level"], first["service"], first["host"]),
            ("disk at 91%", "warning", "api", "h1"),
        )
        self.assertIsInstance(first["ts"], float)
        self.assertEqual(second["level"], "critical")
        self.assertIn("ZeroDivisionError", second["traceback"])

    def test_eventKeysBecomeFields(self) -> None:
        """
        An event's own keys become fields (JSON-safe, repr otherwise);
        twisted.logger's log_* keys and legacy log.msg keys do not, and no
        key overrides the record's own message, level, service or source.
        """
        sender, clock = makeSender()
        observer = LogsvcObserver(sender, service="api", host="h1")
        when = datetime(2026, 12, 4, tzinfo=UTC)
        # As Logger.info("job {job} started", job=42, ...) emits it, with keys
        # a Logger call cannot pass (level) and legacy log.msg ones.
        observer(
            {
                "log_level": LogLevel.info,
                "log_format": "job {job} started",
                "log_namespace": "app.jobs",
                "log_time": 1.0,
                "log_source": None,
                "job": 42,
                "tags": ["a", "b"],
                "when": when,
                "raw": b"\x00raw",
                "big": 2**70,
                "message": "not the message",
                "level": "emergency",
                "service": "other",
                "host": "elsewhere",
                "msg": "neither",
                "isError": 1,
                "system": "-",
            }
        )
        conn = FakeConnection(sender)
        [line] = conn.lines()
        sent = orjson.loads(line)
        self.assertEqual(
            (sent["message"], sent["level"], sent["service"], sent["host"]), ("job 42 started", "info", "api", "h1")
        )
        self.assertEqual(
            sent["fields"],
            {
                "job": 42,
                "tags": ["a", "b"],
                "when": "2026-12-04T00:00:00+00:00",
                "raw": repr(b"\x00raw"),
                "big": repr(2**70),
                "level": "emergency",
                "service": "other",
                "host": "elsewhere",
                "msg": "neither",
            },
        )
        record = normalize(sent, "peer", 1)
        self.assertEqual((record.level, record.service, record.source, record.message), (6, "api", "h1", "job 42 started"))
        self.assertEqual(orjson.loads(record.fields or "{}")["job"], 42)
        self.assertEqual(orjson.loads(record.fields or "{}")["level"], "emergency")

    def test_neverRaises(self) -> None:
        """A full raise-policy sender does not make logging fail; the observer counts it."""
        sender, clock = makeSender(maxQueued=1, whenFull="raise")
        observer = LogsvcObserver(sender)
        observer({"log_level": LogLevel.info, "log_format": "a", "log_time": 1.0})
        observer({"log_level": LogLevel.info, "log_format": "b", "log_time": 1.0})
        self.assertEqual(observer.failed, 1)


class HeldStore(MemoryStore):
    """
    Commits only while C{holding} is False; held appends commit on release.
    """

    def __init__(self) -> None:
        super().__init__()
        self.holding = False
        self.held: list[tuple[list[Record], Deferred[int]]] = []

    def append(self, records: list[Record]) -> Deferred[int]:
        if not self.holding:
            return MemoryStore.append(self, records)
        d: Deferred[int] = Deferred()
        self.held.append((records, d))
        return d


class LoopbackTests(TestCase):
    def setUp(self) -> None:
        self.store = HeldStore()
        self.pipeline = Pipeline(self.store, delay=0)
        self.factory = IngestFactory(self.pipeline, transport="tcp-acked", acknowledge=True)
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    def sender(self) -> TCPSender:
        sender = TCPSender(
            f"tcp:host=127.0.0.1:port={self.port.getHost().port}",
            retryPolicy=lambda attempt: 0.05,
        )
        sender.startService()
        self.addCleanup(sender.stopService)
        return sender

    @inlineCallbacks
    def test_flushAfterDurable(self) -> None:
        """Over a real connection, flush fires once every record is in the store."""
        sender = self.sender()
        for i in range(2000):
            sender.send({"message": f"m{i}", "seq": i})
        yield sender.flush()
        self.assertEqual(len(self.store.rows), 2000)

    @inlineCallbacks
    def test_lostAckResent(self) -> None:
        """Records stored but whose ack was lost with the connection are resent: at least once, never lost."""
        sender = self.sender()
        self.store.holding = True
        sender.send("one")
        sender.send("two")
        while not self.store.held:
            yield deferLater(reactor, 0.01, lambda: None)
        for protocol in list(self.factory.connections):
            protocol.transport.abortConnection()
        self.store.holding = False
        for records, d in self.store.held:
            MemoryStore.append(self.store, records).chainDeferred(d)
        yield sender.flush()
        stored = [row[6] for row in self.store.rows]
        self.assertEqual(stored, ["one", "two", "one", "two"])
        self.assertEqual(sender.connections, 2)
