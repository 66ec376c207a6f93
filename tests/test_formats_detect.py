"""
Tests for L{logsvc.formats.detect}: choosing a parser per line.
"""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats.detect import parseLine, parseLines
from logsvc.formats.text import decodeText, parseText
from logsvc.record import INFO, Record

PEER = "203.0.113.9"
RECEIVED = 1_767_323_045_000_000


def plain(message: str) -> Record:
    return Record(RECEIVED, RECEIVED, INFO, PEER, "", message, None)


class ParseLineTests(SynchronousTestCase):
    def test_plain(self) -> None:
        """A line of text is a plain record: info, from the peer, at receive time."""
        self.assertEqual(parseLine(b"disk full", PEER, RECEIVED), plain("disk full"))

    def test_json(self) -> None:
        """A JSON-object line is parsed as JSON."""
        record = parseLine(b'{"message": "m", "level": "error", "host": "h"}', PEER, RECEIVED)
        self.assertEqual((record.message, record.level, record.source), ("m", 3, "h"))

    def test_gelf(self) -> None:
        """A JSON object with version and short_message is read as GELF: message, level, host, service, fields."""
        line = orjson.dumps(
            {
                "version": "1.1",
                "host": "web-1",
                "short_message": "disk full",
                "full_message": "disk full\nat /var",
                "timestamp": 1767323045.5,
                "level": 3,
                "_service": "api",
                "_request_id": "r-7",
            }
        )
        record = parseLine(line, PEER, RECEIVED)
        self.assertEqual(
            (record.message, record.level, record.source, record.service, record.ts),
            ("disk full", 3, "web-1", "api", 1_767_323_045_500_000),
        )
        self.assertEqual(orjson.loads(record.fields or "{}"), {"full_message": "disk full\nat /var", "request_id": "r-7"})

    def test_gelfNeedsBothKeys(self) -> None:
        """An object with short_message but no version stays a logsvc JSON record (short_message a field)."""
        record = parseLine(b'{"short_message": "s", "message": "m"}', PEER, RECEIVED)
        self.assertEqual((record.message, orjson.loads(record.fields or "{}")), ("m", {"short_message": "s"}))

    def test_gelfWithoutMessageRejected(self) -> None:
        """A GELF object whose short_message is empty and has no full_message is rejected with a reason."""
        records, rejected = parseLines([b'{"version": "1.1", "short_message": ""}'], PEER, RECEIVED)
        self.assertEqual((records, [why for _, why in rejected]), ([], ["short_message: missing"]))

    def test_crStripped(self) -> None:
        """A trailing CR is not part of the record, for plain and JSON lines."""
        self.assertEqual(parseLine(b"text\r", PEER, RECEIVED).message, "text")
        self.assertEqual(parseLine(b'{"message": "j"}\r', PEER, RECEIVED).message, "j")

    def test_onlyOneCR(self) -> None:
        """Only the one CR of a CRLF is stripped; inner CRs stay."""
        self.assertEqual(parseLine(b"a\rb\r\r", PEER, RECEIVED).message, "a\rb\r")

    def test_jsonLookingText(self) -> None:
        """A line that starts like JSON but is not valid JSON is kept as plain text."""
        for line in (b"{not json", b'{"a": 1} trailing', b"{}}", b"{"):
            self.assertEqual(parseLine(line, PEER, RECEIVED), plain(line.decode()), line)

    def test_invalidUTF8(self) -> None:
        """Invalid UTF-8 in a plain line is kept with replacement characters."""
        self.assertEqual(parseLine(b"caf\xe9 \xff!", PEER, RECEIVED).message, "caf\ufffd \ufffd!")

    def test_textHelpers(self) -> None:
        """decodeText replaces invalid UTF-8; parseText makes a plain record."""
        self.assertEqual(decodeText(b"\xffok"), "\ufffdok")
        self.assertEqual(parseText(b"x\xff", PEER, RECEIVED), plain("x\ufffd"))


class ParseLinesTests(SynchronousTestCase):
    def test_mixedBatchInOrder(self) -> None:
        """A batch of plain and JSON lines gives their records in line order."""
        records, rejected = parseLines(
            [b"one", b'{"message": "two"}', b"three\r", b'{"msg": "four"}\r'], PEER, RECEIVED
        )
        self.assertEqual([r.message for r in records], ["one", "two", "three", "four"])
        self.assertEqual(rejected, [])

    def test_blankLinesSkipped(self) -> None:
        """Empty, CR-only and whitespace-only lines give no record."""
        records, rejected = parseLines([b"", b"\r", b"   ", b" \t\r", b"x"], PEER, RECEIVED)
        self.assertEqual(records, [plain("x")])
        self.assertEqual(rejected, [])

    def test_rejectedJSON(self) -> None:
        """A JSON object that does not normalize is rejected with its reason, and the rest kept."""
        bad = b'{"message": "m", "ts": "soon"}'
        records, rejected = parseLines([b"a", bad, b"b"], PEER, RECEIVED)
        self.assertEqual([r.message for r in records], ["a", "b"])
        self.assertEqual(rejected, [(bad, "ts: cannot parse 'soon'")])

    def test_invalidUTF8Kept(self) -> None:
        """Invalid UTF-8 lines in a batch are kept, on either parse path."""
        records, _ = parseLines([b"\xff", b"\xfe\r", b'{"message": "\xfd"}'], PEER, RECEIVED)
        self.assertEqual([r.message for r in records], ["\ufffd"] * 3)

    def test_jsonLookingTextKept(self) -> None:
        """JSON-looking non-JSON lines in a batch are plain text, not rejections."""
        records, rejected = parseLines([b"{oops", b'{"a":'], PEER, RECEIVED)
        self.assertEqual(records, [plain("{oops"), plain('{"a":')])
        self.assertEqual(rejected, [])


_lineBytes = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=30).map(lambda t: t.encode("utf-8")),
    st.dictionaries(
        st.sampled_from(["message", "level", "ts", "time", "host", "app", "x"]),
        st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=8)),
        max_size=4,
    ).map(orjson.dumps),
).map(lambda b: b.replace(b"\n", b""))


class ParseLinesPropertyTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None)
    @given(lines=st.lists(_lineBytes, max_size=8))
    def test_everyLineAccountedFor(self, lines: list[bytes]) -> None:
        """Every non-blank line becomes a record or a rejection, and nothing raises."""
        records, rejected = parseLines(lines, PEER, RECEIVED)
        nonBlank = [line for line in lines if line.strip()]
        self.assertEqual(len(records) + len(rejected), len(nonBlank))
        self.assertTrue(set(line for line, _ in rejected) <= set(nonBlank))
