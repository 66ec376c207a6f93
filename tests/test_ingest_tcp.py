"""
Tests for L{logsvc.ingest.tcp}: the line protocol over a StringTransport, with
a real L{IngestFactory}, L{Pipeline} and L{MemoryStore}.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from logsvc.ingest.tcp import (
    DEFAULT_MAX_LINE,
    HTTP_HINT,
    IngestFactory,
    IngestProtocol,
    LineFramer,
    isHTTPRequestLine,
    peerName,
)
from logsvc.pipeline import Pipeline
from logsvc.record import Record
from logsvc.store.base import StoreError
from logsvc.store.memory import MemoryStore
from tests.fakes import HeldStore

PEER = IPv4Address("TCP", "192.0.2.44", 51234)


class CountingStore(MemoryStore):
    """A MemoryStore that remembers the size of each append."""

    def __init__(self) -> None:
        super().__init__()
        self.appendSizes: list[int] = []

    def append(self, records: list[Record]) -> Deferred[int]:
        self.appendSizes.append(len(records))
        return super().append(records)


class TCPTestCase(SynchronousTestCase):
    maxLine = DEFAULT_MAX_LINE

    def setUp(self) -> None:
        self.store = CountingStore()
        self.pipeline = Pipeline(self.store, reactor=Clock(), delay=0)
        self.factory = IngestFactory(self.pipeline, maxLineLength=self.maxLine)

    def connect(self, peer: Any = PEER) -> tuple[IngestProtocol, StringTransport]:
        protocol = self.factory.buildProtocol(peer)
        assert isinstance(protocol, IngestProtocol)
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        return protocol, transport

    def messages(self) -> list[str]:
        return [row[6] for row in self.store.rows]

    def rejected(self, reason: str) -> float:
        value = self.factory.metrics.registry.get_sample_value(
            "logsvc_records_rejected_total", {"transport": "tcp", "reason": reason}
        )
        return value or 0.0

    def accepted(self) -> float:
        value = self.factory.metrics.registry.get_sample_value(
            "logsvc_records_accepted_total", {"transport": "tcp"}
        )
        return value or 0.0


class FramingTests(TCPTestCase):
    def test_lines(self) -> None:
        """Each LF-terminated line is a record, sourced from the peer's host."""
        protocol, _ = self.connect()
        protocol.dataReceived(b"first\nsecond\n")
        self.assertEqual(self.messages(), ["first", "second"])
        self.assertEqual({row[4] for row in self.store.rows}, {"192.0.2.44"})
        self.assertEqual(self.accepted(), 2)

    def test_byteByByte(self) -> None:
        """A line arriving one byte per read is one record, delivered when its LF arrives."""
        protocol, _ = self.connect()
        data = b'plain words\n{"message": "json", "level": "error"}\r\n'
        for i in range(len(data) - 1):
            protocol.dataReceived(data[i : i + 1])
        self.assertEqual(self.messages(), ["plain words"])
        protocol.dataReceived(data[-1:])
        self.assertEqual(self.messages(), ["plain words", "json"])
        self.assertEqual(self.store.rows[1][3], 3)

    def test_splitReads(self) -> None:
        """Lines split across reads at arbitrary places are reassembled."""
        protocol, _ = self.connect()
        for chunk in (b"al", b"pha\nbe", b"ta\n", b"gam", b"ma\ndel", b"ta\n"):
            protocol.dataReceived(chunk)
        self.assertEqual(self.messages(), ["alpha", "beta", "gamma", "delta"])

    def test_crlf(self) -> None:
        """CRLF line endings give the same records as LF, even with the CR and LF in separate reads."""
        protocol, _ = self.connect()
        protocol.dataReceived(b"one\r\ntwo\r")
        protocol.dataReceived(b"\nthree\r\n")
        self.assertEqual(self.messages(), ["one", "two", "three"])

    def test_oneBatchPerRead(self) -> None:
        """Many lines in one read reach linesReceived once and the store as one append."""
        protocol, _ = self.connect()
        calls: list[list[bytes]] = []
        original = protocol.linesReceived

        def spy(lines: list[bytes]) -> None:
            calls.append(list(lines))
            original(lines)

        protocol.linesReceived = spy  # type: ignore[method-assign]
        protocol.dataReceived(b"".join(b"line %d\n" % i for i in range(500)))
        self.assertEqual(len(calls), 1)
        self.assertEqual(len(calls[0]), 500)
        self.assertEqual(self.store.appendSizes, [500])

    def test_blankLinesSkipped(self) -> None:
        """Empty and whitespace-only lines are not records."""
        protocol, _ = self.connect()
        protocol.dataReceived(b"\n\r\n  \na\n\n\nb\n")
        self.assertEqual(self.messages(), ["a", "b"])

    def test_invalidUTF8(self) -> None:
        """Invalid UTF-8 is kept with replacement characters."""
        protocol, _ = self.connect()
        protocol.dataReceived(b"bad \xff\xfe bytes\n")
        self.assertEqual(self.messages(), ["bad \ufffd\ufffd bytes"])

    def test_finalLineWithoutNewline(self) -> None:
        """A final line without LF is stored when the connection closes."""
        protocol, _ = self.connect()
        protocol.dataReceived(b"complete\nunterminated")
        self.assertEqual(self.messages(), ["complete"])
        protocol.connectionLost(Failure(ConnectionError()))
        self.assertEqual(self.messages(), ["complete", "unterminated"])

    def test_finalCROnly(self) -> None:
        """A final lone CR before close is not a record."""
        protocol, _ = self.connect()
        protocol.dataReceived(b"a\r\n\r")
        protocol.connectionLost(None)
        self.assertEqual(self.messages(), ["a"])

    def test_invalidJSONRecordCounted(self) -> None:
        """A JSON object that does not normalize is counted as invalid; its neighbours are stored."""
        protocol, _ = self.connect()
        protocol.dataReceived(b'a\n{"message": "x", "ts": "yesterday"}\nb\n')
        self.assertEqual(self.messages(), ["a", "b"])
        self.assertEqual(self.rejected("invalid"), 1)

    def test_unknownLevelKept(self) -> None:
        """A JSON line with a level that names none is stored as info, the level in fields, not dropped."""
        protocol, _ = self.connect()
        protocol.dataReceived(b'{"message": "x", "level": "verbose"}\n')
        self.assertEqual(self.messages(), ["x"])
        self.assertEqual(self.store.rows[0][3], 6)
        self.assertEqual(self.store.rows[0][7], '{"level":"verbose"}')
        self.assertEqual(self.rejected("invalid"), 0)

    def test_rejectionsLoggedBounded(self) -> None:
        """Every rejection is counted, but only the first few per connection are logged."""
        protocol, _ = self.connect()
        events: list[dict[str, Any]] = []
        self.factory.sink.log = Logger(observer=events.append)  # type: ignore[arg-type]
        protocol.dataReceived(b'{"ts": "yesterday"}\n' * 25)
        self.assertEqual(self.rejected("invalid"), 25)
        self.assertEqual(len(events), protocol.maxLoggedRejections)
        self.assertEqual(events[0]["peer"], "192.0.2.44")

    def test_gelfOnMainPort(self) -> None:
        """GELF JSON objects, NUL- or LF-terminated, are read as GELF on the line port."""
        protocol, _ = self.connect()
        protocol.dataReceived(b'{"version": "1.1", "host": "h", "short_message": "lf", "level": 4}\n')
        other, _ = self.connect()
        other.dataReceived(b'{"version": "1.1", "host": "h", "short_message": "nul"}\x00')
        other.dataReceived(b'{"version": "1.1", "host": "h", "short_message": "next", "_app": "a"}\x00')
        self.assertEqual(
            [(row[3], row[4], row[5], row[6]) for row in self.store.rows],
            [(4, "h", "", "lf"), (6, "h", "", "nul"), (6, "h", "a", "next")],
        )

    def test_unixPeer(self) -> None:
        """A connection over a UNIX socket has the source "unix"."""
        protocol, _ = self.connect(UNIXAddress(b"/tmp/logsvc.sock"))
        protocol.dataReceived(b"x\n")
        self.assertEqual(self.store.rows[0][4], "unix")

    def test_peerName(self) -> None:
        """peerName gives the host of IP addresses, "unix" and "unknown" otherwise."""
        self.assertEqual(peerName(PEER), "192.0.2.44")
        self.assertEqual(peerName(UNIXAddress(None)), "unix")
        self.assertEqual(peerName(None), "unknown")


