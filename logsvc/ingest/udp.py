# -*- test-case-name: tests.test_ingest_udp -*-
"""
UDP ingest (C{--udp udp:5514}): one datagram is one message, syslog (RFC 5424
and 3164) or GELF (plain, zlib, gzip or chunked) on the same port, told apart
by their first bytes (L{logsvc.formats.datagram}).

UDP has no connections and cannot authenticate, and a datagram the socket
did not take in time is lost without anyone being told.  So:

  - the socket asks for a large receive buffer (C{SO_RCVBUF}; the kernel caps
    it at C{net.core.rmem_max} unless the process may raise it with
    C{SO_RCVBUFFORCE}); the size granted is logged at start and exported;
  - datagrams are parsed and submitted in one batch per reactor turn, not one
    pipeline submission each (on a POSIX reactor, L{BatchReadingPort} hands
    the protocol each read's datagrams as one list, not one call each); a
    read that emptied the socket before 1,024 datagrams gathered is followed
    by a rest about as long as the rest of them would take to come at the
    rate they came (at most 25 ms), so at a moderate rate reads come in
    batches, not one wakeup per datagram, while a read of a whole batch, or
    one that stopped at the port's limit, is followed by the next at once;
  - while the pipeline is full (or the disk low) the socket is not read: the
    kernel buffer is the queue, and what overflows it is the kernel's drop,
    counted by the kernel (C{/proc/net/udp}'s drops column, exported as
    C{logsvc_udp_kernel_drops});
  - what the process itself drops is counted in
    C{logsvc_records_rejected{transport="udp",reason}}: C{invalid}
    (unparseable), C{chunk_invalid}, C{chunks_expired} (incomplete after 5 s),
    C{chunks_evicted} (pending chunk memory full), C{store}.

Everything here runs on the reactor thread.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from errno import EAGAIN, ECONNREFUSED, EINTR, EWOULDBLOCK
from typing import Any

from twisted.application.service import Service
from twisted.internet import udp
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.internet.posixbase import PosixReactorBase
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from logsvc import speedups
from logsvc.formats.datagram import MAX_INFLATED, parseDatagrams
from logsvc.formats.gelfchunks import CHUNK_MAGIC, ChunkAssembler, ChunkError
from logsvc.ingest.sink import IngestSink, LogQuota
from logsvc.limits import PauseGate
from logsvc.times import nowMicros

__all__ = [
    "DEFAULT_RECEIVE_BUFFER",
    "BatchReadingPort",
    "DatagramIngest",
    "UDPAddress",
    "UDPListenerService",
    "kernelDrops",
    "parseUDPEndpoint",
]

#: The receive buffer asked for by default, bytes.
DEFAULT_RECEIVE_BUFFER = 8 * 1024 * 1024
#: Linux's SO_RCVBUFFORCE (not in Python's socket module): like SO_RCVBUF but
#: not capped by net.core.rmem_max, for a process with CAP_NET_ADMIN.
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
#: Largest datagram read (the largest UDP payload over IPv4/IPv6 loopback).
MAX_DATAGRAM = 65535


class UDPAddress:
    """
    Where a UDP listener binds: a port and an interface.
    """

    def __init__(self, port: int, interface: str = "") -> None:
        self.port = port
        self.interface = interface

    def __repr__(self) -> str:
        return f"UDPAddress({self.port!r}, {self.interface!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UDPAddress) and (self.port, self.interface) == (other.port, other.interface)

    def __hash__(self) -> int:
        return hash((self.port, self.interface))


def _splitEscaped(text: str) -> list[str]:
    """
    Split an endpoint description at colons, as Twisted's endpoint strings
    do: a backslash escapes the next character (C{interface=\\:\\:1}).
    """
    parts = [""]
    escaped = False
    for char in text:
        if escaped:
            parts[-1] += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append("")
        else:
            parts[-1] += char
    return parts


def parseUDPEndpoint(description: str) -> UDPAddress:
    """
    Parse a UDP listener description in Twisted's endpoint-string style:
    C{udp:PORT}, C{udp:PORT:interface=ADDR} or C{udp:port=PORT:interface=ADDR}
    (colons of an IPv6 address escaped: C{interface=\\:\\:1}).

    @raise ValueError: saying what is wrong (the caller names the option
        and the value).
    """
    parts = _splitEscaped(description.strip())
    if parts[0] != "udp":
        raise ValueError("not a UDP endpoint; use udp:PORT[:interface=ADDR]")
    positional: list[str] = []
    keywords: dict[str, str] = {}
    for part in parts[1:]:
        name, equals, value = part.partition("=")
        if equals:
            if name not in ("port", "interface"):
                raise ValueError(f"unknown parameter {name!r} (port, interface)")
            keywords[name] = value
        else:
            positional.append(part)
    if len(positional) > 1 or (positional and "port" in keywords):
        raise ValueError("one port, then interface=ADDR")
    text = positional[0] if positional else keywords.get("port", "")
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f"the port must be a number 0..65535, not {text!r}")
    return UDPAddress(int(text), keywords.get("interface", ""))


def kernelDrops(fd: int, tables: tuple[str, ...] = ("/proc/net/udp", "/proc/net/udp6")) -> int | None:
    """
    @return: the datagrams the kernel dropped for the socket C{fd} (its
        receive buffer was full), from the C{drops} column of
        C{/proc/net/udp}; L{None} where that is not available.
    """
    try:
        inode = str(os.fstat(fd).st_ino)
    except OSError:
        return None
    for table in tables:
        try:
            with open(table) as lines:
                next(lines, None)
                for line in lines:
                    columns = line.split()
                    # sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
                    if len(columns) >= 13 and columns[9] == inode:
                        return int(columns[12])
        except OSError:
            continue
    return None


@implementer(IPushProducer)
class DatagramIngest(DatagramProtocol):
    """
    The UDP listener's protocol; see the module docstring.

    @ivar received: datagrams read from the socket so far.
    @ivar chunks: the L{ChunkAssembler} of chunked GELF.
    @ivar gate: pauses reading for the pipeline's and the disk's reasons.
    """

    log = Logger()
    #: Rejections logged per minute, at most (all are counted).
    maxLoggedRejections = 10

    def __init__(
        self,
        sink: IngestSink,
        *,
        clock: Any,
        maxInflated: int = MAX_INFLATED,
        chunkTimeout: float = 5.0,
        maxPendingChunkBytes: int = 32 * 1024 * 1024,
        readInterval: float = 0.005,
        drainedInterval: float = 0.025,
        batchTarget: int = 1024,
    ) -> None:
        """
        @param readInterval: seconds the socket rests after each turn that
            read something through Twisted's own port (one datagram a
            call), so the next read takes many at once (see L{flush}).
        @param drainedInterval: the longest rest after a read of
            L{BatchReadingPort} that emptied the socket before
            C{batchTarget} datagrams gathered (a moderate rate): the next
            read, and the store's next transaction, then hold several times
            as many records, which costs far less CPU per record (measured:
            RFC 5424 at 20,000 datagrams/s, about 20 us of the server's CPU
            per record against 28 us resting 5 ms).  A record waits that
            much longer before it is stored.
        @param batchTarget: the datagrams a read should take.  After a read
            that emptied the socket with fewer, the socket rests about as
            long as the rest took to arrive at the rate these did (at most
            C{drainedInterval}); after a read of as many or more, or one
            that stopped at the port's limit (more is waiting), the next
            read follows at once.  A fixed rest left the reactor idle at
            high rates while the kernel's buffer filled (measured: RFC 5424
            at the highest rate, 96,600 datagrams/s against 67,700 resting
            5 ms after a read that stopped at the port's limit).
        """
        self.sink = sink
        self.readInterval = readInterval
        self.drainedInterval = drainedInterval
        self.batchTarget = batchTarget
        self._lastRead: float | None = None
        self.clock = clock
        self.maxInflated = maxInflated
        self.received = 0
        self.quota = LogQuota(self.maxLoggedRejections, clock=clock, period=60.0)
        self.chunks = ChunkAssembler(
            timeout=chunkTimeout, maxPendingBytes=maxPendingChunkBytes, onDrop=self._chunksDropped
        )
        self.gate = PauseGate(self)
        self._batch: list[tuple[bytes, str]] = []
        self._flushCall: Any = None
        self._expiryCall: Any = None
        self._restCall: Any = None

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.received += 1
        peer = addr[0] if isinstance(addr, tuple) else "unknown"
        if data[:2] == CHUNK_MAGIC:
            whole = self._chunkReceived(data, peer)
            if whole is None:
                return
            data = whole
        self._batch.append((data, peer))
        if self._flushCall is None:
            # At the end of this reactor turn (the port reads up to 256 KiB
            # of datagrams per turn).
            self._flushCall = self.clock.callLater(0, self._turnEnded)

    def datagramsReceived(self, datagrams: list[tuple[bytes, str]], drained: bool = False) -> None:
        """
        Take the datagrams of one read, each with its sender's host, and
        submit them (L{BatchReadingPort} calls this once per read, where
        Twisted's port calls L{datagramReceived} once per datagram).

        @param drained: whether the read emptied the socket (then it rests
            up to C{drainedInterval} if it took fewer than C{batchTarget}
            datagrams, else it reads on at the next reactor turn).
        """
        self.received += len(datagrams)
        batch = self._batch
        for datagram in datagrams:
            if datagram[0][:2] == CHUNK_MAGIC:
                whole = self._chunkReceived(*datagram)
                if whole is not None:
                    batch.append((whole, datagram[1]))
            else:
                batch.append(datagram)
        self._turnEnded(self._restAfter(len(datagrams), drained))

    def _restAfter(self, count: int, drained: bool) -> float:
        """
        @return: the seconds to rest after a read of C{count} datagrams (see
            C{batchTarget}).
        """
        now = self.clock.seconds()
        previous, self._lastRead = self._lastRead, now
        if not drained or count >= self.batchTarget:
            return 0.0
        if previous is None or now <= previous:
            return self.drainedInterval
        # These came in over (now - previous): the rest of a batch, at that rate.
        return min(self.drainedInterval, (now - previous) * (self.batchTarget - count) / count)

    def _chunkReceived(self, data: bytes, peer: str) -> bytes | None:
        """
        @return: the whole message once C{data} completes it, else L{None}
            (a chunk that cannot be taken is counted and logged).
        """
        try:
            whole = self.chunks.add(data, peer, self.clock.seconds())
        except ChunkError as e:
            self.sink.reject([(data[:64], str(e))], peer=peer, quota=self.quota, reason="chunk_invalid")
            return None
        if whole is None and self._expiryCall is None and len(self.chunks):
            self._expiryCall = self.clock.callLater(1.0, self._expire)
        return whole

    def _turnEnded(self, rest: float | None = None) -> None:
        """
        Submit what was read, then rest the socket C{rest} seconds
        (C{readInterval} when not given).
        """
        self._flushCall = None
        self.flush()
        if rest is None:
            rest = self.readInterval
        if rest > 0 and self._restCall is None and self.transport is not None:
            # Rest the socket briefly: datagrams wait in the kernel buffer
            # and the next read takes them together.  Read one at a time,
            # each costs a wakeup, a parse call and a pipeline submission,
            # several times the parse itself; under CPU contention that
            # decides whether 20,000/s keep up.
            self.gate.pause("rest")
            self._restCall = self.clock.callLater(rest, self._rested)

    def _rested(self) -> None:
        self._restCall = None
        self.gate.resume("rest")

    def flush(self) -> None:
        """
        Parse and submit the datagrams read since the last flush: one
        submission per reactor turn, not one per datagram.
        """
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
        self._flushCall = None
        batch, self._batch = self._batch, []
        if not batch:
            return
        records, rejected = parseDatagrams(batch, nowMicros(), maxInflated=self.maxInflated)
        for peer, rejection in rejected:
            self.sink.reject([rejection], peer=peer, quota=self.quota)
        if records:
            self.sink.submit(records).addErrback(self._notStored)

    def _notStored(self, failure: Failure) -> None:
        # Counted by the sink; UDP senders cannot be told.
        self.log.failure("UDP records not stored", failure)

    def _chunksDropped(self, reason: str, count: int) -> None:
        self.sink.refuse(reason, count)
        if self.quota.take():
            self.log.warn("dropped {count} chunked GELF messages: {reason}", count=count, reason=reason)

    def _expire(self) -> None:
        self._expiryCall = None
        self.chunks.expire(self.clock.seconds())
        if len(self.chunks):
            self._expiryCall = self.clock.callLater(1.0, self._expire)

    def stop(self) -> None:
        """
        Submit what was read, and stop the timers: called once the socket is
        closed.  Incomplete chunked messages are dropped (counted as expired).
        """
        self.flush()
        for call in (self._expiryCall, self._restCall):
            if call is not None and call.active():
                call.cancel()
        self._expiryCall = self._restCall = None
        self.chunks.expire(float("inf"))

    # IPushProducer, for the PauseGate: stop reading the socket.

    def pauseProducing(self) -> None:
        # The transport is a udp.Port, an IReadDescriptor beside IUDPTransport.
        port: Any = self.transport
        if port is not None:
            port.stopReading()

    def resumeProducing(self) -> None:
        port: Any = self.transport
        if port is not None:
            port.startReading()

    def stopProducing(self) -> None:
        pass


#: The C module's reader (recvmmsg, up to 64 datagrams a call), where built:
#: about 0.5 us less reactor CPU per datagram than a recvfrom each (see
#: L{BatchReadingPort}).
_receiveDatagrams: Callable[[int, int, int], tuple[list[tuple[bytes, str]], int, int]] | None = getattr(
    speedups.module, "receiveDatagrams", None
)

#: What ends a read without an error: nothing more to read, a signal, and
#: (for an unconnected socket, as Twisted's port does) an ICMP refusal.
_READ_ENDS = frozenset((EAGAIN, EINTR, EWOULDBLOCK, ECONNREFUSED))


class BatchReadingPort(udp.Port):
    """
    Twisted's UDP port (what a POSIX reactor's C{listenUDP} makes) but for
    its read: the datagrams of one read (up to C{maxThroughput} bytes) go to
    the protocol's L{DatagramIngest.datagramsReceived} as one list of
    (datagram, sender's host), where Twisted's calls C{datagramReceived} and
    builds a tuple per datagram.  Listening only (not connected), as the
    UDP listener does.

    Where logsvc's C module is built it reads with C{recvmmsg}, up to 64
    datagrams a call (C{receiveDatagrams}), else one C{recvfrom} a
    datagram (L{_receiveEach}); the two give the same datagrams, hosts and
    end of read.
    """

    log = Logger()
    protocol: DatagramIngest

    def doRead(self) -> None:
        if _receiveDatagrams is not None and isinstance(self.socket, socket.socket):
            datagrams, read, ended = _receiveDatagrams(self.socket.fileno(), self.maxThroughput, self.maxPacketSize)
            failure = None if ended == 0 or ended in _READ_ENDS else OSError(ended, os.strerror(ended))
        else:
            datagrams, read, failure = self._receiveEach()
        limit = self.maxThroughput
        if datagrams:
            try:
                self.protocol.datagramsReceived(datagrams, read < limit)
            except Exception:
                # As Twisted's port does: the error is logged, the port reads on.
                self.log.failure("UDP datagrams not taken")
        if failure is not None:
            # As Twisted's port does (the reactor then closes the port),
            # once what was read is taken.
            raise failure

    def _receiveEach(self) -> tuple[list[tuple[bytes, str]], int, OSError | None]:
        """
        Read the socket one C{recvfrom} a datagram, as L{doRead} does
        without the C module's C{receiveDatagrams} (the reference it is
        tested against).

        @return: the datagrams with their senders' hosts, the bytes read,
            and the error that ended the read, unless it was one of
            L{_READ_ENDS} or C{maxThroughput} bytes were read.
        """
        recvfrom = self.socket.recvfrom
        size = self.maxPacketSize
        limit = self.maxThroughput
        datagrams: list[tuple[bytes, str]] = []
        append = datagrams.append
        read = 0
        try:
            while read < limit:
                data, addr = recvfrom(size)
                read += len(data)
                append((data, addr[0]))
        except OSError as e:
            if e.errno not in _READ_ENDS:
                return datagrams, read, e
        return datagrams, read, None


class UDPCollector:
    """
    Exports the UDP listener's own figures at C{GET /metrics}, read at scrape
    time.
    """

    def __init__(self, service: UDPListenerService) -> None:
        self.service = service

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        service = self.service
        yield CounterMetricFamily(
            "logsvc_udp_datagrams", "Datagrams read from the UDP socket.", value=service.protocol.received
        )
        yield GaugeMetricFamily(
            "logsvc_udp_receive_buffer_bytes",
            "The UDP socket's receive buffer as the kernel granted it (SO_RCVBUF).",
            value=service.receiveBufferGranted or 0,
        )
        drops = service.kernelDrops()
        if drops is not None:
            yield CounterMetricFamily(
                "logsvc_udp_kernel_drops",
                "Datagrams the kernel dropped because the UDP receive buffer was full.",
                value=drops,
            )
        yield GaugeMetricFamily(
            "logsvc_udp_pending_chunk_bytes",
            "Bytes held in incomplete chunked GELF messages.",
            value=service.protocol.chunks.pendingBytes,
        )

    def describe(self) -> list[Any]:
        return []


class UDPListenerService(Service):
    """
    Listens on a UDP port while running; the stop closes the socket and
    submits what was read (the pipeline, stopped after it, stores it).

    @ivar receiveBufferGranted: the C{SO_RCVBUF} the kernel reports once
        listening (Linux reports twice the size set, its bookkeeping
        included), or L{None} before.
    """

    log = Logger()

    def __init__(
        self,
        address: UDPAddress,
        protocol: DatagramIngest,
        *,
        reactor: Any,
        receiveBuffer: int = DEFAULT_RECEIVE_BUFFER,
        flowControllers: list[tuple[str, Any]] | None = None,
    ) -> None:
        """
        @param flowControllers: (reason, controller) pairs, each pausing
            reading for its reason (C{registerProducer}), as for TCP.
        """
        self.address = address
        self.protocol = protocol
        self.reactor = reactor
        self.receiveBuffer = receiveBuffer
        self.flowControllers = list(flowControllers or [])
        self.receiveBufferGranted: int | None = None
        self.port: Any = None
        protocol.sink.metrics.registry.register(UDPCollector(self))

    def privilegedStartService(self) -> None:
        """
        Bind the port (before privileges are dropped, as Twisted's listeners
        do).

        @raise CannotListenError: when it cannot.
        """
        Service.privilegedStartService(self)
        if self.port is not None:
            return
        if isinstance(self.reactor, PosixReactorBase):
            # What its listenUDP does, with the port that reads in batches.
            port = BatchReadingPort(
                self.address.port, self.protocol, self.address.interface, MAX_DATAGRAM, self.reactor
            )
            port.startListening()
            self.port = port
        else:
            self.port = self.reactor.listenUDP(
                self.address.port, self.protocol, interface=self.address.interface, maxPacketSize=MAX_DATAGRAM
            )

    def startService(self) -> None:
        self.privilegedStartService()
        self.receiveBufferGranted = self._setReceiveBuffer()
        for name, controller in self.flowControllers:
            controller.registerProducer(self.protocol.gate.producer(name))
        Service.startService(self)
        host = self.port.getHost()
        self.log.info(
            "UDP ingest on {host}:{port}; receive buffer {granted} bytes (asked {asked})",
            host=host.host,
            port=host.port,
            granted=self.receiveBufferGranted,
            asked=self.receiveBuffer,
        )
        if self.receiveBufferGranted is not None and self.receiveBufferGranted < self.receiveBuffer:
            self.log.warn(
                "UDP receive buffer capped at {granted} bytes: raise net.core.rmem_max to at least"
                " {asked} (sysctl -w net.core.rmem_max={asked}) so bursts are not dropped",
                granted=self.receiveBufferGranted,
                asked=self.receiveBuffer,
            )

    def _setReceiveBuffer(self) -> int | None:
        sock = getattr(self.port, "socket", None)
        if sock is None:
            return None
        for option in (_SO_RCVBUFFORCE, socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, self.receiveBuffer)
                break
            except OSError:
                continue
        granted: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        return granted

    def kernelDrops(self) -> int | None:
        """
        @return: the kernel's count of datagrams dropped for this socket, or
            L{None} when not listening or not known.
        """
        port = self.port
        if port is None or getattr(port, "socket", None) is None:
            return None
        return kernelDrops(port.fileno())

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        for name, controller in self.flowControllers:
            controller.unregisterProducer(self.protocol.gate.producer(name))
        port, self.port = self.port, None
        d: Deferred[None] = maybeDeferred(port.stopListening) if port is not None else succeed(None)
        return d.addCallback(lambda _: self.protocol.stop())
