# -*- test-case-name: tests.test_ingest_tcp,tests.test_ingest_acks,tests.test_ingest_gelf -*-
"""
The one TCP ingest protocol: L{IngestProtocol} frames a connection's bytes
(L{logsvc.ingest.framing.LineFramer}), admits its first line
(L{logsvc.ingest.authline.AuthLine}), parses each batch with its factory's
parser, hands the records to its factory's L{IngestSink}, and, on an
acknowledged listener, acknowledges settled lines
(L{logsvc.ingest.acks.LineAcks}).  The listeners differ only in their
factory's parameters:

  - C{--tcp}: JSON, syslog and plain lines (L{logsvc.formats.detect.parseLines});
  - C{--gelf}: NUL-terminated GELF frames (L{logsvc.formats.gelf.parseGelfFrames});
  - C{--tcp-acked}: lines, acknowledged with C{OK <n>}.

A connection whose first line is an HTTP request line (C{GET /logs HTTP/1.1}:
an HTTP client pointed at the ingest port by mistake) is answered with a
one-line hint (L{HTTP_HINT}) and closed; nothing of it is stored.

Each sender (its token, else its peer address) may have at most
C{connectionShare} undurable records in the pipeline on one listener, however
many connections it opens; past that only its connections stop being read
(L{SenderShares}).  L{IngestFactory} holds what the connections share and
tracks them so a stop can drain them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from logsvc.auth import INGEST, Tokens
from logsvc.formats.detect import parseLines
from logsvc.ingest.acks import LineAcks
from logsvc.ingest.authline import AuthLine
from logsvc.ingest.framing import DEFAULT_MAX_LINE, LineFramer
from logsvc.ingest.sink import FrameParser, IngestSink, LogQuota, peerName
from logsvc.limits import PauseGate, establish
from logsvc.pipeline import Pipeline
from logsvc.times import nowMicros

__all__ = ["DEFAULT_MAX_LINE", "IngestFactory", "IngestProtocol", "LineFramer", "defaultConnectionShare", "peerName"]


#: An HTTP/1.x request line, as an HTTP client's first line.
_HTTP_REQUEST_LINE = re.compile(rb"^[A-Z]{3,7} \S+ HTTP/1\.[01]$")
#: The answer to an HTTP request on a TCP ingest port; one line, not HTTP, so
#: an HTTP client fails at once (the logsvc CLI quotes it) instead of waiting.
HTTP_HINT = (
    b"logsvc: this is a TCP ingest port (one log record per line), not HTTP; "
    b"the HTTP API is on the --http endpoint (default tcp:8080)\n"
)


def isHTTPRequestLine(line: bytes) -> bool:
    """
    @return: whether C{line} (without its line end) is an HTTP/1.x request
        line such as C{GET /logs?level=error HTTP/1.1}.
    """
    return _HTTP_REQUEST_LINE.match(line.rstrip(b"\r")) is not None


class IngestProtocol(LineFramer):
    """
    One TCP ingest connection; see the module docstring.  Rejected lines are
    counted and logged (at most L{maxLoggedRejections} log lines per
    connection); an unauthorized connection is answered C{ERR unauthorized}
    and closed.

    @ivar acks: the connection's L{LineAcks} on an acknowledged listener,
        else L{None}.
    """

    log = Logger()
    factory: IngestFactory
    gate: PauseGate
    #: At most this many rejections are logged per connection; all are counted.
    maxLoggedRejections = 10
    acks: LineAcks | None = None
    _refused = False
    #: Oversize lines of the current read not yet counted in an ack entry.
    _exceeded = 0
    _peerRead = False
    #: Ends the note that this connection holds its token (L{Tokens.hold}).
    _tokenHeld: Callable[[], None] | None = None

    def connectionMade(self) -> None:
        factory = self.factory
        self.peer = peerName(self.transport.getPeer())
        self.maxLineLength = factory.maxLineLength
        self.sink = factory.sink
        self.parse = factory.parser
        self.quota = LogQuota(self.maxLoggedRejections)
        self.auth = AuthLine(factory.tokens)
        factory.connectionOpened(self)
        if factory.acknowledge:
            self.acks = LineAcks(self.transport, self.gate, factory.clock, self._closeNow)

    def dataReceived(self, data: bytes) -> None:
        if not self._peerRead:
            # Behind the PROXY protocol (a haproxy: endpoint) the sender's
            # address is known only once its header has been read, which
            # comes before the first data.
            self._peerRead = True
            self.peer = peerName(self.transport.getPeer())
        if self.acks is None:
            LineFramer.dataReceived(self, data)
            return
        # Oversize lines are reported before the read's other lines; count
        # them with those lines so an ack never runs ahead of a pending one.
        self._exceeded = 0
        LineFramer.dataReceived(self, data)
        if self._exceeded:
            exceeded, self._exceeded = self._exceeded, 0
            self.acks.settleNow(exceeded)

    def linesReceived(self, lines: list[bytes]) -> None:
        if self._refused:
            return
        auth = self.auth
        if not auth.passed:
            if isHTTPRequestLine(lines[0]):
                self._refuseHTTP()
                return
            admitted = auth.admit(lines)
            if admitted is None:
                self._refuseAuth()
                return
            self._tokenHeld = auth.tokens.hold(auth.token, INGEST, self._revoked)
            if auth.required:
                establish(self.transport)
            if not admitted:
                return
            lines = admitted
        count, d = self.sink.take(lines, self.parse, peer=self.peer, received=nowMicros(), quota=self.quota)
        acks = self.acks
        if acks is None or acks.stopping:
            # Read after a stop began (the final line at close): stored,
            # never acked.
            if d is not None:
                self._held(count, d).addErrback(self._notStored)
            return
        entry = acks.expect(len(lines) + self._exceeded)
        self._exceeded = 0
        if d is None:
            acks.settle(entry)
        else:
            self._held(count, d).addCallbacks(lambda _: acks.settle(entry), self._storeFailed)

    def lineLengthExceeded(self, length: int) -> None:
        if self._refused:
            return
        if not self.auth.passed and self.auth.required:
            self._refuseAuth()
            return
        self.sink.reject(
            [(b"", f"line of {length} bytes exceeds max-line {self.maxLineLength}")],
            peer=self.peer,
            quota=self.quota,
            reason="too_long",
        )
        if self.acks is not None:
            self._exceeded += 1

    def _held(self, count: int, d: Deferred[int]) -> Deferred[int]:
        """
        Hold this connection's sender to its share of the pipeline
        (L{SenderShares}): one flooding sender then delays others by at most
        its share, not the whole queue, however many connections it opens.
        """
        if not self.factory.connectionShare:
            return d
        return self.factory.shares.hold(self.senderKey(), self, count, d)

    def senderKey(self) -> str:
        """
        @return: who sends on this connection, for its share: its token when
            it authenticated with one, else its peer's address.
        """
        token = self.auth.token
        return f"peer:{self.peer}" if token is None else f"token:{token.hex()}"

    def _notStored(self, failure: Failure) -> None:
        # Counted by the sink; the sender is not told (it gets no acks).
        self.log.failure("records from {peer} not stored", failure, peer=self.peer)

    def _storeFailed(self, failure: Failure) -> None:
        self.log.error("store failed; closing {peer} so it resends", peer=self.peer)
        assert self.acks is not None
        self.acks.failed()

    def _refuseAuth(self) -> None:
        self._refuse("unauthorized", "refused TCP connection from {peer}: no valid AUTH line", b"ERR unauthorized\n")

    def _revoked(self) -> None:
        # The token file no longer lets this sender in (SIGHUP): nothing it
        # sends from now on is stored or acknowledged.
        self._refuse("revoked", "closing TCP connection from {peer}: its token was revoked", b"ERR token revoked\n")

    def _refuseHTTP(self) -> None:
        self._refuse(
            "http_request", "HTTP request on the TCP ingest port from {peer}; answered with a hint", HTTP_HINT
        )

    def _refuse(self, reason: str, logFormat: str, answer: bytes) -> None:
        """
        Store nothing more from this connection: count it as refused for
        C{reason}, log C{logFormat}, write C{answer} and close.
        """
        self._refused = True
        self.sink.refuse(reason)
        self.log.warn(logFormat, peer=self.peer)
        self.transport.write(answer)
        self._closeNow()

    def _closeNow(self) -> None:
        if self.acks is not None:
            self.acks.unregister()
        self.transport.loseConnection()

    def stopReading(self) -> None:
        """
        For a graceful stop: on an acknowledged connection, read no more, ack
        what is settled once durable, then close (L{LineAcks.stop}).  Other
        connections are read until their senders close.
        """
        if self.acks is not None:
            self.acks.stop()

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._tokenHeld is not None:
            self._tokenHeld()
        if self.acks is not None:
            self.acks.lost()
            # An unterminated tail is a line cut by a broken connection or by
            # our stop, never a finished record: it is not stored (it cannot
            # be acked), and the sender resends it whole.
            self._buffer = b""
            self._discarding = False
            self._needed = 0
        LineFramer.connectionLost(self, reason)
        self.factory.connectionClosed(self)


class SenderShares:
    """
    The undurable records of each sender on one listener, so that a sender
    (a token, else a peer address; L{IngestProtocol.senderKey}) past its
    share stops being read on all of its connections until half of its
    records are durable.  Reactor thread only.
    """

    def __init__(self, share: Callable[[], int]) -> None:
        """
        @param share: the most undurable records one sender may have.
        """
        self._share = share
        self._inflight: dict[str, int] = {}
        self._connections: dict[str, set[IngestProtocol]] = {}

    def inflight(self, sender: str) -> int:
        """
        @return: C{sender}'s records submitted and not yet durable.
        """
        return self._inflight.get(sender, 0)

    def hold(self, sender: str, protocol: IngestProtocol, count: int, d: Deferred[int]) -> Deferred[int]:
        """
        Count C{count} records of C{sender}, submitted on C{protocol}, until
        C{d} fires; pause C{sender}'s connections while it is past its share.

        @return: C{d}, its result unchanged.
        """
        share = self._share()
        connections = self._connections.setdefault(sender, set())
        connections.add(protocol)
        inflight = self._inflight[sender] = self._inflight.get(sender, 0) + count
        if inflight >= share:
            for connection in connections:
                connection.gate.pause("share")

        def release(result: Any) -> Any:
            left = self._inflight[sender] - count
            if left:
                self._inflight[sender] = left
            else:
                del self._inflight[sender]
            connections = self._connections.get(sender)
            if connections is not None:
                if left <= share // 2:
                    for connection in connections:
                        connection.gate.resume("share")
                if not connections and not left:
                    del self._connections[sender]
            return result

        return d.addBoth(release)

    def forget(self, protocol: IngestProtocol) -> None:
        """
        C{protocol} closed: it is no longer paused or resumed for its sender.
        """
        sender = protocol.senderKey()
        connections = self._connections.get(sender)
        if connections is not None:
            connections.discard(protocol)
            if not connections and sender not in self._inflight:
                del self._connections[sender]


def defaultConnectionShare(pipeline: Pipeline) -> int:
    """
    @return: the records one sender may have undurable in C{pipeline} by
        default: a quarter of its C{maxPending}.
    """
    return max(1, pipeline.maxPending // 4)


class IngestFactory(Factory):
    """
    One TCP ingest listener: its parameters (parser, tokens, acks, limits),
    its L{IngestSink}, and the set of open connections (for draining at
    stop).
    """

    protocol = IngestProtocol  # type: ignore[assignment]

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        parser: FrameParser = parseLines,
        transport: str = "tcp",
        maxLineLength: int = DEFAULT_MAX_LINE,
        tokens: Tokens | None = None,
        acknowledge: bool = False,
        clock: Any = None,
        connectionShare: int = 0,
    ) -> None:
        """
        @param parser: makes records of each batch of frames.
        @param transport: the C{transport} label of this listener's metrics.
        @param tokens: the tokens the first line must hold (when enabled).
        @param acknowledge: write C{OK <n>} acknowledgements.
        @param clock: schedules acknowledgements (default: the reactor).
        @param connectionShare: most undurable records one sender (a token,
            else a peer address) may have in the pipeline before its
            connections stop being read (0: no share; see
            L{defaultConnectionShare}).
        """
        self.pipeline = pipeline
        self.sink = IngestSink(pipeline, transport)
        self.metrics = pipeline.metrics
        self.parser = parser
        self.maxLineLength = maxLineLength
        self.transportName = transport
        self.tokens = tokens if tokens is not None else Tokens()
        self.acknowledge = acknowledge
        if clock is None and acknowledge:
            from twisted.internet import reactor as clock
        self.clock = clock
        self.connectionShare = connectionShare
        self.shares = SenderShares(lambda: self.connectionShare)
        self.connections: set[IngestProtocol] = set()
        #: (reason, controller) pairs: each controller pauses and resumes the
        #: connections registered with it (C{registerProducer}).
        self.flowControllers: list[tuple[str, Any]] = [("pipeline", pipeline)]
        self._closed: dict[IngestProtocol, Deferred[None]] = {}

    def connectionOpened(self, protocol: IngestProtocol) -> None:
        self.connections.add(protocol)
        self.metrics.connections.inc()
        # Each flow controller (the pipeline, low disk, ...) pauses reading for
        # its own reason; the gate resumes only when none holds it.
        protocol.gate = PauseGate(protocol.transport)
        for name, controller in self.flowControllers:
            controller.registerProducer(protocol.gate.producer(name))

    def connectionClosed(self, protocol: IngestProtocol) -> None:
        self.connections.discard(protocol)
        self.shares.forget(protocol)
        self.metrics.connections.dec()
        for name, controller in self.flowControllers:
            controller.unregisterProducer(protocol.gate.producer(name))
        waiter = self._closed.pop(protocol, None)
        if waiter is not None:
            waiter.callback(None)

    def drain(self, timeout: float, clock: Any) -> Deferred[Any]:
        """
        Let open connections finish: keep reading them until their senders
        close (acknowledged ones stop reading, ack what is durable and close:
        L{IngestProtocol.stopReading}), and after C{timeout} seconds close
        the rest.

        @return: a Deferred firing once every connection is closed.
        """
        if not self.connections:
            return succeed(None)
        waits = []
        for protocol in list(self.connections):
            d: Deferred[None] = Deferred()
            self._closed[protocol] = d
            waits.append(d)

        def closeRest() -> None:
            for protocol in list(self.connections):
                protocol.transport.loseConnection()

        for protocol in list(self.connections):
            protocol.stopReading()
        timer = clock.callLater(timeout, closeRest)
        done = DeferredList(waits)

        def cancelTimer(result: object) -> object:
            if timer.active():
                timer.cancel()
            return result

        return done.addBoth(cancelTimer)