class HTTPOnIngestPortTests(TCPTestCase):
    """
    An HTTP client pointed at a TCP ingest port gets a one-line hint.
    """

    def test_requestAnsweredWithHint(self) -> None:
        """
        A connection whose first line is an HTTP request line is answered
        with the hint and closed; none of its lines is stored, and it is
        counted as refused.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(
            b"GET /logs?level=error HTTP/1.1\r\nHost: 127.0.0.1:5140\r\nAccept: */*\r\n\r\n"
        )
        self.assertEqual(transport.value(), HTTP_HINT)
        self.assertEqual(transport.value().count(b"\n"), 1)
        self.assertTrue(transport.disconnecting)
        protocol.dataReceived(b"more after the hint\n")
        protocol.connectionLost(Failure(Exception("closed")))
        self.assertEqual(self.messages(), [])
        self.assertEqual(self.rejected("http_request"), 1)

    def test_requestLineSplitAcrossReads(self) -> None:
        """
        The request line is recognised however the reads split it.
        """
        protocol, transport = self.connect()
        for byte in b"POST /logs HTTP/1.0\r\n":
            protocol.dataReceived(bytes([byte]))
        self.assertEqual(transport.value(), HTTP_HINT)
        self.assertEqual(self.messages(), [])

    def test_onlyTheFirstLine(self) -> None:
        """
        A log line that looks like a request line after the first line, or a
        first line that only mentions HTTP, is a record like any other.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"GET / HTTP/1.1 took 3 ms\nGET /x HTTP/1.1\n")
        self.assertEqual(self.messages(), ["GET / HTTP/1.1 took 3 ms", "GET /x HTTP/1.1"])
        self.assertEqual(transport.value(), b"")

    def test_recognised(self) -> None:
        """
        isHTTPRequestLine knows HTTP/1.x request lines and nothing else.
        """
        for line in (b"GET / HTTP/1.1", b"HEAD /health HTTP/1.0\r", b"OPTIONS * HTTP/1.1"):
            self.assertTrue(isHTTPRequestLine(line), line)
        for line in (b"get / HTTP/1.1", b"GET / HTTP/2", b"GET /", b"<13>GET / HTTP/1.1", b'{"m": 1}'):
            self.assertFalse(isHTTPRequestLine(line), line)


