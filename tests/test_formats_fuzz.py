"""
Fuzzing of every wire parser with hypothesis: whatever the bytes, a parser
returns records or raises its documented rejection (L{RecordError}, or
L{BodyError} for body decoding); nothing else escapes, and batch parsers
account for every input line as a record or a rejection.
"""

from __future__ import annotations

import gzip
import zlib
from typing import Any
from urllib.parse import urlencode

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats.detect import parseLine, parseLines
from logsvc.formats.elastic import parseBulk
from logsvc.formats.gelf import parseGelfBody, parseGelfFrames
from logsvc.formats.jsonline import parseJSONBody, parseJSONLine, parseNDJSON
from logsvc.formats.loki import parseLokiPush
from logsvc.formats.pyform import parsePythonForm
from logsvc.formats.syslog import parseSyslog
from logsvc.record import LEVEL_NAMES, Record, RecordError
from logsvc.web.body import BodyError, decompress

PEER = "192.0.2.1"
RECEIVED = 1_700_000_000_000_000

FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

#: Keys the normalizer gives meaning to, so generated objects hit its paths.
KNOWN_KEYS = [
    "message", "msg", "short_message", "full_message", "level", "severity", "levelname",
    "ts", "timestamp", "time", "@timestamp", "host", "hostname", "source", "service",
    "app", "logger", "version", "fields", "_id", "_index", "streams", "stream", "values",
    "index", "create", "update", "delete", "args", "created", "name", "levelno",
]

jsonScalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from([*LEVEL_NAMES, "WARN", "7", "2024-02-30T00:00:00Z", "1700000000", ""])
)
jsonValues = st.recursive(
    jsonScalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), children, max_size=5),
    max_leaves=15,
)
jsonObjects = st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), jsonValues, max_size=6)


def jsonBytes(value: Any) -> bytes:
    return orjson.dumps(value)


#: Bytes that are often almost-valid: JSON with noise, syslog-looking lines,
#: raw junk.
wireLines = st.one_of(
    st.binary(max_size=200),
    jsonObjects.map(jsonBytes),
    st.builds(lambda o, cut: jsonBytes(o)[:cut], jsonObjects, st.integers(0, 60)),
    st.builds(
        lambda pri, rest: b"<%d>" % pri + rest,
        st.integers(0, 300),
        st.binary(max_size=80) | st.sampled_from([
            b"1 2024-01-01T00:00:00Z h app 1 id - msg",
            b"1 - - - - - [x a=\"b\"] m",
            b"Feb 29 12:00:00 host app[1]: m",
            b"1 2024-13-01T00:00:00Z h a - - -",
        ]),
    ),
)


def checkRecord(test: SynchronousTestCase, record: Any) -> None:
    test.assertIsInstance(record, Record)
    test.assertIsInstance(record.ts, int)
    test.assertIsInstance(record.received, int)
    test.assertIn(record.level, range(8))
    for text in (record.source, record.service, record.message):
        test.assertIsInstance(text, str)
    if record.fields is not None:
        test.assertIsInstance(orjson.loads(record.fields), dict)


