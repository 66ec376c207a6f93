"""Tests for L{logsvc.formats.gelf}: GELF messages, bodies and frames as plain functions."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats import gelf
from logsvc.formats.gelf import (
    _commonRecord,
    _generalRecord,
    gelfRecord,
    parseGelfBody,
    parseGelfFrames,
)
from logsvc.formats.jsonline import DocumentError, JSONSyntaxError
from logsvc.record import Record, RecordError, keptLevel, parseTimestamp


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


#: Keys of every role: standard, service, additional fields, and those that
#: collide once their underscores are dropped.
_OTHER_KEYS = [
    "version", "full_message", "_service", "_app", "_application_name", "_facility", "facility",
    "_x", "x", "__x", "_", "__", "_full_message", "_level", "line", "_id", "",
]
_KEYS = st.sampled_from(["short_message", "level", "timestamp", "host", *_OTHER_KEYS])
#: What JSON decodes to (orjson takes integers of 64 bits).
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10**12),
    st.floats(),
    st.sampled_from([0, 7, 8, 3.0, 1795000000.25, 1e11, "", "h", "m", "3"]),
    st.text(max_size=4),
    st.lists(st.integers(-(2**63), 2**64 - 1), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(-(2**63), 2**64 - 1), max_size=2),
)


@st.composite
def _commonMessages(draw: st.DrawFn) -> dict[str, Any]:
    """
    Messages of the shape senders write (graypy, Docker): the four keys the
    fast way needs with values it takes, other keys of every role, in any
    order.
    """
    message: dict[str, Any] = {
        "short_message": draw(st.text(min_size=1, max_size=4)),
        "level": draw(st.integers(0, 7)),
        "timestamp": draw(st.one_of(st.floats(0, 1e11, exclude_max=True), st.integers(0, 10**11 - 1))),
        "host": draw(st.text(min_size=1, max_size=4)),
    }
    message.update(draw(st.dictionaries(st.sampled_from(_OTHER_KEYS), _VALUES, max_size=6)))
    order = draw(st.permutations(list(message)))
    return {key: message[key] for key in order}


def _outcome(map: Any, message: Any) -> Record | str:
    try:
        return map(message, "p", 5)  # type: ignore[no-any-return]
    except RecordError as e:
        return f"RecordError: {e}"


class CommonShapeTests(SynchronousTestCase):
    """
    The fast way for the messages nearly every sender writes gives the
    general way's record.
    """

    def test_sendersShapes(self) -> None:
        """
        graypy's message (debugging fields, the deprecated facility; with a
        traceback as full_message too), Docker's and the benchmark's take the
        fast way, and give the general way's record.
        """
        graypy = {
            "version": "1.0", "host": "vm", "short_message": "hello", "timestamp": 1796427449.748974,
            "level": 4, "facility": "myapp.db", "file": "/x/y.py", "line": 12, "_function": None,
            "_pid": 9741, "_thread_name": "MainThread", "_process_name": "MainProcess", "_stack_info": None,
        }
        bench = {
            "version": "1.1", "host": "node-03", "short_message": "GET /", "timestamp": 1795000000.5,
            "level": 3, "_service": "search", "_request_id": 7,
        }
        docker = {
            "version": "1.1", "host": "h", "short_message": "out", "timestamp": 1795000000, "level": 6,
            "_container_id": "c0ffee", "_container_name": "web", "_tag": "c0ffee",
        }
        traceback = {**graypy, "full_message": "Traceback (most recent call last):\n  ..."}
        for message in (graypy, bench, docker, traceback):
            before = dict(message)
            record = _commonRecord(message, "p", 5)
            self.assertIsNotNone(record)
            self.assertEqual(record, _generalRecord(message, "p", 5))
            self.assertEqual(message, before)
        record = gelfRecord(graypy, "p", 5)
        self.assertEqual(
            (record.ts, record.level, record.source, record.service, record.message),
            (1796427449748974, 4, "vm", "myapp.db", "hello"),
        )
        self.assertEqual(
            orjson.loads(record.fields or "{}"),
            {
                "file": "/x/y.py", "line": 12, "function": None, "pid": 9741, "thread_name": "MainThread",
                "process_name": "MainProcess", "stack_info": None,
            },
        )

    @settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(_commonMessages(), st.dictionaries(_KEYS, _VALUES, max_size=10)))
    @example({"short_message": "m", "level": 1, "timestamp": 1, "host": "h", "_x": 1, "x": 2})
    @example({"short_message": "m", "level": 1, "timestamp": 1, "host": "h", "x": 1, "_x": 2})
    @example({"short_message": "m", "level": 1, "timestamp": 1, "host": "h", "_": 1, "__": 2})
    @example({"short_message": "m", "level": 1, "timestamp": 1, "host": "h", "_app": 1, "facility": "f"})
    @example({"short_message": "m", "level": 1, "timestamp": 1, "host": "h", "_full_message": "f"})
    @example({"short_message": "m", "level": 1, "timestamp": 1, "host": "h", "_full_message": "f", "full_message": "g"})
    @example({"short_message": "m", "level": 1, "timestamp": 1, "host": "h", "full_message": None, "_full_message": "f"})
    @example({"short_message": "m", "level": 1, "timestamp": 1, "host": "h", "full_message": 5, "_a": 1})
    @example({"short_message": "m", "level": True, "timestamp": 1, "host": "h"})
    @example({"short_message": "m", "level": 1, "timestamp": 1e11, "host": "h"})
    @example({"short_message": "m", "level": 1, "timestamp": float("nan"), "host": "h"})
    @example({"short_message": "m", "level": 1, "timestamp": 1795000000.0000007, "host": "h"})
    def test_sameAsGeneral(self, message: dict[str, Any]) -> None:
        """
        Any message gives the general way's record, or its refusal, and is
        not changed.
        """
        before = dict(message)
        self.assertEqual(_outcome(gelfRecord, message), _outcome(_generalRecord, message))
        self.assertEqual(message, before)

    def test_shapesBounded(self) -> None:
        """
        The shapes kept are bounded in number, and a message with keys too
        many or too long for one is still mapped (the general way).
        """
        self.patch(gelf, "_SHAPES", {})
        self.patch(gelf, "_MOST_SHAPES", 10)
        for n in range(25):
            message = {"short_message": "m", "level": 1, "timestamp": 1, "host": "h", f"_k{n}": n}
            self.assertEqual(orjson.loads(gelfRecord(message, "p", 5).fields or "{}"), {f"k{n}": n})
            self.assertLessEqual(len(gelf._SHAPES), 10)
        gelf._SHAPES.clear()
        long = {"short_message": "m", "level": 1, "timestamp": 1, "host": "h", "_" + "k" * 100: 1}
        many = {"short_message": "m", "level": 1, "timestamp": 1, "host": "h", **{f"_{n}": n for n in range(100)}}
        for message in (long, many):
            self.assertEqual(gelfRecord(message, "p", 5), _generalRecord(message, "p", 5))
        self.assertEqual(gelf._SHAPES, {})


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
