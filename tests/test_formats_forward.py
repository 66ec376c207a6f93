"""
Tests for L{logsvc.formats.forward}: Fluent forward protocol v1 messages,
golden frames built as the spec and Fluentd/Fluent Bit write them.
"""

from __future__ import annotations

import gzip
import struct
from typing import Any

import msgpack
import orjson
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats.forward import (
    DECODE_ERRORS,
    DecodeError,
    EventTime,
    decodeMessage,
    forwardRecord,
    packEventTime,
    unpacker,
)
from logsvc.record import Record, RecordError

PEER = "192.0.2.3"
RECEIVED = 1_767_323_100_000_000
T = 1_767_323_045
LIMIT = 1024 * 1024


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True, default=packEventTime)


def decode(frame: bytes, limit: int = LIMIT) -> Any:
    """Decode one frame as the listener does: raw, bounded."""
    stream = unpacker(limit, raw=True)
    stream.feed(frame)
    (value,) = list(stream)
    return decodeMessage(value, maxBytes=limit)


def records(frame: bytes) -> tuple[list[Record], list[tuple[bytes, str]]]:
    return decode(frame).records(PEER, RECEIVED)


def fields(record: Record) -> dict[str, Any]:
    return orjson.loads(record.fields or "{}")


def packedEntries(entries: list[tuple[Any, dict[str, Any]]]) -> bytes:
    return b"".join(pack([time, record]) for time, record in entries)


class ModeTests(SynchronousTestCase):
    def test_message(self) -> None:
        """Message mode [tag, time, record]: integer time, tag as service and in fields.tag."""
        (record,), rejected = records(pack(["app.web", T, {"message": "m", "level": "error", "k": 1}]))
        self.assertEqual(rejected, [])
        self.assertEqual(
            (record.ts, record.level, record.service, record.message, record.source),
            (T * 1_000_000, 3, "app.web", "m", PEER),
        )
        self.assertEqual(fields(record), {"k": 1, "tag": "app.web"})

    def test_eventTime(self) -> None:
        """An EventTime (ext 0: seconds, nanoseconds) keeps microseconds."""
        (record,), _ = records(pack(["t", EventTime(T, 123_456_789), {"log": "x"}]))
        self.assertEqual(record.ts, T * 1_000_000 + 123_456)

    def test_forwardWithChunk(self) -> None:
        """Forward mode [tag, [[time, record], ...], option] gives each entry, and the chunk to ack."""
        message = decode(pack(["t", [[T, {"msg": "a"}], [T + 1, {"msg": "b"}]], {"chunk": "cDk=", "size": 2}]))
        self.assertEqual(message.chunk, b"cDk=")
        found, _ = message.records(PEER, RECEIVED)
        self.assertEqual([(r.message, r.ts) for r in found], [("a", T * 10**6), ("b", (T + 1) * 10**6)])

    def test_packedForwardBin(self) -> None:
        """PackedForward with a bin of entries (Fluent Bit's way) gives each entry."""
        data = packedEntries([(EventTime(T, 0), {"log": f"line {n}"}) for n in range(3)])
        found, _ = records(pack(["kube.var", data, {"size": 3}]))
        self.assertEqual([r.message for r in found], ["line 0", "line 1", "line 2"])

    def test_packedForwardStr32(self) -> None:
        """PackedForward as Fluentd's out_forward writes it: a str32 header over binary entries."""
        data = packedEntries([(T, {"message": "caf\u00e9"}), (EventTime(T, 5000), {"message": "two"})])
        frame = b"\x93" + msgpack.packb("fluentd.tag") + b"\xdb" + struct.pack(">I", len(data)) + data + b"\x80"
        found, rejected = records(frame)
        self.assertEqual(([r.message for r in found], rejected), (["caf\u00e9", "two"], []))

    def test_compressedPackedForward(self) -> None:
        """CompressedPackedForward: gzip members (one per appended chunk) are all inflated."""
        first = gzip.compress(packedEntries([(T, {"log": "a"})]))
        second = gzip.compress(packedEntries([(T, {"log": "b"})]))
        found, _ = records(pack(["t", first + second, {"compressed": "gzip", "chunk": "q"}]))
        self.assertEqual([r.message for r in found], ["a", "b"])

    def test_heartbeat(self) -> None:
        """A nil value is a heartbeat: no message."""
        self.assertIsNone(decode(pack(None)))


