"""
Tests for L{logsvc.record}: normalization of JSON objects into records, level
and timestamp parsing, rendering of stored rows.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from logsvc.record import (
    INFO,
    LEVEL_ALIASES,
    LEVEL_NAMES,
    ROW_COLUMNS,
    Record,
    RecordError,
    formatMicros,
    normalize,
    parseLevel,
    parseTimestamp,
    plainRecord,
    renderRow,
)

PEER = "192.0.2.7"
RECEIVED = 1_767_400_000_000_000
#: 2026-01-02T03:04:05Z in seconds since the epoch.
T = 1_767_323_045
TU = T * 1_000_000


def norm(obj: Any) -> Record:
    return normalize(obj, PEER, RECEIVED)


def fieldsOf(record: Record) -> dict[str, Any]:
    return orjson.loads(record.fields) if record.fields else {}


class MessageTests(SynchronousTestCase):
    def test_messageKey(self) -> None:
        """The message comes from C{message}."""
        self.assertEqual(norm({"message": "hello"}).message, "hello")

    def test_msgKey(self) -> None:
        """The message comes from C{msg} when C{message} is absent."""
        self.assertEqual(norm({"msg": "hello"}).message, "hello")

    def test_messageWinsOverMsg(self) -> None:
        """With both C{message} and C{msg}, C{message} is the message and C{msg} goes to fields."""
        record = norm({"msg": "second", "message": "first"})
        self.assertEqual(record.message, "first")
        self.assertEqual(fieldsOf(record), {"msg": "second"})

    def test_missingMessage(self) -> None:
        """A record without a message has the empty message."""
        self.assertEqual(norm({"a": 1}).message, "")

    def test_nonStringMessage(self) -> None:
        """A number message becomes its text; an object message becomes JSON text."""
        self.assertEqual(norm({"message": 42}).message, "42")
        self.assertEqual(orjson.loads(norm({"message": {"a": [1, 2]}}).message), {"a": [1, 2]})


class LevelTests(SynchronousTestCase):
    def test_levelKeys(self) -> None:
        """The level comes from C{level}, C{severity} or C{levelname}."""
        for key in ("level", "severity", "levelname"):
            self.assertEqual(norm({key: "error"}).level, 3, key)

    def test_levelPrecedence(self) -> None:
        """With C{level} and C{severity}, C{level} wins and C{severity} goes to fields."""
        record = norm({"severity": "debug", "level": "error", "levelname": "INFO"})
        self.assertEqual(record.level, 3)
        self.assertEqual(fieldsOf(record), {"severity": "debug", "levelname": "INFO"})

    def test_defaultLevel(self) -> None:
        """A record without a level is info."""
        self.assertEqual(norm({"message": "x"}).level, INFO)

    def test_names(self) -> None:
        """Each canonical level name maps to its syslog severity."""
        for severity, name in enumerate(LEVEL_NAMES):
            self.assertEqual(parseLevel(name), severity)

    def test_everyAliasAnyCase(self) -> None:
        """Every alias in LEVEL_ALIASES is accepted in lower, upper and mixed case."""
        for alias, severity in LEVEL_ALIASES.items():
            for spelling in (alias, alias.upper(), alias.capitalize(), f" {alias} "):
                self.assertEqual(norm({"level": spelling}).level, severity, spelling)

    def test_expectedAliases(self) -> None:
        """The documented aliases map to the documented severities."""
        expected = {
            "trace": 7,
            "warn": 4,
            "err": 3,
            "crit": 2,
            "fatal": 2,
            "emerg": 0,
            "debug": 7,
            "info": 6,
            "notice": 5,
            "warning": 4,
            "error": 3,
            "critical": 2,
            "alert": 1,
            "emergency": 0,
        }
        for alias, severity in expected.items():
            self.assertEqual(LEVEL_ALIASES[alias], severity, alias)
            self.assertEqual(parseLevel(alias), severity, alias)

    def test_syslogNumbers(self) -> None:
        """Syslog severities 0..7 are taken as numbers and as numeric strings."""
        for n in range(8):
            self.assertEqual(norm({"level": n}).level, n)
            self.assertEqual(norm({"level": str(n)}).level, n)

    def test_pythonNames(self) -> None:
        """Python logging's level names map to the matching severities."""
        names = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2, "NOTSET": 7}
        for name, severity in names.items():
            self.assertEqual(norm({"levelname": name}).level, severity, name)

    def test_pythonNumbers(self) -> None:
        """Python logging's numeric levels (10..50, and between) map to severities."""
        numbers = {10: 7, 15: 7, 20: 6, 25: 6, 30: 4, 40: 3, 45: 3, 50: 2, 8: 7, 100: 2}
        for number, severity in numbers.items():
            self.assertEqual(norm({"level": number}).level, severity, number)
            self.assertEqual(norm({"level": str(number)}).level, severity, number)

    def test_unknownLevelsKept(self) -> None:
        """
        A level that names none keeps the record: level info, the value as
        sent in fields.level, whichever key the record used (this supersedes
        the old rule that refused such records).
        """
        for key in ("level", "severity", "levelname"):
            for bad in ("verbose", "", -1, 101, True, 3.5, ["error"], {"a": 1}, "²", "-3", "1.0"):
                record = norm({key: bad, "message": "x"})
                self.assertEqual((record.level, record.message), (INFO, "x"), (key, bad))
                self.assertEqual(fieldsOf(record), {"level": bad}, (key, bad))

    def test_unknownLevelOverNestedField(self) -> None:
        """The record's own unknown level wins over a nested fields.level."""
        record = norm({"level": "verbose", "fields": {"level": "other", "a": 1}})
        self.assertEqual(fieldsOf(record), {"level": "verbose", "a": 1})

    def test_parseLevelRefusesUnknown(self) -> None:
        """parseLevel itself (which query filters use) still refuses what names no level, naming the key."""
        for bad in ("verbose", "", -1, 101, True, 3.5, ["error"], "-3", "1.0"):
            with self.assertRaises(RecordError) as caught:
                parseLevel(bad, "severity")
            self.assertTrue(str(caught.exception).startswith("severity: "), str(caught.exception))

    def test_pinoLevels(self) -> None:
        """
        A record shaped like pino's or bunyan's (its message under msg) reads
        10..60 on their scale: 30 is info, not Python's warning.
        """
        expected = {10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2, 35: 6}
        for number, severity in expected.items():
            pino = {"level": number, "time": 1531171074631, "pid": 657, "hostname": "h", "msg": "hello"}
            self.assertEqual(norm(pino).level, severity, number)
            bunyan = {"name": "app", "hostname": "h", "pid": 1, "level": number, "msg": "hi", "v": 0}
            self.assertEqual(norm(bunyan).level, severity, number)

    def test_pythonShapeKeepsPythonScale(self) -> None:
        """A record whose message is under message (or that has none) reads 10..50 on Python's scale."""
        self.assertEqual(norm({"level": 30, "message": "x"}).level, 4)
        self.assertEqual(norm({"level": 30, "message": "x", "msg": "y"}).level, 4)
        self.assertEqual(norm({"level": 20}).level, 6)
        self.assertEqual(norm({"level": 3, "msg": "syslog numbers stay syslog"}).level, 3)

    def test_superscriptDigitIsRecordError(self) -> None:
        """A level of Unicode digits int() refuses is a RecordError, not a stray ValueError."""
        with self.assertRaises(RecordError):
            parseLevel("²")


