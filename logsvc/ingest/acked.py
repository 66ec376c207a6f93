"""
TCP ingest with acknowledgements, and the first-line token for TCP.

On an acknowledged connection (C{--tcp-acked}) the server writes C{OK <n>\\n}
where C{n} counts the connection's lines now settled: every line up to the
C{n}th is either durable in the store or was rejected for good (invalid,
oversize; counted in C{logsvc_records_rejected}, since resending it would only
be rejected again).  Blank lines count too, so a sender maps C{n} to its own
lines without parsing anything.  Acks are cumulative and coalesced: at most one
write per store commit, never one per record.

A client that does not read its acks makes the transport's write buffer fill;
the transport then pauses us as its producer, and we stop reading the
connection (and stop writing acks; the newest count is written once it
drains).  So such a client costs at most the transport's buffer (64 KiB), and
the idle timeout drops it once nothing moves.

An unterminated last line when the connection ends is not stored: on an
acknowledged connection it can only be a line cut short, and the sender
resends it whole.

When a token file is configured, a TCP connection's first line must be
C{AUTH <token>} with an C{ingest}-scoped token; otherwise the server writes
C{ERR unauthorized} and closes.  The AUTH line is not counted in acks, and is
never stored, also when no tokens are configured.

Each connection may have at most C{connectionShare} undurable records in the
pipeline; past that only it stops being read (L{TokenLineMixin.submitShared}).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from logsvc.auth import INGEST, Tokens
from logsvc.formats.detect import parseLines
from logsvc.formats.gelf import parseGelfFrames
from logsvc.ingest.gelf import GelfFactory, GelfProtocol
from logsvc.ingest.tcp import IngestFactory, IngestProtocol
from logsvc.pipeline import Pipeline
from logsvc.record import Record, nowMicros

AUTH_PREFIX = b"AUTH "


class TokenLineMixin:
    """
    Requires the first line to be C{AUTH <ingest token>} when the factory's
    tokens are enabled; mixed in before L{IngestProtocol}.
    """

    factory: Any
    transport: Any
    _authenticated = False
    _refused = False

    def linesReceived(self, lines: list[bytes]) -> None:
        if self._refused:
            return
        if not self._authenticated:
            first, rest = lines[0], lines[1:]
            if first.startswith(AUTH_PREFIX) and b"\n" in first:
                # A framing that does not end records at LF (GELF's NUL):
                # the AUTH line still ends at its LF.
                first, following = first.split(b"\n", 1)
                rest = [following, *rest]
            isAuthLine = first.startswith(AUTH_PREFIX)
            if self.factory.tokens.enabled:
                token = first[len(AUTH_PREFIX) :].strip() if isAuthLine else None
                if not self.factory.tokens.check(token, INGEST):
                    self._refuseAuth()
                    return
                lines = rest
            elif isAuthLine and len(first.split()) == 2:
                # A sender configured with a token, talking to a server
                # without tokens: its token must not become a stored record.
                # ("AUTH failed for bob" has more words and stays a record.)
                lines = rest
            self._authenticated = True
            if not lines:
                return
        self.authenticatedLines(lines)

    def authenticatedLines(self, lines: list[bytes]) -> None:
        """
        Called with lines past the AUTH line (all lines without tokens).
        """
        raise NotImplementedError()

    #: How frames become records and rejections: JSON, syslog or text lines.
    parseFrames: Callable[[list[bytes], str, int], tuple[list[Record], list[tuple[bytes, str]]]] = staticmethod(
        parseLines
    )

    def storeSilently(self, lines: list[bytes]) -> None:
        """
        An L{authenticatedLines} for listeners that answer nothing: store
        what parses, count and log the rest.  A store failure has no one to
        be told of: it is counted (L{IngestFactory.submit}) and logged by the
        store.
        """
        records, rejected = self.parseFrames(lines, self.peer, nowMicros())  # type: ignore[attr-defined]
        if rejected:
            self._rejected(rejected)  # type: ignore[attr-defined]
        if records:
            self.submitShared(records).addErrback(lambda f: None)

    def lineLengthExceeded(self, length: int) -> None:
        if not self._authenticated and self.factory.tokens.enabled:
            self._refuseAuth()
            return
        super().lineLengthExceeded(length)  # type: ignore[misc]

    _inflight = 0

    def submitShared(self, records: list[Any]) -> Deferred[int]:
        """
        Submit C{records}, holding this connection to its share of the
        pipeline: past C{factory.connectionShare} undurable records of its
        own, reading pauses until half of them are durable.  One flooding
        sender then delays others by at most its share, not the whole queue.
        """
        d: Deferred[int] = self.factory.submit(records)
        count = len(records)
        share = self.factory.connectionShare
        self._inflight += count
        if share and self._inflight >= share:
            self.gate.pause("share")  # type: ignore[attr-defined]

        def release(result: Any) -> Any:
            self._inflight -= count
            if self._inflight <= share // 2:
                self.gate.resume("share")  # type: ignore[attr-defined]
            return result

        return d.addBoth(release)

    def _refuseAuth(self) -> None:
        self._refused = True
        self.factory.metrics.rejected.labels(self.factory.transportName, "unauthorized").inc()
        self.log.warn("refused TCP connection from {peer}: no valid AUTH line", peer=self.peer)  # type: ignore[attr-defined]
        self.transport.write(b"ERR unauthorized\n")
        self._closeNow()

    _producing = False

    def _closeNow(self) -> None:
        # A transport with a producer registered that it paused resumes the
        # producer, rather than closing, once its buffer drains: unregister.
        if self._producing:
            self._producing = False
            self.transport.unregisterProducer()
        self.transport.loseConnection()


class AuthIngestProtocol(TokenLineMixin, IngestProtocol):
    """
    Plain (silent) TCP ingest behind the first-line token.
    """

    authenticatedLines = TokenLineMixin.storeSilently


@implementer(IPushProducer)
class AckedIngestProtocol(TokenLineMixin, IngestProtocol):
    """
    TCP ingest that acknowledges settled lines with C{OK <n>}; see the module
    docstring.  It is its transport's producer, so a full write buffer pauses
    reading.

    @ivar settled: lines settled so far (the newest C{n}).
    @ivar acked: the C{n} last written.
    """

    factory: AckedIngestFactory

    def connectionMade(self) -> None:
        IngestProtocol.connectionMade(self)
        self.settled = 0
        self.acked = 0
        self._outstanding: deque[list[Any]] = deque()
        self._writable = True
        self._ackCall: Any = None
        self._stopping = False
        self.transport.registerProducer(self, True)
        self._producing = True

    # Counting

    def linesReceived(self, lines: list[bytes]) -> None:
        if self._stopping:
            # Read after the stop began (the final line at close): store it,
            # never ack it.
            if self._authenticated or not self.factory.tokens.enabled:
                IngestProtocol.linesReceived(self, lines)
            return
        TokenLineMixin.linesReceived(self, lines)

    def dataReceived(self, data: bytes) -> None:
        # Oversize lines are reported before the read's other lines; count
        # them with those lines so an ack never runs ahead of a pending one.
        self._exceeded = 0
        IngestProtocol.dataReceived(self, data)
        if self._exceeded:
            self._outstanding.append([self._exceeded, True])
            self._exceeded = 0
            self._advance()

    _exceeded = 0

    def authenticatedLines(self, lines: list[bytes]) -> None:
        records, rejected = parseLines(lines, self.peer, nowMicros())
        if rejected:
            self._rejected(rejected)
        entry = [len(lines) + self._exceeded, not records]
        self._exceeded = 0
        self._outstanding.append(entry)
        if records:
            d = self.submitShared(records)
            d.addCallbacks(self._stored, self._storeFailed, (entry,))
        else:
            self._advance()

    def lineLengthExceeded(self, length: int) -> None:
        TokenLineMixin.lineLengthExceeded(self, length)
        if self._authenticated or not self.factory.tokens.enabled:
            self._exceeded += 1

    def _stored(self, _: int, entry: list[Any]) -> None:
        entry[1] = True
        self._advance()

    def _storeFailed(self, failure: Failure) -> None:
        # Nothing of it is durable; never ack past it.  Closing makes the
        # sender resend everything unacknowledged on its next connection.
        self.log.error("store failed; closing {peer} so it resends", peer=self.peer)
        self._outstanding.clear()
        self._stopping = True
        self._finishStop()

    def _advance(self) -> None:
        outstanding = self._outstanding
        while outstanding and outstanding[0][1]:
            self.settled += outstanding.popleft()[0]
        if self.settled > self.acked and self._ackCall is None:
            self._ackCall = self.factory.clock.callLater(0, self._writeAck)
        if self._stopping and not outstanding:
            self._finishStop()

    def _writeAck(self) -> None:
        self._ackCall = None
        if not self._writable or self.settled <= self.acked or self.transport is None:
            return
        self.acked = self.settled
        self.transport.write(b"OK %d\n" % self.acked)

    # IPushProducer: the transport tells us when its write buffer is full.

    def pauseProducing(self) -> None:
        self._writable = False
        self.gate.pause("acks")

    def resumeProducing(self) -> None:
        self._writable = True
        self.gate.resume("acks")
        self._writeAck()

    def stopProducing(self) -> None:
        self._writable = False

    # Stopping

    def stopReading(self) -> None:
        """
        For a graceful stop: read no more, ack what is settled once the store
        has it, then close.  Unread bytes are unacknowledged, so the sender
        resends them to the next server.
        """
        if self._stopping:
            return
        self._stopping = True
        self.gate.pause("stopping")
        if not self._outstanding:
            self._finishStop()

    def _finishStop(self) -> None:
        if self._ackCall is not None and self._ackCall.active():
            self._ackCall.cancel()
        self._ackCall = None
        self._writable = True
        self._writeAck()
        self._closeNow()

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._ackCall is not None and self._ackCall.active():
            self._ackCall.cancel()
        self._ackCall = None
        # An unterminated tail is a line cut by a broken connection or by our
        # stop, never a finished record: it is not stored (it cannot be
        # acked), and the sender resends it whole.
        self._buffer = b""
        self._discarding = False
        self._needed = 0
        IngestProtocol.connectionLost(self, reason)


def tokensAndShare(
    pipeline: Pipeline, tokens: Tokens | None, connectionShare: int | None
) -> tuple[Tokens, int]:
    """
    What the token listeners' factories keep: their C{tokens} (none
    enabled by default) and each connection's share of C{pipeline} (by
    default a quarter of its C{maxPending}).
    """
    share = connectionShare if connectionShare is not None else max(1, pipeline.maxPending // 4)
    return (tokens if tokens is not None else Tokens()), share


class AuthIngestFactory(IngestFactory):
    """
    An L{IngestFactory} whose connections must start with an AUTH line while
    C{tokens} are enabled.
    """

    protocol = AuthIngestProtocol

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        tokens: Tokens | None = None,
        connectionShare: int | None = None,
        **kw: Any,
    ) -> None:
        """
        @param connectionShare: most undurable records one connection may
            have in the pipeline before it stops being read (default: a
            quarter of the pipeline's C{maxPending}).
        """
        super().__init__(pipeline, **kw)
        self.tokens, self.connectionShare = tokensAndShare(pipeline, tokens, connectionShare)


class AckedIngestFactory(AuthIngestFactory):
    """
    The factory of acknowledged TCP ingest (C{--tcp-acked}).
    """

    protocol = AckedIngestProtocol  # type: ignore[assignment]

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        clock: Any = None,
        tokens: Tokens | None = None,
        transport: str = "tcp-acked",
        **kw: Any,
    ) -> None:
        super().__init__(pipeline, tokens=tokens, transport=transport, **kw)
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock

    def drain(self, timeout: float, clock: Any) -> Deferred[Any]:
        """
        Stop reading every connection, ack what the store took, close; see
        L{AckedIngestProtocol.stopReading}.  Connections still open after
        C{timeout} seconds are closed.
        """
        d = super().drain(timeout, clock)
        for protocol in list(self.connections):
            protocol.stopReading()  # type: ignore[attr-defined]
        return d


class AuthGelfProtocol(TokenLineMixin, GelfProtocol):
    """
    GELF over TCP behind the first-line token, held to its pipeline share.
    """

    parseFrames = staticmethod(parseGelfFrames)
    authenticatedLines = TokenLineMixin.storeSilently


class AuthGelfFactory(GelfFactory):
    """
    The GELF TCP listener (C{--gelf}) with the same AUTH line and connection
    share as the line listeners.
    """

    protocol = AuthGelfProtocol  # type: ignore[assignment]

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        tokens: Tokens | None = None,
        connectionShare: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(pipeline, **kw)
        self.tokens, self.connectionShare = tokensAndShare(pipeline, tokens, connectionShare)