class LineLimitTests(TCPTestCase):
    maxLine = 16

    def test_oversizeRejectedAndCounted(self) -> None:
        """A line over max-line is rejected and counted, and the lines after it are still taken."""
        protocol, transport = self.connect()
        protocol.dataReceived(b"before\n" + b"x" * 17 + b"\nafter\n")
        self.assertEqual(self.messages(), ["before", "after"])
        self.assertEqual(self.rejected("too_long"), 1)
        self.assertFalse(transport.disconnecting)

    def test_oversizeAcrossReads(self) -> None:
        """An oversize line spread over several reads is rejected once, and the next line taken."""
        protocol, _ = self.connect()
        protocol.dataReceived(b"ok\n" + b"y" * 10)
        protocol.dataReceived(b"y" * 10)
        protocol.dataReceived(b"y" * 30)
        self.assertEqual(self.rejected("too_long"), 0)
        protocol.dataReceived(b"yy\nnext\n")
        self.assertEqual(self.messages(), ["ok", "next"])
        self.assertEqual(self.rejected("too_long"), 1)

    def test_oversizeByteByByte(self) -> None:
        """An oversize line arriving byte by byte is rejected once and nothing of it is stored."""
        protocol, _ = self.connect()
        for byte in b"z" * 40 + b"\nnext\n":
            protocol.dataReceived(bytes([byte]))
        self.assertEqual(self.messages(), ["next"])
        self.assertEqual(self.rejected("too_long"), 1)

    def test_exactLimit(self) -> None:
        """A line of exactly max-line bytes is taken, with LF or CRLF, whole or byte by byte."""
        line = b"e" * 16
        for data in (line + b"\n", line + b"\r\n"):
            protocol, _ = self.connect()
            protocol.dataReceived(data)
            protocol, _ = self.connect()
            for byte in data:
                protocol.dataReceived(bytes([byte]))
        self.assertEqual(self.messages(), ["e" * 16] * 4)
        self.assertEqual(self.rejected("too_long"), 0)

    def test_oneOverLimit(self) -> None:
        """A line of max-line + 1 bytes is rejected, with LF or CRLF, whole or byte by byte."""
        line = b"o" * 17
        for data in (line + b"\n", line + b"\r\n"):
            protocol, _ = self.connect()
            protocol.dataReceived(data)
            protocol, _ = self.connect()
            for byte in data:
                protocol.dataReceived(bytes([byte]))
        self.assertEqual(self.messages(), [])
        self.assertEqual(self.rejected("too_long"), 4)

    def test_oversizeFinalLine(self) -> None:
        """An oversize final line without LF is rejected and counted at close."""
        protocol, _ = self.connect()
        protocol.dataReceived(b"w" * 40)
        protocol.connectionLost(None)
        self.assertEqual(self.messages(), [])
        self.assertEqual(self.rejected("too_long"), 1)

    def test_manyOversize(self) -> None:
        """Several oversize lines in one read are each counted, good lines between them kept."""
        protocol, _ = self.connect()
        protocol.dataReceived(b"a\n" + b"q" * 20 + b"\nb\n" + b"r" * 20 + b"\nc\n")
        self.assertEqual(self.messages(), ["a", "b", "c"])
        self.assertEqual(self.rejected("too_long"), 2)


class BackPressureTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = HeldStore()
        self.pipeline = Pipeline(self.store, reactor=Clock(), delay=0, maxPending=10)
        self.factory = IngestFactory(self.pipeline)

    def connect(self) -> tuple[IngestProtocol, StringTransport]:
        protocol = self.factory.buildProtocol(PEER)
        assert isinstance(protocol, IngestProtocol)
        transport = StringTransport(peerAddress=PEER)
        protocol.makeConnection(transport)
        return protocol, transport

    def test_pauseAndResume(self) -> None:
        """A full pipeline pauses reading of every connection; draining resumes them."""
        first, firstTransport = self.connect()
        _, secondTransport = self.connect()
        first.dataReceived(b"".join(b"%d\n" % i for i in range(9)))
        self.assertEqual(firstTransport.producerState, "producing")
        first.dataReceived(b"9\n")
        self.assertEqual(firstTransport.producerState, "paused")
        self.assertEqual(secondTransport.producerState, "paused")
        self.store.release()
        self.assertEqual(firstTransport.producerState, "producing")
        self.assertEqual(secondTransport.producerState, "producing")
        self.assertEqual(len(self.store.rows), 10)

    def test_newConnectionWhilePaused(self) -> None:
        """A connection opened while the pipeline is full starts paused."""
        first, _ = self.connect()
        first.dataReceived(b"x\n" * 10)
        _, late = self.connect()
        self.assertEqual(late.producerState, "paused")

    def test_closedConnectionUnregistered(self) -> None:
        """A closed connection's transport is no longer paused by the pipeline."""
        first, _ = self.connect()
        second, secondTransport = self.connect()
        second.connectionLost(None)
        first.dataReceived(b"x\n" * 10)
        self.assertEqual(secondTransport.producerState, "producing")