class TimestampTests(SynchronousTestCase):
    def test_tsKeys(self) -> None:
        """The event time comes from C{ts}, C{timestamp}, C{time} or C{@timestamp}."""
        for key in ("ts", "timestamp", "time", "@timestamp"):
            self.assertEqual(norm({key: "2026-01-02T03:04:05Z"}).ts, TU, key)

    def test_tsPrecedence(self) -> None:
        """With C{ts} and C{timestamp}, C{ts} wins and C{timestamp} goes to fields."""
        record = norm({"timestamp": T + 1, "ts": T, "@timestamp": "x"})
        self.assertEqual(record.ts, TU)
        self.assertEqual(fieldsOf(record), {"timestamp": T + 1, "@timestamp": "x"})

    def test_defaultTs(self) -> None:
        """A record without a time takes its receive time as event time."""
        record = norm({"message": "x"})
        self.assertEqual((record.ts, record.received), (RECEIVED, RECEIVED))

    def test_rfc3339(self) -> None:
        """RFC 3339 times with Z, offsets, lower case, fractions or no offset (UTC) parse exactly."""
        cases = {
            "2026-01-02T03:04:05Z": TU,
            "2026-01-02t03:04:05z": TU,
            "2026-01-02T03:04:05+00:00": TU,
            "2026-01-02T05:04:05+02:00": TU,
            "2026-01-01T21:34:05-05:30": TU,
            "2026-01-02T03:04:05": TU,
            "2026-01-02 03:04:05": TU,
            "2026-01-02T03:04:05.5Z": TU + 500_000,
            "2026-01-02T03:04:05.000123Z": TU + 123,
            "2026-01-02T03:04:05.123456+01:00": TU - 3_600_000_000 + 123_456,
            "1970-01-01T00:00:00Z": 0,
        }
        for text, expected in cases.items():
            self.assertEqual(parseTimestamp(text), expected, text)

    def test_epochNumbers(self) -> None:
        """Epoch seconds, milliseconds, microseconds and nanoseconds are told apart by magnitude."""
        cases: dict[Any, int] = {
            T: TU,
            T + 0.25: TU + 250_000,
            T * 1000 + 123: TU + 123_000,
            TU + 123_456: TU + 123_456,
            TU * 1000 + 123_456_789: TU + 123_456,
            0: 0,
        }
        for number, expected in cases.items():
            self.assertEqual(parseTimestamp(number), expected, number)

    def test_epochStrings(self) -> None:
        """Numeric strings are epoch numbers too, nanoseconds without float rounding."""
        cases = {
            str(T): TU,
            f" {T}.25 ": TU + 250_000,
            str(T * 1000 + 123): TU + 123_000,
            str(TU + 123_456): TU + 123_456,
            str(TU * 1000 + 123_456_999): TU + 123_456,
        }
        for text, expected in cases.items():
            self.assertEqual(parseTimestamp(text), expected, text)

    def test_badTimestamps(self) -> None:
        """Values that are not times are rejected naming the key the record used."""
        bad = ["yesterday", "", "2026-13-01T00:00:00Z", "nan", "inf", "1e400", True, None]
        bad += [[T], {"s": T}, float("nan"), float("inf"), -1, "-5", "10000-01-01T00:00:00Z"]
        bad += [10**30, "9999-12-31T23:59:59-01:00"]
        for key in ("ts", "timestamp", "time", "@timestamp"):
            for value in bad:
                if value is None:
                    continue  # an explicit null is an absent time
                with self.assertRaises(RecordError) as caught:
                    norm({key: value})
                self.assertTrue(str(caught.exception).startswith(f"{key}: "), str(caught.exception))

    def test_nullTs(self) -> None:
        """A null time counts as absent: the receive time is the event time."""
        self.assertEqual(norm({"ts": None}).ts, RECEIVED)


