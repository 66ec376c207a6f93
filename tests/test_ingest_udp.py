"""
Tests for L{logsvc.ingest.udp}: the UDP listener's protocol over a Clock, its
endpoint description, the kernel's drop count, and the listener on a real
loopback socket.
"""

from __future__ import annotations

import errno
import socket
import zlib
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from logsvc.ingest import udp as udpModule
from logsvc.ingest.sink import IngestSink
from logsvc.ingest.udp import (
    _READ_ENDS,
    BatchReadingPort,
    DatagramIngest,
    UDPAddress,
    UDPListenerService,
    kernelDrops,
    parseUDPEndpoint,
)
from logsvc.limits import FlowControl
from logsvc.pipeline import Pipeline
from logsvc.store.memory import MemoryStore
from tests.fakes import HeldStore
from tests.speedups import requireSpeedups
from tests.test_formats_gelfchunks import chunked
from tests.test_ingest_tcp import CountingStore

PEER = ("192.0.2.9", 40000)


class FakePort:
    """The part of a UDP port the protocol uses: reading on and off."""

    reading = True

    def stopReading(self) -> None:
        self.reading = False

    def startReading(self) -> None:
        self.reading = True


class ProtocolTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = CountingStore()
        self.pipeline = Pipeline(self.store, reactor=self.clock, delay=0)
        self.sink = IngestSink(self.pipeline, "udp")
        self.protocol = DatagramIngest(self.sink, clock=self.clock)
        self.port = FakePort()
        self.protocol.makeConnection(self.port)  # type: ignore[arg-type]

    def rejected(self, reason: str) -> float:
        value = self.pipeline.metrics.registry.get_sample_value(
            "logsvc_records_rejected_total", {"transport": "udp", "reason": reason}
        )
        return value or 0.0

    def messages(self) -> list[str]:
        return [row[6] for row in self.store.rows]


