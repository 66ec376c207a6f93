"""
Tests for L{logsvc.formats.jsonline}: JSON lines, JSON bodies and NDJSON.
"""

from __future__ import annotations

import orjson
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats.jsonline import (
    DocumentError,
    JSONSyntaxError,
    loadJSON,
    parseJSONBody,
    parseJSONLine,
    parseNDJSON,
)
from logsvc.record import INFO, Record, RecordError

PEER = "198.51.100.1"
RECEIVED = 1_767_323_045_000_000


class LoadJSONTests(SynchronousTestCase):
    def test_valid(self) -> None:
        """Valid JSON decodes to its value."""
        self.assertEqual(loadJSON(b'{"a": [1, "x", null]}'), {"a": [1, "x", None]})

    def test_invalidUTF8Replaced(self) -> None:
        """Invalid UTF-8 inside a string is kept as U+FFFD rather than failing the document."""
        self.assertEqual(loadJSON(b'{"m": "a\xffb\xc3"}'), {"m": "a\ufffdb\ufffd"})

    def test_syntaxErrorOffset(self) -> None:
        """A syntax error names its offset."""
        with self.assertRaises(JSONSyntaxError) as caught:
            loadJSON(b'{"a": 1,, "b": 2}')
        self.assertIn("offset 8", str(caught.exception))

    def test_syntaxErrorAfterBadUTF8(self) -> None:
        """With invalid UTF-8 and a syntax error, the error names the syntax error's offset."""
        with self.assertRaises(JSONSyntaxError) as caught:
            loadJSON(b'{"m": "\xff"} trailing')
        self.assertIn("offset 11", str(caught.exception))
        self.assertNotIn("UTF-8", str(caught.exception))

    def test_empty(self) -> None:
        """An empty document is a syntax error at offset 0."""
        with self.assertRaises(JSONSyntaxError) as caught:
            loadJSON(b"")
        self.assertIn("offset 0", str(caught.exception))

    def test_syntaxErrorIsRecordError(self) -> None:
        """JSONSyntaxError is a RecordError, so callers catching RecordError see it."""
        self.assertTrue(issubclass(JSONSyntaxError, RecordError))


class JSONLineTests(SynchronousTestCase):
    def test_object(self) -> None:
        """A JSON-object line becomes a normalized record."""
        record = parseJSONLine(
            b'{"msg": "hi", "level": "warn", "ts": 1767323045, "app": "a", "k": 1}', PEER, RECEIVED
        )
        self.assertEqual(
            record, Record(1_767_323_045_000_000, RECEIVED, 4, PEER, "a", "hi", '{"k":1}')
        )

    def test_invalidUTF8(self) -> None:
        """Invalid UTF-8 in a JSON line is kept with replacement characters."""
        record = parseJSONLine(b'{"message": "caf\xe9 \xff"}', PEER, RECEIVED)
        self.assertEqual(record.message, "caf\ufffd \ufffd")

    def test_notObject(self) -> None:
        """A JSON line that is not an object is a RecordError naming its type."""
        for line, kind in (
            (b"[1]", "an array"),
            (b'"s"', "a string"),
            (b"3", "a number"),
            (b"null", "null"),
        ):
            with self.assertRaises(RecordError) as caught:
                parseJSONLine(line, PEER, RECEIVED)
            self.assertIn(kind, str(caught.exception))

    def test_invalidJSON(self) -> None:
        """A line that is not JSON raises JSONSyntaxError."""
        self.assertRaises(JSONSyntaxError, parseJSONLine, b"{nope", PEER, RECEIVED)


