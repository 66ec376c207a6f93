"""
Tests for L{logsvc.formats.datagram}: one UDP datagram, one message, its
format told by its first bytes.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats.datagram import parseDatagram, parseDatagrams
from logsvc.record import RecordError

PEER = "192.0.2.7"
RECEIVED = 1_767_323_045_000_000

RFC5424 = b"<165>1 2026-12-04T18:00:00.123456Z web-1 api 42 ID7 [meta k=\"v\"] disk full"
RFC3164 = b"<13>Dec  4 18:00:00 web-1 myapp[99]: hello there"
GELF = orjson.dumps(
    {"version": "1.1", "host": "gelf-host", "short_message": "boom", "level": 3, "_service": "svc", "_k": 1}
)


def fields(record: object) -> dict[str, object]:
    return orjson.loads(record.fields or "{}")  # type: ignore[attr-defined]


def assertBatchSameAsOne(test: SynchronousTestCase, data: bytes) -> None:
    """
    Assert that C{data} in a batch gives what L{parseDatagram} gives it
    alone: the same record, or the same refusal.
    """
    records, rejected = parseDatagrams([(data, PEER)], RECEIVED)
    try:
        alone = parseDatagram(data, PEER, RECEIVED)
    except RecordError as e:
        test.assertEqual((records, rejected), ([], [(PEER, (data, str(e)))]))
    else:
        test.assertEqual((records, rejected), ([alone], []))


class SyslogDatagramTests(SynchronousTestCase):
    def test_rfc5424Endings(self) -> None:
        """An RFC 5424 datagram ending in nothing, LF, NUL or CRLF gives the same record."""
        records = [parseDatagram(RFC5424 + end, PEER, RECEIVED) for end in (b"", b"\n", b"\x00", b"\r\n")]
        self.assertEqual(len(set(records)), 1)
        record = records[0]
        self.assertEqual(
            (record.level, record.source, record.service, record.message),
            (5, "web-1", "api", "disk full"),
        )
        self.assertEqual(fields(record)["meta.k"], "v")

    def test_rfc3164(self) -> None:
        """An RFC 3164 datagram (what logger -d and appliances send) maps host, tag and pid."""
        record = parseDatagram(RFC3164 + b"\n", PEER, RECEIVED)
        self.assertEqual((record.level, record.source, record.service, record.message), (5, "web-1", "myapp", "hello there"))

    def test_sysLogHandler(self) -> None:
        """Python's SysLogHandler datagram (PRI, message, NUL) keeps inner newlines."""
        record = parseDatagram(b"<11>app: Traceback\n  File x\x00", PEER, RECEIVED)
        self.assertEqual((record.level, record.service, record.message), (3, "app", "Traceback\n  File x"))

    def test_plainText(self) -> None:
        """A datagram in no known format is a plain-text message from the peer."""
        record = parseDatagram(b"just words\n", PEER, RECEIVED)
        self.assertEqual((record.level, record.source, record.message), (6, PEER, "just words"))


class GelfDatagramTests(SynchronousTestCase):
    def test_plainZlibGzip(self) -> None:
        """A GELF message as plain JSON, zlib or gzip gives the same record."""
        records = {parseDatagram(data, PEER, RECEIVED) for data in (GELF, zlib.compress(GELF), gzip.compress(GELF))}
        self.assertEqual(len(records), 1)
        (record,) = records
        self.assertEqual((record.level, record.source, record.service, record.message), (3, "gelf-host", "svc", "boom"))
        self.assertEqual(fields(record), {"k": 1})

    def test_jsonRecord(self) -> None:
        """A JSON object that is not GELF is a logsvc JSON record."""
        record = parseDatagram(b'{"message": "m", "level": "warning"}\n', PEER, RECEIVED)
        self.assertEqual((record.level, record.message), (4, "m"))

    def test_decompressionBomb(self) -> None:
        """A compressed datagram inflating past the limit is refused with a reason, never inflated whole."""
        bomb = zlib.compress(b"{" + b" " * (64 * 1024 * 1024))
        error = self.assertRaises(RecordError, parseDatagram, bomb, PEER, RECEIVED)
        self.assertIn("inflates past", str(error))

    def test_corruptAndTruncated(self) -> None:
        """Corrupt or truncated compressed data is refused with a reason."""
        self.assertIn("gzip", str(self.assertRaises(RecordError, parseDatagram, b"\x1f\x8bnope", PEER, RECEIVED)))
        cut = zlib.compress(GELF)[:-6]
        self.assertIn("truncated", str(self.assertRaises(RecordError, parseDatagram, cut, PEER, RECEIVED)))

    def test_compressedNotJSON(self) -> None:
        """Compressed data that is not a JSON object is refused."""
        self.assertRaises(RecordError, parseDatagram, zlib.compress(b"plain words"), PEER, RECEIVED)
        self.assertRaises(RecordError, parseDatagram, zlib.compress(b"[1, 2]"), PEER, RECEIVED)

    def test_deepNesting(self) -> None:
        """Deeply nested JSON is refused when compressed and kept as text when plain; nothing raises else."""
        deep = b'{"short_message": "x", "version": "1.1", "a": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        self.assertRaises(RecordError, parseDatagram, zlib.compress(deep), PEER, RECEIVED)
        self.assertEqual(parseDatagram(deep, PEER, RECEIVED).message, deep.decode())

    def test_gelfWithoutMessage(self) -> None:
        """A GELF message without short_message is refused with the reason."""
        data = zlib.compress(b'{"version": "1.1", "host": "h", "short_message": ""}')
        self.assertIn("short_message", str(self.assertRaises(RecordError, parseDatagram, data, PEER, RECEIVED)))