class MappingTests(SynchronousTestCase):
    def test_messageKeys(self) -> None:
        """message, else msg, else log is the message."""
        for record, expected in [
            ({"message": "1", "log": "x"}, "1"),
            ({"msg": "2", "log": "x"}, "2"),
            ({"log": "3"}, "3"),
            ({"other": 1}, ""),
        ]:
            self.assertEqual(forwardRecord("t", T, record, PEER, RECEIVED).message, expected)

    def test_serviceFromRecord(self) -> None:
        """The record's service or app wins over the tag, which stays in fields.tag."""
        for key in ("service", "app"):
            record = forwardRecord("docker.abc", T, {key: "billing", "log": "x"}, PEER, RECEIVED)
            self.assertEqual((record.service, fields(record)["tag"]), ("billing", "docker.abc"))

    def test_levelAndSeverity(self) -> None:
        """level, else severity, is the level."""
        self.assertEqual(forwardRecord("t", T, {"severity": "warn"}, PEER, RECEIVED).level, 4)
        self.assertEqual(forwardRecord("t", T, {"level": "debug", "severity": "x"}, PEER, RECEIVED).level, 7)

    def test_dockerRecord(self) -> None:
        """Docker's fluentd driver record: log is the message; its source (stdout) stays a field, not the host."""
        record = forwardRecord(
            "docker.web",
            T,
            {"container_id": "abc", "container_name": "/web", "source": "stdout", "log": "GET /"},
            PEER,
            RECEIVED,
        )
        self.assertEqual((record.message, record.source, record.service), ("GET /", PEER, "docker.web"))
        self.assertEqual(
            fields(record),
            {"container_id": "abc", "container_name": "/web", "source": "stdout", "tag": "docker.web"},
        )

    def test_hostAndRecordTime(self) -> None:
        """host is the source; a time key of the record stays a field, the entry's time is ts."""
        record = forwardRecord("t", T, {"host": "web-2", "time": "yesterday"}, PEER, RECEIVED)
        self.assertEqual((record.source, record.ts, fields(record)["time"]), ("web-2", T * 10**6, "yesterday"))

    def test_nestedFields(self) -> None:
        """A fields map is merged; the tag is added to it."""
        record = forwardRecord("t", T, {"fields": {"a": 1}}, PEER, RECEIVED)
        self.assertEqual(fields(record), {"a": 1, "tag": "t"})


    def test_plainRecordsAsTheGeneralRules(self) -> None:
        """
        Records without aliases or nested fields (mapped without the general
        rules) give the same record, fields in the same order, as with them:
        a record's own tag wins, source and time keys follow the tag, an
        unknown level is kept after them, log is a field beside message, a
        key that is not a string is kept as its text.
        """
        for record in (
            {"log": "x", "stream": "stdout", "time": "t", "source": "stderr", "level": "verbose"},
            {"message": "m", "log": "l", "tag": "own", "ts": 1, "@timestamp": 2, "level": "WARN"},
            {"a": {"b": [1, 2]}, "message": None},
            {1: "a key that is no string", "log": "l"},
        ):
            withAlias = {**record, "fields": {}}  # an empty nested map: the general rules, nothing more
            fast = forwardRecord("t", EventTime(T, 5000), dict(record), PEER, RECEIVED)
            general = forwardRecord("t", EventTime(T, 5000), withAlias, PEER, RECEIVED)
            self.assertEqual(fast, general, record)
        self.assertEqual(
            forwardRecord("t", T, {"log": "x", "time": "t", "source": "stderr", "level": "verbose", "k": 1}, PEER, RECEIVED).fields,
            '{"k":1,"tag":"t","source":"stderr","time":"t","level":"verbose"}',
        )


