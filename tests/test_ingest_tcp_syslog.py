"""
Tests for the syslog framings of L{logsvc.ingest.tcp}: NUL-terminated and
octet-counted records on the same connection as plain lines.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from logsvc.ingest.tcp import IngestFactory, LineFramer
from logsvc.metrics import Metrics
from logsvc.pipeline import Pipeline
from logsvc.store.memory import MemoryStore


class RecordingFramer(LineFramer):
    """
    A framer that remembers what it framed.
    """

    def __init__(self, maxLineLength: int = 100) -> None:
        self.maxLineLength = maxLineLength
        self.batches: list[list[bytes]] = []
        self.oversize: list[int] = []

    @property
    def lines(self) -> list[bytes]:
        return [line for batch in self.batches for line in batch]

    def linesReceived(self, lines: list[bytes]) -> None:
        self.batches.append(lines)

    def lineLengthExceeded(self, length: int) -> None:
        self.oversize.append(length)


def frame(message: bytes) -> bytes:
    return b"%d %s" % (len(message), message)


def feed(framer: RecordingFramer, data: bytes, step: int = 0) -> None:
    if step:
        for i in range(0, len(data), step):
            framer.dataReceived(data[i : i + step])
    else:
        framer.dataReceived(data)


class FramingTests(SynchronousTestCase):
    """
    L{LineFramer} tells LF, NUL and octet-counted records apart per record.
    """

    def test_nulKeepsNewlines(self) -> None:
        """
        Once a NUL framed a connection, LFs inside a record (a traceback) stay,
        LFs around records go, and a record split over reads comes out whole.
        """
        framer = RecordingFramer()
        feed(framer, b"<14>app: first\x00")
        feed(framer, b"<11>app: Traceback:\n  File x\x00\n<14>app: next", 4)
        framer.connectionLost(None)
        self.assertEqual(
            framer.lines, [b"<14>app: first", b"<11>app: Traceback:\n  File x", b"<14>app: next"]
        )

    def test_nulOversize(self) -> None:
        """
        A NUL-framed record over the limit is reported and skipped, even
        across reads, and the next record is taken.
        """
        for step in (0, 9):
            framer = RecordingFramer(maxLineLength=20)
            feed(framer, b"<14>ok\x00" + b"y" * 50 + b"\x00<14>after\x00", step)
            self.assertEqual(framer.oversize, [50])
            self.assertEqual(framer.lines, [b"<14>ok", b"<14>after"])

    def test_nulInsideSkippedFrame(self) -> None:
        """
        A NUL inside an oversize octet frame being skipped neither ends the
        skip early nor loses the record after the frame.
        """
        big = b"<14>" + b"x" * 60 + b"\x00" + b"y" * 60
        framer = RecordingFramer(maxLineLength=50)
        feed(framer, frame(big)[:30])
        feed(framer, frame(big)[30:] + b"<13>after\x00")
        self.assertEqual(framer.oversize, [len(big)])
        self.assertEqual(framer.lines, [b"<13>after"])

    def test_nulTerminated(self) -> None:
        """
        NUL ends a record as LF does (Python's SysLogHandler over TCP).
        """
        framer = RecordingFramer()
        feed(framer, b"<14>a\x00<14>b\x00<14>c")
        self.assertEqual(framer.lines, [b"<14>a", b"<14>b"])
        framer.connectionLost(None)
        self.assertEqual(framer.lines, [b"<14>a", b"<14>b", b"<14>c"])

    def test_octetCounting(self) -> None:
        """
        Octet-counted frames may hold LFs (counted, and kept) and follow each
        other without separator.
        """
        messages = [b"<14>1 - - - - - - one\nline two", b"<13>two\n", b"<12>three"]
        framer = RecordingFramer()
        feed(framer, b"".join(frame(m) for m in messages))
        self.assertEqual(framer.lines, messages)
        self.assertEqual(framer.oversize, [])

    def test_octetCountingSplitAnywhere(self) -> None:
        """
        Frames split over reads at every byte come out whole.
        """
        messages = [b"<14>1 - - - - - - one\ntwo", b"<13>x", b"<12>" + b"y" * 50]
        for step in (1, 2, 3, 7):
            framer = RecordingFramer()
            feed(framer, b"".join(frame(m) for m in messages), step)
            framer.connectionLost(None)
            self.assertEqual(framer.lines, messages, f"step {step}")

    def test_mixedOnOneConnection(self) -> None:
        """
        Plain lines, syslog lines and octet frames interleave on one connection.
        """
        framer = RecordingFramer()
        feed(
            framer,
            b"plain\n" + frame(b"<14>multi\nline") + b"<13>lf\n{\"a\":1}\n" + frame(b"<12>z") + b"\n",
        )
        self.assertEqual(
            [line for line in framer.lines if line],
            [b"plain", b"<14>multi\nline", b"<13>lf", b'{"a":1}', b"<12>z"],
        )

    def test_digitsAreNotALength(self) -> None:
        """
        Plain lines that begin with digits stay lines, whatever follows them.
        """
        lines = [b"2026-11-22 12:00:00 started", b"42 retries left", b"7 <b>bold</b>", b"12 <", b"3 <x>"]
        framer = RecordingFramer()
        feed(framer, b"\n".join(lines) + b"\n")
        self.assertEqual(framer.lines, lines)

    def test_lengthThatLiesShort(self) -> None:
        """
        A length shorter than its message is not trusted: the bytes are kept
        as a line, and the next records are framed normally.
        """
        framer = RecordingFramer()
        feed(framer, b"5 <14>hello world\n<13>next\n")
        self.assertEqual(framer.lines, [b"5 <14>hello world", b"<13>next"])

    def test_lengthThatLiesLongAtClose(self) -> None:
        """
        A length longer than what the sender wrote before closing loses nothing.
        """
        framer = RecordingFramer()
        feed(framer, b"90 <14>short\n<13>next\n")
        self.assertEqual(framer.lines, [])
        framer.connectionLost(None)
        self.assertEqual(framer.lines, [b"90 <14>short", b"<13>next"])

    def test_lengthThatLiesLongMidStream(self) -> None:
        """
        A too-long length whose end falls mid-record is not trusted either.
        """
        framer = RecordingFramer()
        feed(framer, b"20 <14>short\n<13>next message here\n")
        self.assertEqual(framer.lines, [b"20 <14>short", b"<13>next message here"])

    def test_lengthOverLimit(self) -> None:
        """
        A frame longer than the limit is skipped and reported; the next frame
        on the connection is taken, even when the skip spans reads.
        """
        big = b"<14>" + b"x" * 200
        for step in (0, 7):
            framer = RecordingFramer(maxLineLength=100)
            feed(framer, frame(big) + frame(b"<13>ok") + b"\nplain\n", step)
            self.assertEqual(framer.oversize, [len(big)])
            self.assertEqual([line for line in framer.lines if line], [b"<13>ok", b"plain"])

    def test_longLineInMixedRead(self) -> None:
        """
        A plain line over the limit next to a frame is rejected alone.
        """
        framer = RecordingFramer(maxLineLength=10)
        feed(framer, frame(b"<13>ok") + b"\n" + b"y" * 30 + b"\nfine\n")
        self.assertEqual(framer.oversize, [30])
        self.assertEqual([line for line in framer.lines if line], [b"<13>ok", b"fine"])

    def test_plainFastPathUnchanged(self) -> None:
        """
        A read of plain lines is delivered as one batch.
        """
        framer = RecordingFramer()
        feed(framer, b"a\nb\r\nc\n")
        self.assertEqual(framer.batches, [[b"a", b"b\r", b"c"]])


class SyslogIngestTests(SynchronousTestCase):
    """
    L{logsvc.ingest.tcp.IngestProtocol} stores syslog frames as records.
    """

    def setUp(self) -> None:
        self.store = MemoryStore()
        self.metrics = Metrics()
        self.pipeline = Pipeline(self.store, reactor=Clock(), metrics=self.metrics, delay=0)
        self.factory = IngestFactory(self.pipeline, maxLineLength=200)
        self.protocol = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "10.1.2.3", 5000))
        self.protocol.makeConnection(self.transport)

    def rejected(self, reason: str) -> float:
        return self.metrics.registry.get_sample_value(
            "logsvc_records_rejected_total", {"transport": "tcp", "reason": reason}
        ) or 0.0

    def test_framesBecomeRecords(self) -> None:
        """
        An octet frame, a line and then a NUL record become three syslog records.
        """
        self.protocol.dataReceived(
            frame(b"<11>1 2026-11-22T10:00:00Z web api 42 - - multi\nline\n")
            + b"<13>1 - - - - - - lf\n"
        )
        self.protocol.dataReceived(b"<14>Nov 22 10:00:00 db pg[9]: nul\x00")
        rows = self.store.rows
        self.assertEqual(
            [(r[3], r[4], r[5], r[6]) for r in rows],
            [(3, "web", "api", "multi\nline"), (5, "10.1.2.3", "", "lf"), (6, "db", "pg", "nul")],
        )

    def test_badFramesCostNothing(self) -> None:
        """
        An oversize frame is counted; a PRI over 191 and truncated structured
        data are kept as plain text; the valid records around them are stored
        and the connection stays open.
        """
        self.protocol.dataReceived(
            frame(b"<13>" + b"x" * 300)
            + frame(b"<14>first")
            + b"<200>1 - - - - - - bad pri\n"
            + frame(b'<14>1 - - - - - [sd@1 a="unterminated')
            + b"\n<14>last\n"
        )
        self.assertEqual(self.rejected("too_long"), 1.0)
        self.assertEqual(
            [r[6] for r in self.store.rows],
            ["first", "<200>1 - - - - - - bad pri", '<14>1 - - - - - [sd@1 a="unterminated', "last"],
        )
        self.assertFalse(self.transport.disconnecting)