class FuzzTests(SynchronousTestCase):
    def records(self, parser: Any, data: bytes) -> None:
        try:
            result = parser(data, PEER, RECEIVED)
        except RecordError:
            return
        for record in result if isinstance(result, list) else [result]:
            checkRecord(self, record)

    @FUZZ
    @given(wireLines)
    def test_jsonLine(self, line: bytes) -> None:
        """A JSON line parses to a record or a RecordError, whatever it holds."""
        self.records(parseJSONLine, line)

    @FUZZ
    @given(st.lists(wireLines, max_size=6))
    def test_tcpLines(self, lines: list[bytes]) -> None:
        """Every non-blank TCP line becomes a record or a counted rejection, never an exception."""
        lines = [line.replace(b"\n", b" ") for line in lines]
        records, rejected = parseLines(lines, PEER, RECEIVED)
        for record in records:
            checkRecord(self, record)
        self.assertEqual(len(records) + len(rejected), len([line for line in lines if line.strip()]))
        for line in lines:
            self.records(parseLine, line)

    @FUZZ
    @given(st.one_of(st.binary(max_size=300), st.lists(jsonObjects).map(jsonBytes), jsonValues.map(jsonBytes)))
    def test_jsonBody(self, body: bytes) -> None:
        """A JSON body parses to records or a RecordError."""
        self.records(parseJSONBody, body)

    @FUZZ
    @given(st.lists(wireLines, max_size=6).map(lambda ls: b"\n".join(ls)))
    def test_ndjson(self, body: bytes) -> None:
        """An NDJSON body parses to records or a RecordError."""
        self.records(parseNDJSON, body)

    @FUZZ
    @given(wireLines)
    def test_syslog(self, line: bytes) -> None:
        """A syslog message parses to a record or a RecordError."""
        self.records(parseSyslog, line)

    @FUZZ
    @given(
        st.one_of(
            st.binary(max_size=200),
            st.dictionaries(
                st.sampled_from(KNOWN_KEYS) | st.text(max_size=6),
                st.text(max_size=20) | st.sampled_from(["10", "20", "40", "1.5e9", "nan", "inf", "-1"]),
                max_size=8,
            ).map(lambda d: urlencode(d).encode()),
        )
    )
    def test_pythonForm(self, body: bytes) -> None:
        """A form body (Python's HTTPHandler) parses to records or a RecordError."""
        self.records(parsePythonForm, body)

    @FUZZ
    @given(
        st.lists(
            st.one_of(
                st.dictionaries(
                    st.sampled_from(["index", "create", "update", "delete", "bogus"]),
                    st.dictionaries(st.sampled_from(["_index", "_id", "x"]), jsonScalars, max_size=3),
                    min_size=1,
                    max_size=2,
                ).map(jsonBytes),
                jsonObjects.map(jsonBytes),
                st.binary(max_size=40),
            ),
            max_size=8,
        ).map(lambda ls: b"\n".join(ls))
    )
    def test_bulk(self, body: bytes) -> None:
        """An Elasticsearch bulk body parses to items (records or per-item failures) or a RecordError."""
        try:
            items = parseBulk(body, PEER, RECEIVED)
        except RecordError:
            return
        for item in items:
            if item.record is not None:
                checkRecord(self, item.record)
            else:
                self.assertGreaterEqual(item.status, 400)

    @FUZZ
    @given(
        st.one_of(
            st.binary(max_size=200),
            jsonValues.map(jsonBytes),
            st.lists(
                st.fixed_dictionaries(
                    {
                        "stream": st.dictionaries(st.text(max_size=6), jsonScalars, max_size=3),
                        "values": st.lists(st.lists(jsonValues, max_size=4), max_size=4),
                    }
                ),
                max_size=3,
            ).map(lambda streams: jsonBytes({"streams": streams})),
        )
    )
    def test_loki(self, body: bytes) -> None:
        """A Loki push body parses to records or a RecordError."""
        self.records(parseLokiPush, body)

    @FUZZ
    @given(st.lists(wireLines, max_size=5))
    def test_gelf(self, frames: list[bytes]) -> None:
        """GELF frames become records or counted rejections; a GELF body records or a RecordError."""
        records, rejected = parseGelfFrames(frames, PEER, RECEIVED)
        for record in records:
            checkRecord(self, record)
        self.assertEqual(len(records) + len(rejected), len([f for f in frames if f.strip()]))
        self.records(parseGelfBody, b"\n".join(frames))

    @settings(max_examples=40, deadline=None)
    @given(
        st.one_of(
            st.binary(max_size=300),
            st.binary(max_size=3000).map(gzip.compress),
            st.binary(max_size=3000).map(zlib.compress),
            st.builds(lambda b, cut: gzip.compress(b)[:cut], st.binary(max_size=500), st.integers(0, 40)),
        ),
        st.sampled_from(["gzip", "zlib", "raw"]),
        st.integers(0, 2000),
    )
    def test_decompress(self, data: bytes, kind: str, limit: int) -> None:
        """Decoding a body yields at most limit bytes or a BodyError (400/413), whatever the bytes."""
        try:
            out = decompress(data, kind, limit)
        except BodyError as e:
            self.assertIn(e.code, (400, 413))
            return
        self.assertLessEqual(len(out), limit)