class HostileTests(SynchronousTestCase):
    def test_msgpackBomb(self) -> None:
        """A header claiming four billion elements is refused before anything is allocated."""
        stream = unpacker(LIMIT, raw=True)
        stream.feed(b"\x93\xa1t\xdd\xff\xff\xff\xff")
        self.assertRaises(ValueError, list, stream)

    def test_deepNesting(self) -> None:
        """Nesting deeper than msgpack's stack is refused by the decoder."""
        stream = unpacker(LIMIT, raw=True)
        stream.feed(b"\x91" * 5000 + b"\xc0")
        self.assertRaises(ValueError, list, stream)

    def test_deepRecordRejected(self) -> None:
        """A record nested deeper than JSON can hold is rejected with a reason, its neighbours kept."""
        deep: Any = 1
        for _ in range(300):
            deep = [deep]
        found, rejected = records(pack(["t", [[T, {"log": "ok"}], [T, {"log": "deep", "d": deep}]]]))
        self.assertEqual([r.message for r in found], ["ok"])
        self.assertEqual(len(rejected), 1)

    def test_unhashableKey(self) -> None:
        """A map keyed by an array is refused by the decoder (TypeError, one of DECODE_ERRORS), in a packed stream too."""
        stream = unpacker(LIMIT, raw=True)
        stream.feed(b"\x81\x90\xc0")
        self.assertRaises(DECODE_ERRORS, list, stream)
        self.assertRaises(DecodeError, decode, pack(["t", b"\x92\x01\x81\x90\xc0"]))

    def test_oversizeBuffer(self) -> None:
        """A value larger than the limit is refused as it is fed."""
        stream = unpacker(100, raw=True)
        self.assertRaises(msgpack.UnpackException, stream.feed, b"\xc4\xff" + b"x" * 255)

    def test_decompressionBomb(self) -> None:
        """A CompressedPackedForward inflating past the limit is refused whole, with a reason."""
        bomb = gzip.compress(b"\xc0" * (8 * LIMIT))
        error = self.assertRaises(DecodeError, decode, pack(["t", bomb, {"compressed": "gzip"}]))
        self.assertIn("inflates past", str(error))

    def test_truncatedPacked(self) -> None:
        """A packed stream cut short is refused whole, with a reason."""
        data = packedEntries([(T, {"log": "a"}), (T, {"log": "b"})])[:-3]
        self.assertRaises(DecodeError, decode, pack(["t", data]))

    def test_corruptPacked(self) -> None:
        """A packed stream of something else than [time, record] pairs is refused."""
        self.assertRaises(DecodeError, decode, pack(["t", pack([1, 2, 3])]))
        self.assertRaises(DecodeError, decode, pack(["t", b"\xc1"]))

    def test_notForward(self) -> None:
        """Values that are no forward message are refused with a reason."""
        for value in (1, "text", [], ["t"], [1, T, {}], ["t", T], ["t", {}, {}], ["t", [[T]]], ["t", [], "opt"]):
            self.assertRaises(DecodeError, decode, pack(value))

    def test_unknownCompression(self) -> None:
        """A compression other than gzip is refused."""
        self.assertRaises(DecodeError, decode, pack(["t", b"", {"compressed": "zstd"}]))

    def test_badEntries(self) -> None:
        """A record that is not a map, or a time that is not a time, is rejected; the others are kept."""
        found, rejected = records(pack(["t", [[T, "text"], ["noon", {"log": "x"}], [T, {"log": "ok"}]]]))
        self.assertEqual([r.message for r in found], ["ok"])
        self.assertEqual(len(rejected), 2)

    def test_invalidUTF8Kept(self) -> None:
        """Invalid UTF-8 in a raw-decoded record is kept as U+FFFD, never stored as surrogates."""
        (record,), _ = records(msgpack.packb(["t", T, {"log": b"bad \xff"}], use_bin_type=False))
        self.assertEqual(record.message, "bad \ufffd")

    def test_eventTimeExt(self) -> None:
        """Other ext types are not times."""
        self.assertRaises(RecordError, forwardRecord, "t", msgpack.ExtType(5, b"x" * 8), {}, PEER, RECEIVED)
