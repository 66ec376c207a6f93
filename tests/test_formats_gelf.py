"""Tests for L{logsvc.formats.gelf}: GELF messages, bodies and frames as plain functions."""

from __future__ import annotations

import orjson
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats.gelf import gelfRecord, parseGelfBody, parseGelfFrames
from logsvc.formats.jsonline import DocumentError, JSONSyntaxError
from logsvc.record import RecordError


class GelfRecordTests(SynchronousTestCase):
    """
    One GELF message to one record.
    """

    def test_fullMessageOnly(self) -> None:
        """
        Without short_message, full_message is the message.
        """
        self.assertEqual(gelfRecord({"full_message": "long\ntext"}, "p", 5).message, "long\ntext")

    def test_serviceKeysAndExtras(self) -> None:
        """
        The first service key wins; the others lose their underscore in fields.
        """
        record = gelfRecord({"short_message": "m", "_app": "a", "facility": "f", "_n": 1}, "p", 5)
        self.assertEqual(record.service, "a")
        self.assertEqual(orjson.loads(record.fields or "{}"), {"facility": "f", "n": 1})

    def test_errors(self) -> None:
        """
        No message, a bad timestamp or a non-object are refused.
        """
        for bad in ({}, {"short_message": "m", "timestamp": "x"}, [1]):
            self.assertRaises(RecordError, gelfRecord, bad, "p", 5)

    def test_unknownLevelKept(self) -> None:
        """
        A level outside syslog's 0..7 or no level name keeps the message:
        info, the value in fields.level (this supersedes the old refusal).
        """
        for level in (99, 20, "verbose", 3.5):
            record = gelfRecord({"short_message": "m", "level": level}, "p", 5)
            self.assertEqual((record.level, record.message), (6, "m"))
            self.assertEqual(orjson.loads(record.fields or "{}"), {"level": level})


class GelfBodyTests(SynchronousTestCase):
    """
    HTTP bodies and TCP frames.
    """

    def test_bodies(self) -> None:
        """
        An object, an array and NDJSON all parse; a bad item names its index.
        """
        one = b'{"short_message": "a"}'
        self.assertEqual(len(parseGelfBody(one, "p", 5)), 1)
        self.assertEqual(len(parseGelfBody(b"[" + one + b"," + one + b"]", "p", 5)), 2)
        self.assertEqual(len(parseGelfBody(one + b"\n" + one + b"\n", "p", 5)), 2)
        error = self.assertRaises(DocumentError, parseGelfBody, b"[" + one + b", {}]", "p", 5)
        self.assertEqual(error.index, 1)
        self.assertRaises(JSONSyntaxError, parseGelfBody, b"{nope", "p", 5)

    def test_frames(self) -> None:
        """
        Good frames become records, bad ones rejections, blank ones nothing.
        """
        records, rejected = parseGelfFrames([b'{"short_message": "a"}', b"", b"{x", b'{"host": "h"}'], "p", 5)
        self.assertEqual([r.message for r in records], ["a"])
        self.assertEqual([frame for frame, _ in rejected], [b"{x", b'{"host": "h"}'])
