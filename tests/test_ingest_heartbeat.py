"""
Tests for L{logsvc.ingest.heartbeat}: the forward protocol's UDP heartbeat,
its protocol with a recording transport and its service on real loopback
sockets.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from logsvc.ingest.heartbeat import HEARTBEAT_ANSWER, HeartbeatProtocol, HeartbeatService

#: Seconds a loopback answer may take on a loaded machine.
PATIENCE = 30.0


class RecordingTransport:
    """The part of a UDP transport the protocol uses: writes, recorded."""

    def __init__(self) -> None:
        self.written: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, addr: Any) -> None:
        self.written.append((data, addr))


class HeartbeatProtocolTests(SynchronousTestCase):
    def test_answered(self) -> None:
        """Each heartbeat datagram (Fluentd sends one NUL byte) is answered with one NUL byte to its sender."""
        protocol = HeartbeatProtocol()
        transport = RecordingTransport()
        protocol.transport = transport  # type: ignore[assignment]
        protocol.datagramReceived(b"\0", ("192.0.2.1", 5000))
        protocol.datagramReceived(b"anything at all", ("192.0.2.2", 5001))
        self.assertEqual(transport.written, [(b"\0", ("192.0.2.1", 5000)), (b"\0", ("192.0.2.2", 5001))])

    def test_emptyIgnored(self) -> None:
        """An empty datagram is not answered (an answer is never larger than what it answers)."""
        protocol = HeartbeatProtocol()
        transport = RecordingTransport()
        protocol.transport = transport  # type: ignore[assignment]
        protocol.datagramReceived(b"", ("192.0.2.1", 5000))
        self.assertEqual(transport.written, [])


class _Answers(DatagramProtocol):
    """A heartbeat sender: fires C{answered} with the first datagram back."""

    def __init__(self) -> None:
        self.answered: Deferred[tuple[bytes, Any]] = Deferred()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if not self.answered.called:
            self.answered.callback((datagram, addr))


class HeartbeatServiceTests(TestCase):
    def listenTCP(self) -> Any:
        port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port

    def startHeartbeat(self, tcp: Any) -> HeartbeatService:
        service = HeartbeatService(lambda: tcp, reactor=reactor)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        return service

    @inlineCallbacks
    def test_sameNumberAsTCP(self) -> Any:
        """The UDP heartbeat listens on the TCP listener's interface and port number and answers a heartbeat."""
        tcp = self.listenTCP()
        service = self.startHeartbeat(tcp)
        self.assertEqual(service.port.getHost().port, tcp.getHost().port)
        sender = _Answers()
        client = reactor.listenUDP(0, sender, interface="127.0.0.1")
        self.addCleanup(client.stopListening)
        client.write(b"\0", ("127.0.0.1", tcp.getHost().port))
        datagram, addr = yield sender.answered.addTimeout(PATIENCE, reactor)
        self.assertEqual((datagram, addr), (HEARTBEAT_ANSWER, ("127.0.0.1", tcp.getHost().port)))

    @inlineCallbacks
    def test_stopCloses(self) -> Any:
        """Stopping the service gives the UDP port back."""
        tcp = self.listenTCP()
        service = HeartbeatService(lambda: tcp, reactor=reactor)
        service.startService()
        yield service.stopService()
        self.assertIsNone(service.port)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", tcp.getHost().port))

    @inlineCallbacks
    def test_portTakenWarns(self) -> Any:
        """A UDP port already taken is a warning; the service starts without the heartbeat."""
        tcp = self.listenTCP()
        taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", tcp.getHost().port))
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        service = self.startHeartbeat(tcp)
        self.assertIsNone(service.port)
        self.assertTrue(service.running)
        warnings = [e for e in events if e.get("log_namespace", "").endswith("HeartbeatService")]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["port"], tcp.getHost().port)
        yield deferLater(reactor, 0, lambda: None)

    def test_noTCPPortNoHeartbeat(self) -> None:
        """Without a bound TCP port (a UNIX socket's address, or none yet) nothing listens."""
        service = self.startHeartbeat(None)
        self.assertIsNone(service.port)