class SourceServiceTests(SynchronousTestCase):
    def test_sourceKeys(self) -> None:
        """The source comes from C{host}, C{hostname} or C{source}."""
        for key in ("host", "hostname", "source"):
            self.assertEqual(norm({key: "web1"}).source, "web1", key)

    def test_sourcePrecedence(self) -> None:
        """With C{host} and C{source}, C{host} wins and C{source} goes to fields."""
        record = norm({"source": "b", "hostname": "c", "host": "a"})
        self.assertEqual(record.source, "a")
        self.assertEqual(fieldsOf(record), {"source": "b", "hostname": "c"})

    def test_sourceFromPeer(self) -> None:
        """A record naming no host takes the peer address as source."""
        self.assertEqual(norm({"message": "x"}).source, PEER)

    def test_serviceKeys(self) -> None:
        """The service comes from C{service}, C{app} or C{logger}."""
        for key in ("service", "app", "logger"):
            self.assertEqual(norm({key: "api"}).service, "api", key)

    def test_servicePrecedence(self) -> None:
        """With C{service} and C{app}, C{service} wins and C{app} goes to fields."""
        record = norm({"logger": "l", "app": "a", "service": "s"})
        self.assertEqual(record.service, "s")
        self.assertEqual(fieldsOf(record), {"logger": "l", "app": "a"})

    def test_defaultService(self) -> None:
        """A record naming no service has the empty service."""
        self.assertEqual(norm({"message": "x"}).service, "")