class StoreFailureTests(SynchronousTestCase):
    def test_storeFailureCountedAndLogged(self) -> None:
        """A store failure is counted and logged, and the connection goes on taking lines."""
        store = HeldStore()
        factory = IngestFactory(Pipeline(store, reactor=Clock(), delay=0))
        protocol = factory.buildProtocol(PEER)
        assert isinstance(protocol, IngestProtocol)
        transport = StringTransport(peerAddress=PEER)
        protocol.makeConnection(transport)
        protocol.dataReceived(b"a\nb\n")
        ((_, d),) = store.held
        store.held = []
        d.errback(StoreError("disk full"))
        registry = factory.metrics.registry
        rejected = registry.get_sample_value(
            "logsvc_records_rejected_total", {"transport": "tcp", "reason": "store"}
        )
        self.assertEqual(rejected, 2)
        self.assertEqual(len(self.flushLoggedErrors(StoreError)), 1)
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"c\n")
        store.release()
        self.assertEqual([row[6] for row in store.rows], ["c"])


class DrainTests(TCPTestCase):
    def test_connectionsTracked(self) -> None:
        """Open connections are tracked and counted, and forgotten once closed."""
        protocol, _ = self.connect()
        gauge = "logsvc_tcp_connections"
        self.assertEqual(self.factory.connections, {protocol})
        self.assertEqual(self.factory.metrics.registry.get_sample_value(gauge), 1)
        protocol.connectionLost(None)
        self.assertEqual(self.factory.connections, set())
        self.assertEqual(self.factory.metrics.registry.get_sample_value(gauge), 0)

    def test_noConnections(self) -> None:
        """drain() with no open connection fires at once."""
        fired: list[object] = []
        self.factory.drain(5, Clock()).addCallback(fired.append)
        self.assertEqual(len(fired), 1)

    def test_sendersClose(self) -> None:
        """drain() fires once every sender has closed, before the timeout, and cancels its timer."""
        clock = Clock()
        first, _ = self.connect()
        second, _ = self.connect()
        fired: list[object] = []
        self.factory.drain(5, clock).addCallback(fired.append)
        first.dataReceived(b"late line\n")
        first.connectionLost(None)
        self.assertEqual(fired, [])
        second.dataReceived(b"last words")
        second.connectionLost(None)
        self.assertEqual(len(fired), 1)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(self.messages(), ["late line", "last words"])

    def test_timeoutClosesStragglers(self) -> None:
        """After the timeout, drain() closes the connections still open, and fires once they are gone."""
        clock = Clock()
        polite, politeTransport = self.connect()
        straggler, stragglerTransport = self.connect()
        fired: list[object] = []
        self.factory.drain(5, clock).addCallback(fired.append)
        polite.connectionLost(None)
        clock.advance(4.9)
        self.assertFalse(stragglerTransport.disconnecting)
        clock.advance(0.1)
        self.assertTrue(stragglerTransport.disconnecting)
        self.assertFalse(politeTransport.disconnecting)
        self.assertEqual(fired, [])
        straggler.dataReceived(b"buffered\npartial")
        straggler.connectionLost(None)
        self.assertEqual(len(fired), 1)
        self.assertEqual(self.messages(), ["buffered", "partial"])


class EventFramer(LineFramer):
    """A framer that records framed lines and oversize reports, in order."""

    def __init__(self, maxLineLength: int) -> None:
        self.maxLineLength = maxLineLength
        self.events: list[tuple[str, object]] = []

    def linesReceived(self, lines: list[bytes]) -> None:
        self.events.extend(("line", line) for line in lines)

    def lineLengthExceeded(self, length: int) -> None:
        self.events.append(("long", length))