class DatagramIngestTests(ProtocolTestCase):
    def test_oneSubmissionPerTurn(self) -> None:
        """Datagrams read in one reactor turn are stored in one append, each as one message."""
        for n in range(5):
            self.protocol.datagramReceived(b"<14>app: message %d\n" % n, PEER)
        self.assertEqual(self.store.rows, [])
        self.clock.advance(0)
        self.assertEqual(self.store.appendSizes, [5])
        self.assertEqual(self.messages(), [f"message {n}" for n in range(5)])
        self.assertEqual({row[4] for row in self.store.rows}, {"192.0.2.9"})

    def test_socketRestsAfterARead(self) -> None:
        """After a turn that read datagrams the socket rests readInterval, so the next read takes many at once."""
        self.protocol.datagramReceived(b"one", PEER)
        self.clock.advance(0)
        self.assertEqual((self.messages(), self.port.reading), (["one"], False))
        self.clock.advance(self.protocol.readInterval)
        self.assertTrue(self.port.reading)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_formatsOnOnePort(self) -> None:
        """Syslog, plain GELF, compressed GELF and chunked GELF share the port."""
        gelf = orjson.dumps({"version": "1.1", "host": "h", "short_message": "g"})
        big = orjson.dumps({"version": "1.1", "host": "h", "short_message": "c" * 5000})
        self.protocol.datagramReceived(b"<11>1 - - app - - - five424", PEER)
        self.protocol.datagramReceived(gelf, PEER)
        self.protocol.datagramReceived(zlib.compress(gelf), PEER)
        for chunk in reversed(chunked(big, 1000)):
            self.protocol.datagramReceived(chunk, PEER)
        self.clock.advance(0)
        self.assertEqual(self.messages(), ["five424", "g", "g", "c" * 5000])

    def test_invalidCountedAndLogged(self) -> None:
        """An invalid datagram is counted and the others stored; a bad chunk is counted apart."""
        self.protocol.datagramReceived(b"", PEER)
        self.protocol.datagramReceived(b"\x1e\x0f12345678\x00\xc8x", PEER)
        self.protocol.datagramReceived(b"fine", PEER)
        self.clock.advance(0)
        self.assertEqual(self.messages(), ["fine"])
        self.assertEqual((self.rejected("invalid"), self.rejected("chunk_invalid")), (1, 1))

    def test_incompleteExpires(self) -> None:
        """An incomplete chunked message is dropped and counted about 5 s after its first chunk."""
        self.protocol.datagramReceived(chunked(b"x" * 100, 10)[0], PEER)
        self.clock.advance(4)
        self.assertEqual(self.rejected("chunks_expired"), 0)
        self.clock.advance(1)
        self.assertEqual(self.rejected("chunks_expired"), 1)
        self.assertEqual(len(self.protocol.chunks), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_pausedWhilePipelineFull(self) -> None:
        """While the pipeline is full the socket is not read; it is read again once drained."""
        store = HeldStore()
        pipeline = Pipeline(store, reactor=self.clock, delay=0, maxPending=4)
        protocol = DatagramIngest(IngestSink(pipeline, "udp"), clock=self.clock)
        port = FakePort()
        protocol.makeConnection(port)  # type: ignore[arg-type]
        pipeline.registerProducer(protocol.gate.producer("pipeline"))
        disk = FlowControl()
        disk.registerProducer(protocol.gate.producer("disk"))
        for n in range(4):
            protocol.datagramReceived(b"m%d" % n, PEER)
        self.clock.advance(0)
        self.assertFalse(port.reading)
        disk.set(True)
        store.release()
        self.assertFalse(port.reading)
        disk.set(False)
        self.clock.advance(protocol.readInterval)
        self.assertTrue(port.reading)

    def test_stopSubmitsRead(self) -> None:
        """A stop submits what was read and drops incomplete chunked messages, counted."""
        self.protocol.datagramReceived(b"last", PEER)
        self.protocol.datagramReceived(chunked(b"x" * 100, 10)[0], PEER)
        self.protocol.stop()
        self.assertEqual(self.messages(), ["last"])
        self.assertEqual(self.rejected("chunks_expired"), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class FakeSocket:
    """A socket whose recvfrom returns the queued datagrams, then raises."""

    def __init__(self, datagrams: list[bytes], end: int = errno.EAGAIN) -> None:
        self.datagrams = list(datagrams)
        self.end = end
        self.sizes: list[int] = []

    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        self.sizes.append(size)
        if not self.datagrams:
            raise OSError(self.end, "no more")
        return self.datagrams.pop(0), PEER


class BatchReadingTests(ProtocolTestCase):
    def batchPort(self, fake: FakeSocket, protocol: Any = None) -> BatchReadingPort:
        port = BatchReadingPort(0, protocol or self.protocol, "127.0.0.1", 65535, Clock())
        port.socket = fake  # type: ignore[assignment]
        return port

    def test_oneListPerRead(self) -> None:
        """A read hands every datagram to the protocol in one list; it is stored in one append at once, chunks reassembled, then the socket rests."""
        big = orjson.dumps({"version": "1.1", "host": "h", "short_message": "c" * 3000})
        chunks = chunked(big, 1000)
        self.batchPort(FakeSocket([b"<14>app: one", *chunks, b"two"])).doRead()
        self.assertEqual(self.store.appendSizes, [3])
        self.assertEqual(self.messages(), ["one", "c" * 3000, "two"])
        self.assertEqual([row[4] for row in self.store.rows], ["192.0.2.9", "h", "192.0.2.9"])
        self.assertEqual(self.protocol.received, 2 + len(chunks))
        self.assertFalse(self.port.reading)

    def test_restsLongerWhenDrained(self) -> None:
        """A read that emptied the socket rests drainedInterval; one stopped at the port's limit reads on at once."""
        self.batchPort(FakeSocket([b"a"])).doRead()
        self.clock.advance(self.protocol.readInterval)
        self.assertFalse(self.port.reading)
        self.clock.advance(self.protocol.drainedInterval - self.protocol.readInterval)
        self.assertTrue(self.port.reading)
        port = self.batchPort(FakeSocket([b"x" * 1000] * 4))
        port.maxThroughput = 2000
        port.doRead()
        self.assertTrue(self.port.reading)
        self.assertEqual(self.messages(), ["a", "x" * 1000, "x" * 1000])

    def test_largeDrainedReadReadsOn(self) -> None:
        """A read that emptied the socket but took batchTarget datagrams or more reads on at once."""
        self.protocol.batchTarget = 3
        self.batchPort(FakeSocket([b"a", b"b", b"c"])).doRead()
        self.assertTrue(self.port.reading)
        self.assertEqual(self.messages(), ["a", "b", "c"])

    def test_restsForTheRestOfABatch(self) -> None:
        """
        After a small read that emptied the socket, it rests about as long as
        the rest of batchTarget datagrams take to come at the rate these came,
        at most drainedInterval.
        """
        self.protocol.batchTarget = 4
        self.batchPort(FakeSocket([b"a"])).doRead()
        self.clock.advance(self.protocol.drainedInterval)
        self.assertTrue(self.port.reading)
        # Three came in over drainedInterval: one more takes a third of that.
        self.batchPort(FakeSocket([b"b", b"c", b"d"])).doRead()
        self.clock.advance(self.protocol.drainedInterval / 3 * 0.9)
        self.assertFalse(self.port.reading)
        self.clock.advance(self.protocol.drainedInterval / 3 * 0.2)
        self.assertTrue(self.port.reading)
        # One in over a long quiet time: the longest rest, no longer.
        self.clock.advance(10)
        self.batchPort(FakeSocket([b"e"])).doRead()
        self.clock.advance(self.protocol.drainedInterval * 0.9)
        self.assertFalse(self.port.reading)
        self.clock.advance(self.protocol.drainedInterval * 0.2)
        self.assertTrue(self.port.reading)
        self.assertEqual(self.messages(), ["a", "b", "c", "d", "e"])

    def test_readBounded(self) -> None:
        """One read stops after maxThroughput bytes; the rest waits for the next."""
        fake = FakeSocket([b"x" * 1000] * 10)
        port = self.batchPort(fake)
        port.maxThroughput = 3000
        port.doRead()
        self.assertEqual((self.store.appendSizes, len(fake.datagrams)), ([3], 7))
        self.assertEqual(set(fake.sizes), {65535})

    def test_errorsAsTwisted(self) -> None:
        """A refusal ends a read quietly; another socket error is raised once what was read is taken."""
        self.batchPort(FakeSocket([b"a"], errno.ECONNREFUSED)).doRead()
        self.assertEqual(self.messages(), ["a"])
        port = self.batchPort(FakeSocket([b"b"], errno.EBADF))
        self.assertRaises(OSError, port.doRead)
        self.assertEqual(self.messages(), ["a", "b"])

    def test_protocolFailureLogged(self) -> None:
        """A protocol that fails on a read is logged; the port reads on."""

        class Failing:
            def datagramsReceived(self, datagrams: list[tuple[bytes, str]], drained: bool) -> None:
                raise ZeroDivisionError()

        port = self.batchPort(FakeSocket([b"a"]), Failing())
        port.doRead()
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class ReceiveDatagramsTests(ProtocolTestCase):
    """
    The C module's reader (C{receiveDatagrams}, recvmmsg) gives what
    L{BatchReadingPort._receiveEach} (a recvfrom each) gives, on real
    loopback sockets.
    """

    def setUp(self) -> None:
        super().setUp()
        self.receive = requireSpeedups().receiveDatagrams
        self.assertIs(udpModule._receiveDatagrams, self.receive)

    def socketPair(self, family: int = socket.AF_INET, host: str = "127.0.0.1") -> tuple[socket.socket, socket.socket]:
        server = socket.socket(family, socket.SOCK_DGRAM)
        self.addCleanup(server.close)
        server.bind((host, 0))
        server.setblocking(False)
        client = socket.socket(family, socket.SOCK_DGRAM)
        self.addCleanup(client.close)
        client.connect(server.getsockname()[:2])
        return server, client

    def bothWays(self, server: socket.socket, client: socket.socket, datagrams: list[bytes], limit: int) -> list[Any]:
        """
        Send C{datagrams} twice; read them the C way, then the Python way.
        """
        port = BatchReadingPort(0, self.protocol, "127.0.0.1", 65535, Clock())
        port.socket = server
        port.maxThroughput = limit
        results = []
        for way in ("c", "python"):
            for datagram in datagrams:
                client.send(datagram)
            if way == "c":
                found, read, ended = self.receive(server.fileno(), limit, 65535)
                results.append((found, read, None if ended == 0 or ended in _READ_ENDS else ended))
            else:
                found, read, failure = port._receiveEach()
                results.append((found, read, None if failure is None else failure.errno))
            # What a limit left waits for the next read.
            while True:
                try:
                    server.recv(65535)
                except BlockingIOError:
                    break
        return results

    def test_sameAsRecvfrom(self) -> None:
        """
        Datagrams of any size, empty ones, each with its sender's host (IPv4
        and IPv6), until the socket is empty.
        """
        datagrams = [b"", b"<14>app: one", b"x" * 1400, *(b"%d" % n for n in range(150)), b"y" * 9000]
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            cWay, pythonWay = self.bothWays(*self.socketPair(family, host), datagrams, 1 << 20)
            self.assertEqual(cWay, pythonWay)
            self.assertEqual(cWay[0], [(d, host) for d in datagrams])
            self.assertEqual(cWay[1], sum(map(len, datagrams)))

    def test_limit(self) -> None:
        """
        A read stops once C{maxThroughput} bytes are read, as one recvfrom a
        datagram does: with the datagram that reached it, not a batch more.
        """
        cWay, pythonWay = self.bothWays(*self.socketPair(), [b"x" * 1000] * 10, 3000)
        self.assertEqual(cWay, pythonWay)
        self.assertEqual((len(cWay[0]), cWay[1]), (3, 3000))

    def test_errors(self) -> None:
        """
        A read that fails for another reason than an empty socket ends with
        that error, as recvfrom would raise it; the port raises it once what
        was read is taken.
        """
        server, _ = self.socketPair()
        closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        fd = closed.fileno()
        closed.close()
        self.assertEqual(self.receive(fd, 1000, 65535), ([], 0, errno.EBADF))
        port = BatchReadingPort(0, self.protocol, "127.0.0.1", 65535, Clock())
        port.socket = closed
        error = self.assertRaises(OSError, port.doRead)
        self.assertEqual(error.errno, errno.EBADF)

    def test_portReadsWithIt(self) -> None:
        """
        The UDP listener's port reads a real socket the C way: the records
        land with their sender's host.
        """
        server, client = self.socketPair()
        for n in range(3):
            client.send(b"<14>app: message %d" % n)
        port = BatchReadingPort(0, self.protocol, "127.0.0.1", 65535, Clock())
        port.socket = server
        port.doRead()
        self.assertEqual(self.messages(), [f"message {n}" for n in range(3)])
        self.assertEqual({row[4] for row in self.store.rows}, {"127.0.0.1"})

    def test_badArguments(self) -> None:
        """
        Arguments that are not numbers, or a size out of range, raise; they
        do not crash.
        """
        self.assertRaises(TypeError, self.receive, "3", 1000, 65535)
        self.assertRaises(ValueError, self.receive, 3, 1000, 0)
        self.assertRaises(OverflowError, self.receive, 1 << 40, 1000, 65535)
        self.assertRaises(TypeError, self.receive, 3)


class EndpointTests(SynchronousTestCase):
    def test_forms(self) -> None:
        """udp:PORT, udp:PORT:interface=ADDR, udp:port=PORT and escaped IPv6 interfaces parse."""
        self.assertEqual(parseUDPEndpoint("udp:5514"), UDPAddress(5514, ""))
        self.assertEqual(parseUDPEndpoint("udp:5514:interface=127.0.0.1"), UDPAddress(5514, "127.0.0.1"))
        self.assertEqual(parseUDPEndpoint("udp:port=0:interface=\\:\\:1"), UDPAddress(0, "::1"))

    def test_errors(self) -> None:
        """Other schemes, bad ports and unknown parameters are refused naming the problem."""
        for bad, words in [
            ("tcp:5514", "udp:PORT"),
            ("udp:", "port"),
            ("udp:70000", "0..65535"),
            ("udp:5514:backlog=5", "unknown parameter"),
            ("udp:1:2", "one port"),
        ]:
            self.assertIn(words, str(self.assertRaises(ValueError, parseUDPEndpoint, bad)))


class KernelDropsTests(SynchronousTestCase):
    def test_dropsVisible(self) -> None:
        """Datagrams the kernel drops for a full receive buffer show in kernelDrops."""
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(receiver.close)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        receiver.bind(("127.0.0.1", 0))
        if kernelDrops(receiver.fileno()) is None:
            raise self.skipTest("no /proc/net/udp on this system (Linux only)")
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        for _ in range(200):
            sender.sendto(b"x" * 1000, receiver.getsockname())
        self.assertGreater(kernelDrops(receiver.fileno()) or 0, 0)


class ListenerTests(TestCase):
    @inlineCallbacks
    def test_loopback(self) -> Any:
        """The service listens on loopback, stores what arrives, exports its buffer, and stores the rest at stop."""
        store = MemoryStore()
        pipeline = Pipeline(store, delay=0)
        protocol = DatagramIngest(IngestSink(pipeline, "udp"), clock=reactor)
        service = UDPListenerService(
            UDPAddress(0, "127.0.0.1"), protocol, reactor=reactor, receiveBuffer=1024 * 1024,
            flowControllers=[("pipeline", pipeline)],
        )
        service.startService()
        self.assertIsInstance(service.port, BatchReadingPort)
        address = service.port.getHost()
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        for n in range(20):
            sender.sendto(b"<14>app: m%d" % n, (address.host, address.port))
        for _ in range(100):
            if len(store.rows) == 20:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(sorted(row[6] for row in store.rows), sorted(f"m{n}" for n in range(20)))
        sample = pipeline.metrics.registry.get_sample_value
        self.assertGreater(sample("logsvc_udp_receive_buffer_bytes"), 0)
        self.assertEqual(sample("logsvc_udp_datagrams_total"), 20)
        self.assertEqual(sample("logsvc_udp_kernel_drops_total"), 0)
        yield service.stopService()
        self.assertEqual(pipeline._producers, set())


class FuzzTests(ProtocolTestCase):
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        st.lists(
            st.one_of(
                st.binary(max_size=80),
                st.binary(max_size=40).map(lambda b: b"\x1e\x0f" + b),
                st.tuples(st.binary(min_size=8, max_size=8), st.integers(0, 255), st.integers(0, 255), st.binary(max_size=20))
                .map(lambda t: b"\x1e\x0f" + t[0] + bytes([t[1], t[2]]) + t[3]),
                st.binary(max_size=60).map(lambda b: b"\x78\x9c" + b),
            ),
            max_size=20,
        ),
        st.floats(0, 7),
    )
    def test_nothingEscapes(self, datagrams: list[bytes], later: float) -> None:
        """Any datagrams, chunk-like or not, become records, counted rejections or expired chunks; never an exception."""
        for datagram in datagrams:
            self.protocol.datagramReceived(datagram, PEER)
        self.clock.advance(later)
        self.protocol.stop()
        self.clock.advance(10)
