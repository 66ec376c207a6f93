# -*- test-case-name: tests.test_ingest_heartbeat -*-
"""
The Fluent forward protocol's UDP heartbeat, beside the C{--forward}
listener.

Fluentd's C{out_forward} with C{heartbeat_type udp} (its default before
Fluentd v1, kept by many configurations) checks that a server is alive by
sending a datagram to the forward port's number over UDP, and counts the
server down when no datagram comes back from it.  Fluentd's own server
(C{in_forward}, the protocol's reference) listens on UDP at the forward port
and answers every datagram with one NUL byte, sent to the address it came
from; L{HeartbeatService} does the same.  The answer is never larger than
the datagram it answers, so the port cannot amplify a spoofed flood.

TCP heartbeats (a connection opened and closed, or a msgpack C{nil}) are
the forward listener's own (L{logsvc.ingest.forward}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

__all__ = ["HEARTBEAT_ANSWER", "HeartbeatProtocol", "HeartbeatService"]

#: What a heartbeat is answered with (Fluentd's in_forward answers so).
HEARTBEAT_ANSWER = b"\0"


class HeartbeatProtocol(DatagramProtocol):
    """
    Answers each non-empty datagram with L{HEARTBEAT_ANSWER}, to its sender.
    """

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if datagram and self.transport is not None:
            self.transport.write(HEARTBEAT_ANSWER, addr)


class HeartbeatService(Service):
    """
    Listens for UDP heartbeats on the interface and port number a TCP
    listener bound (so C{--forward tcp:0} gets its heartbeat on the port
    chosen), once that listener is bound: add this service after it.

    A port that cannot be bound for UDP (another program, or C{--udp} on the
    same number) is logged as a warning and the forward listener runs
    without the UDP heartbeat; a listener on a UNIX socket has none.

    @ivar port: the UDP port while listening, else L{None}.
    """

    log = Logger()
    port: Any = None
    #: Whether binding was tried (a failure is warned about once).
    _tried = False

    def __init__(self, listening: Callable[[], Any], *, reactor: Any) -> None:
        """
        @param listening: returns the TCP listener's C{IListeningPort} (or
            L{None} before it is bound).
        """
        self.listening = listening
        self.reactor = reactor

    def privilegedStartService(self) -> None:
        # Beside the TCP listener, which binds here (a port below 1024 is
        # bound before privileges are dropped).
        Service.privilegedStartService(self)
        self._listen()

    def startService(self) -> None:
        self._listen()
        Service.startService(self)

    def _listen(self) -> None:
        if self._tried:
            return
        tcp = self.listening()
        address = tcp.getHost() if tcp is not None else None
        if not isinstance(address, (IPv4Address, IPv6Address)):
            return
        self._tried = True
        try:
            self.port = self.reactor.listenUDP(address.port, HeartbeatProtocol(), interface=address.host)
        except CannotListenError as e:
            self.log.warn(
                "--forward: no UDP heartbeat on port {port} ({reason}); TCP heartbeats still work",
                port=address.port,
                reason=e.socketError or e,
            )

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        self._tried = False
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        return maybeDeferred(port.stopListening).addCallback(lambda _: None)