_text = st.binary(max_size=24).map(lambda b: b.replace(b"\n", b"").replace(b"\x00", b""))
#: Bytes that may follow an octet-counted frame without making its length a lie.
_FOLLOWERS = b"0123456789<{\r\n"
_lines = st.one_of(
    _text.map(lambda t: t + b"\n"),
    _text.map(lambda t: t + b"\r\n"),
    _text.map(lambda t: b"<13>" + t + b"\n"),
)
#: Frame contents: any bytes but NUL, LFs included.
_content = st.binary(max_size=24).map(lambda b: b.replace(b"\x00", b""))
_frames = _content.map(lambda m: b"%d <13>%s" % (len(m) + 4, m))
#: A length longer than what follows, at the end of the stream: framed as
#: lines once the sender closes.
_truncatedFrames = st.tuples(st.integers(1, 40), _content).map(
    lambda lm: b"%d <13>%s" % (len(lm[1]) + 4 + lm[0], lm[1])
)


@st.composite
def streams(draw: Any) -> bytes:
    """
    A stream of lines and octet-counted frames, without NUL (a NUL switches
    the connection to NUL framing from the read it arrives in on, so a stream
    mixing both frames by read boundaries).  A frame is followed by what
    can start a record: otherwise its length counts as a lie, which the
    framer can only see when the next byte came in the same read (a known
    limit: a frame that ends a read is taken as it is).
    """
    pieces = draw(
        st.lists(
            st.one_of(_lines.map(lambda p: (False, p)), _frames.map(lambda p: (True, p))),
            max_size=12,
        )
    )
    data = b""
    for i, (isFrame, piece) in enumerate(pieces):
        data += piece
        following = pieces[i + 1][1][:1] if i + 1 < len(pieces) else b""
        if isFrame and following and following not in _FOLLOWERS:
            data += b"\n"
    if draw(st.booleans()):
        data += draw(_truncatedFrames)
    return data


#: Records as Python's SysLogHandler sends them: NUL-terminated, LFs inside.
_nulStreams = st.lists(_content.map(lambda b: b + b"\x00"), min_size=1, max_size=12).map(b"".join)


def frameAll(data: bytes, cuts: list[int], maxLineLength: int) -> list[tuple[str, list[object]]]:
    framer = EventFramer(maxLineLength)
    framer.makeConnection(StringTransport())
    start = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        if cut > start:
            framer.dataReceived(data[start:cut])
            start = cut
    framer.connectionLost(None)
    # Within one read, rejections are reported before the batch of lines, so
    # only the order of lines is comparable across read boundaries; the length
    # a rejection reports is for the log (LFs a NUL framer strips count or not).
    lines = [value for kind, value in framer.events if kind == "line"]
    longs = [value for kind, value in framer.events if kind == "long"]
    return [("lines", lines), ("rejected", [len(longs)])]


class SplitInvarianceTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        data=streams(),
        cuts=st.lists(st.integers(0, 400), max_size=12),
        maxLineLength=st.integers(8, 40),
    )
    def test_readBoundariesDoNotMatter(
        self, data: bytes, cuts: list[int], maxLineLength: int
    ) -> None:
        """However a stream of lines and frames is split into reads, it frames the same."""
        whole = frameAll(data, [], maxLineLength)
        split = frameAll(data, [c for c in cuts if c < len(data)], maxLineLength)
        self.assertEqual(split, whole)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=streams(), maxLineLength=st.integers(8, 40))
    def test_byteByByte(self, data: bytes, maxLineLength: int) -> None:
        """A stream of lines and frames read one byte at a time frames as when read whole."""
        self.assertEqual(
            frameAll(data, list(range(len(data))), maxLineLength), frameAll(data, [], maxLineLength)
        )

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        data=_nulStreams,
        cuts=st.lists(st.integers(0, 400), max_size=12),
        maxLineLength=st.integers(8, 40),
    )
    def test_nulReadBoundaries(self, data: bytes, cuts: list[int], maxLineLength: int) -> None:
        """Once its first NUL has arrived, a NUL-framed stream frames the same however it is split."""
        # Before the first NUL the connection is still LF-framed, by design.
        firstRead = data.index(b"\x00") + 1
        whole = frameAll(data, [], maxLineLength)
        split = frameAll(data, [c for c in cuts if firstRead <= c < len(data)], maxLineLength)
        byteByByte = frameAll(data, list(range(firstRead, len(data))), maxLineLength)
        self.assertEqual((split, byteByByte), (whole, whole))