class FieldsTests(SynchronousTestCase):
    def test_otherKeys(self) -> None:
        """Keys that are not aliases go to fields, nested values intact."""
        obj = {
            "message": "x",
            "user": {"id": 5, "roles": ["a", "b"], "meta": {"deep": [1, {"x": None}]}},
            "ok": True,
            "ratio": 0.5,
            "none": None,
            "unicode": "h\u00e9\u2603",
        }
        expected = {k: v for k, v in obj.items() if k != "message"}
        self.assertEqual(fieldsOf(norm(dict(obj))), expected)

    def test_noFields(self) -> None:
        """A record with only known keys has no fields (None, not "{}")."""
        self.assertIsNone(norm({"message": "x", "level": "info", "ts": T}).fields)

    def test_fieldsObjectMerged(self) -> None:
        """A C{fields} object is merged into fields; a top-level key of the same name wins."""
        record = norm({"message": "x", "fields": {"a": 1, "b": {"c": 2}, "d": 4}, "d": 3})
        self.assertEqual(fieldsOf(record), {"a": 1, "b": {"c": 2}, "d": 3})

    def test_fieldsNonObjectKept(self) -> None:
        """A C{fields} value that is not an object is kept as the field C{fields}."""
        self.assertEqual(fieldsOf(norm({"fields": [1, 2]})), {"fields": [1, 2]})

    def test_nonObjectRejected(self) -> None:
        """A JSON value that is not an object is rejected, saying what it was."""
        cases = {
            "an array": [{"message": "x"}],
            "a string": "x",
            "a number": 5,
            "a boolean": True,
            "null": None,
        }
        for kind, value in cases.items():
            with self.assertRaises(RecordError) as caught:
                norm(value)
            self.assertEqual(str(caught.exception), f"record must be a JSON object, not {kind}")
        with self.assertRaises(RecordError):
            norm(1.5)


class RenderTests(SynchronousTestCase):
    def test_formatMicros(self) -> None:
        """formatMicros renders RFC 3339 UTC with six fraction digits."""
        self.assertEqual(formatMicros(TU + 123), "2026-01-02T03:04:05.000123Z")
        self.assertEqual(formatMicros(0), "1970-01-01T00:00:00.000000Z")
        self.assertEqual(formatMicros(TU + 999_999), "2026-01-02T03:04:05.999999Z")

    def test_formatParseRoundTrip(self) -> None:
        """parseTimestamp(formatMicros(t)) is t for times across the range."""
        for micros in (0, 1, TU + 123_456, 253402300799_999999, 951_782_400_000_001):
            self.assertEqual(parseTimestamp(formatMicros(micros)), micros)

    def test_renderRow(self) -> None:
        """renderRow gives the API record object, with names for levels and fields decoded."""
        record = norm(
            {"message": "m", "level": "warn", "ts": TU + 7, "host": "h", "app": "a", "k": [1]}
        )
        row = (17, *record)
        self.assertEqual(len(row), len(ROW_COLUMNS))
        self.assertEqual(
            renderRow(row),
            {
                "id": 17,
                "ts": "2026-01-02T03:04:05.000007Z",
                "received": formatMicros(RECEIVED),
                "level": "warning",
                "source": "h",
                "service": "a",
                "message": "m",
                "fields": {"k": [1]},
            },
        )

    def test_renderRoundTrip(self) -> None:
        """A rendered record normalizes back into the same record."""
        record = norm(
            {"message": "m", "level": 1, "ts": TU + 9, "host": "h", "service": "s", "x": {"y": 1}}
        )
        rendered = renderRow((3, *record))
        again = normalize(
            {k: v for k, v in rendered.items() if k not in ("id", "received")}, "other", RECEIVED
        )
        self.assertEqual(again, record)

    def test_renderEmptyFields(self) -> None:
        """A row without fields renders C{fields} as an empty object."""
        self.assertEqual(renderRow((1, *plainRecord("p", PEER, RECEIVED)))["fields"], {})

    def test_plainRecord(self) -> None:
        """A plain record is info, from the peer, timed at receipt, without service or fields."""
        self.assertEqual(
            plainRecord("text", PEER, RECEIVED),
            Record(RECEIVED, RECEIVED, INFO, PEER, "", "text", None),
        )