class JSONBodyTests(SynchronousTestCase):
    def test_object(self) -> None:
        """A body holding one object is one record."""
        records = parseJSONBody(b'{"message": "one"}', PEER, RECEIVED)
        self.assertEqual([r.message for r in records], ["one"])

    def test_array(self) -> None:
        """A body holding an array is its records, in order."""
        body = orjson.dumps([{"message": str(i)} for i in range(5)])
        self.assertEqual([r.message for r in parseJSONBody(body, PEER, RECEIVED)], list("01234"))

    def test_emptyArray(self) -> None:
        """An empty array is no records."""
        self.assertEqual(parseJSONBody(b"[]", PEER, RECEIVED), [])

    def test_badItemIndex(self) -> None:
        """A bad record in an array raises DocumentError with its index and the reason."""
        body = b'[{"message": "a"}, {"message": "b"}, {"ts": "never"}, 5]'
        with self.assertRaises(DocumentError) as caught:
            parseJSONBody(body, PEER, RECEIVED)
        self.assertEqual(caught.exception.index, 2)
        self.assertIn("ts: cannot parse 'never'", str(caught.exception))

    def test_nonObjectItem(self) -> None:
        """A non-object array item is rejected at its index."""
        with self.assertRaises(DocumentError) as caught:
            parseJSONBody(b'[{"message": "a"}, "b"]', PEER, RECEIVED)
        self.assertEqual(caught.exception.index, 1)
        self.assertIn("not a string", str(caught.exception))

    def test_scalarBody(self) -> None:
        """A body that is a bare scalar is rejected as record 0."""
        with self.assertRaises(DocumentError) as caught:
            parseJSONBody(b"42", PEER, RECEIVED)
        self.assertEqual(caught.exception.index, 0)

    def test_invalidJSONOffset(self) -> None:
        """An invalid body raises JSONSyntaxError naming the offset."""
        with self.assertRaises(JSONSyntaxError) as caught:
            parseJSONBody(b'[{"message": "a"}, {"b": }]', PEER, RECEIVED)
        self.assertIn("offset 25", str(caught.exception))


class NDJSONTests(SynchronousTestCase):
    def test_lines(self) -> None:
        """Each non-blank line is a record; blank lines, CRLF and a missing final LF are fine."""
        body = b'{"message": "a"}\n\n  \n{"message": "b"}\r\n{"message": "c"}'
        self.assertEqual([r.message for r in parseNDJSON(body, PEER, RECEIVED)], ["a", "b", "c"])

    def test_trailingNewline(self) -> None:
        """A final LF adds no record."""
        self.assertEqual(len(parseNDJSON(b'{"a": 1}\n{"a": 2}\n', PEER, RECEIVED)), 2)

    def test_invalidLine(self) -> None:
        """Invalid JSON names its line number (blank lines counted) and its record index."""
        body = b'{"message": "a"}\n\n{"message": "b"}\n{bad}\n'
        with self.assertRaises(DocumentError) as caught:
            parseNDJSON(body, PEER, RECEIVED)
        self.assertTrue(str(caught.exception).startswith("line 4: invalid JSON at offset 1"))
        self.assertEqual(caught.exception.index, 2)

    def test_badRecordLine(self) -> None:
        """A line that does not normalize names its line number and the reason."""
        body = b'{"message": "a"}\n[1, 2]\n'
        with self.assertRaises(DocumentError) as caught:
            parseNDJSON(body, PEER, RECEIVED)
        self.assertEqual(
            str(caught.exception), "line 2: record must be a JSON object, not an array"
        )
        self.assertEqual(caught.exception.index, 1)

    def test_invalidUTF8(self) -> None:
        """Invalid UTF-8 in an NDJSON line is replaced, not rejected."""
        records = parseNDJSON(b'{"message": "\xfe"}\n', PEER, RECEIVED)
        self.assertEqual(records[0].message, "\ufffd")

    def test_defaults(self) -> None:
        """NDJSON records without level or time are info at the receive time, from the peer."""
        (record,) = parseNDJSON(b'{"message": "a"}', PEER, RECEIVED)
        self.assertEqual((record.level, record.ts, record.source), (INFO, RECEIVED, PEER))