class BatchTests(SynchronousTestCase):
    def test_batch(self) -> None:
        """A batch keeps each datagram's sender; rejected ones are named with theirs and the reason."""
        records, rejected = parseDatagrams([(RFC3164, "a"), (b"\x00\n", "b"), (GELF, "c")], RECEIVED)
        self.assertEqual([r.message for r in records], ["hello there", "boom"])
        self.assertEqual(rejected, [("b", (b"\x00\n", "empty datagram"))])

    @settings(max_examples=300, deadline=None)
    @given(
        st.one_of(
            st.binary(max_size=300),
            st.binary(max_size=300).map(lambda b: b"\x78\x9c" + b),
            st.binary(max_size=300).map(lambda b: b"\x1f\x8b" + b),
            st.binary(max_size=300).map(lambda b: b"<13>" + b),
            st.binary(max_size=300).map(lambda b: b"{" + b),
        )
    )
    def test_anyBytes(self, data: bytes) -> None:
        """Any datagram becomes a record or a rejection with a reason; nothing raises."""
        records, rejected = parseDatagrams([(data, PEER)], RECEIVED)
        self.assertEqual(len(records) + len(rejected), 1)

    @settings(max_examples=300, deadline=None)
    @given(
        st.one_of(
            st.binary(max_size=100).map(lambda b: b"<" + b),
            st.binary(max_size=100).map(lambda b: b"<13>" + b),
            st.sampled_from([RFC5424, RFC3164, b"<13>", b"<13>\n\x00", b"<html>\r\n", b"<1a>x"]),
        ),
        st.sampled_from([b"", b"\n", b"\r\n", b"\x00", b"\n\x00\r", b" "]),
    )
    def test_batchSameAsOne(self, data: bytes, ending: bytes) -> None:
        """A datagram in a batch (where syslog goes straight to its parser) gives what it gives alone."""
        assertBatchSameAsOne(self, data + ending)


def _compressedDatagrams() -> st.SearchStrategy[bytes]:
    """
    zlib and gzip datagrams of every kind (gzip of one member or more): GELF
    and JSON records, JSON that is not an object or not JSON, invalid UTF-8,
    truncated, corrupt, with bytes after the stream.
    """
    documents = st.one_of(
        st.just(GELF),
        st.builds(
            lambda message, extra: orjson.dumps({"version": "1.1", "short_message": message, **extra}),
            st.text(max_size=20),
            st.dictionaries(
                st.sampled_from(["level", "timestamp", "host", "_x", "x", "_service"]), st.integers(-5, 2**40)
            ),
        ),
        st.just(b'{"message": "m", "level": "warning"}'),
        st.just(b'{"version": "1.1", "short_message": "caf\xe9"}'),
        st.just(b'{"short_message": "x", "version": "1.1", "a": ' + b"[" * 2000 + b"]" * 2000 + b"}"),
        st.binary(max_size=100),
    )

    def damaged(document: bytes, compress: Callable[[bytes], bytes], how: int, extra: bytes) -> bytes:
        data = compress(document)
        if how == 1:
            return data[: max(2, len(data) - 1 - len(extra) % 8)]
        if how == 2:
            return data[:-4] + bytes(4)
        if how == 3:
            return data + extra
        return data

    return st.builds(
        damaged,
        documents,
        st.sampled_from([zlib.compress, gzip.compress, lambda data: gzip.compress(data) + gzip.compress(b" ")]),
        st.integers(0, 3),
        st.binary(max_size=8) | st.sampled_from([b"\x00\x00", gzip.compress(b"{}")]),
    )


class CompressedShortcutTests(SynchronousTestCase):
    """
    In a batch, zlib and gzip datagrams short enough to inflate whole take a
    shortcut that gives what L{parseDatagram} gives.
    """

    @settings(max_examples=500, deadline=None)
    @given(_compressedDatagrams())
    def test_sameAsOne(self, data: bytes) -> None:
        """Any zlib or gzip datagram gives in a batch what it gives alone: the same record, or the same refusal."""
        assertBatchSameAsOne(self, data)

    @settings(max_examples=100, deadline=None)
    @given(st.integers(1, 300_000), st.integers(100, 300), st.sampled_from([zlib.compress, gzip.compress]))
    def test_inflationLimit(self, size: int, most: int, compress: Callable[..., bytes]) -> None:
        """
        However a zlib or gzip datagram's length stands to the limit, it gives
        what it gives alone: refused past the limit, never inflated past it.
        """
        document = b'{"version": "1.1", "short_message": "' + b"a" * size + b'"}'
        data = compress(document, 9)
        limit = most * 1032
        records, rejected = parseDatagrams([(data, PEER)], RECEIVED, maxInflated=limit)
        if len(document) > limit:
            self.assertEqual(records, [])
            self.assertIn("inflates past", rejected[0][1][1])
        else:
            self.assertEqual([r.message for r in records], ["a" * size])
            self.assertEqual(records, [parseDatagram(data, PEER, RECEIVED, maxInflated=limit)])