_json = st.recursive(
    # orjson, which decodes every body, yields no integer beyond 64 bits.
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
_aliasKeys = st.sampled_from(
    ["message", "msg", "level", "severity", "levelname", "ts", "timestamp", "time", "@timestamp"]
    + ["host", "hostname", "source", "service", "app", "logger", "fields", "x"]
)
_levelish = st.one_of(
    _json,
    st.sampled_from(sorted(LEVEL_ALIASES)),
    st.integers(-5, 120).map(str),
    st.text(max_size=4),
)
_timeish = st.one_of(
    _json,
    st.integers(-(10**20), 10**20),
    st.integers(-(10**20), 10**20).map(str),
    st.datetimes().map(lambda d: d.isoformat()),
    st.text(alphabet="0123456789-+:.TtZz eE", max_size=30),
)


class NormalizePropertyTests(SynchronousTestCase):
    @settings(max_examples=100, deadline=None)
    @given(
        obj=st.dictionaries(_aliasKeys, _json, max_size=8),
        level=_levelish,
        ts=_timeish,
        levelKey=st.sampled_from(["level", "severity", "levelname"]),
        tsKey=st.sampled_from(["ts", "timestamp", "time", "@timestamp"]),
    )
    def test_recordOrRecordError(
        self, obj: dict[str, Any], level: Any, ts: Any, levelKey: str, tsKey: str
    ) -> None:
        """Any JSON object normalizes to a valid record or raises RecordError, never another error."""
        obj[levelKey] = level
        obj[tsKey] = ts
        try:
            record = normalize(obj, PEER, RECEIVED)
        except RecordError:
            return
        self.assertIn(record.level, range(8))
        self.assertTrue(0 <= record.ts <= 253402300799_999999)
        for text in (record.source, record.service, record.message):
            self.assertIsInstance(text, str)
        if record.fields is not None:
            self.assertIsInstance(orjson.loads(record.fields), dict)
        renderRow((1, *record))


_digits = st.text(alphabet="0123456789", min_size=1, max_size=4)
_utcish = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, zone: f"{y}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{zone}",
    st.integers(0, 9999).map(lambda n: f"{n:04d}"),
    st.integers(0, 19).map(lambda n: f"{n:02d}"),
    st.integers(0, 39).map(lambda n: f"{n:02d}"),
    st.sampled_from(["T", "t", " ", "x"]),
    st.integers(0, 29).map(lambda n: f"{n:02d}"),
    st.integers(0, 69).map(lambda n: f"{n:02d}"),
    st.integers(0, 69).map(lambda n: f"{n:02d}"),
    st.one_of(st.just(""), _digits.map(lambda d: "." + d), st.text(alphabet="0123456789", min_size=5, max_size=12).map(lambda d: "." + d), st.just(".")),
    st.sampled_from(["Z", "z", "+00:00", "", "+01:00", "-00:30", "ZZ"]),
)


class FastTimestampTests(SynchronousTestCase):
    @settings(max_examples=500, deadline=None)
    @given(text=st.one_of(_utcish, _timeish.filter(lambda v: isinstance(v, str))))
    def test_same_answer_as_fromisoformat(self, text: str) -> None:
        """
        The fast UTC parser answers exactly as the general one
        (datetime.fromisoformat) does for every text it takes, and leaves
        the others to it.
        """
        from logsvc.record import _isoTextToMicros, _utcTextToMicros

        fast = _utcTextToMicros(text)
        if fast is not None:
            self.assertEqual(fast, _isoTextToMicros(text), text)
        elif _isoTextToMicros(text) is not None:
            # Left to the general parser: only texts outside the fast form.
            self.assertIsNone(re.fullmatch(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|\+00:00)", text))
