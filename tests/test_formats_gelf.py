"""Tests for L{logsvc.formats.gelf}: GELF messages, bodies and frames as plain functions."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats.gelf import gelfRecord, parseGelfBody, parseGelfFrames
from logsvc.formats.jsonline import DocumentError, JSONSyntaxError
from logsvc.record import RecordError, keptLevel, parseTimestamp


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

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.one_of(st.none(), st.integers(-3, 60), st.floats(-1, 9), st.booleans(), st.sampled_from(["3", "warn", "x"])),
        st.one_of(
            st.none(),
            st.integers(-10, 10**12),
            st.floats(-1e3, 1e12),
            st.floats(),
            st.sampled_from([1e11, 1e11 - 0.5, float("inf"), float("nan"), True, "1795000000.5", "x"]),
        ),
    )
    @example(8, None)
    @example(7, 1795000000.003)
    @example(-1, 1795000000.001)
    @example(0.0, 0)
    @example(7.0, 99999999999.99999)
    def test_levelAndTimeByTheRules(self, level: Any, timestamp: Any) -> None:
        """
        Any level and timestamp map as the general rules say: a syslog
        severity (an integral float too), else info with the value in
        fields; the time as L{parseTimestamp} reads it, or a refusal.
        """
        message: dict[str, Any] = {"version": "1.1", "short_message": "m"}
        if level is not None:
            message["level"] = level
        if timestamp is not None:
            message["timestamp"] = timestamp
        fields: dict[str, Any] = {}
        expectedLevel = int(level) if isinstance(level, float) and level.is_integer() else level
        if isinstance(expectedLevel, int) and not isinstance(expectedLevel, bool) and not 0 <= expectedLevel <= 7:
            fields["level"], expectedLevel = expectedLevel, None
        expectedLevel = keptLevel(expectedLevel, fields)
        try:
            expectedTs = 5 if timestamp is None else parseTimestamp(timestamp, "timestamp")
        except RecordError:
            self.assertRaises(RecordError, gelfRecord, message, "p", 5)
            return
        record = gelfRecord(message, "p", 5)
        self.assertEqual((record.ts, record.level, orjson.loads(record.fields or "{}")), (expectedTs, expectedLevel, fields))

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
