"""
Tests for L{logsvc.formats.otlp}: OTLP export requests (protobuf and JSON)
to records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats import otlp
from logsvc.formats.otlp import exportResponse, parseOTLPJSON, parseOTLPProtobuf, severityLevel
from logsvc.record import Record, RecordError
from tests.protowire import field
from tests.speedups import requireSpeedups

GOLDEN = Path(__file__).parent / "golden"
PEER = "192.0.2.9"
RECEIVED = 1_767_400_000_000_000


def fieldsOf(record: Record) -> dict[str, Any]:
    return orjson.loads(record.fields or "{}")


def exportRequest(*logs: LogRecord, resource: dict[str, str] | None = None, scope: str = "") -> bytes:
    """
    @return: a protobuf export request holding C{logs} under one resource
        (string attributes C{resource}) and scope, as an SDK encodes it.
    """
    request = ExportLogsServiceRequest()
    resourceLogs = request.resource_logs.add()
    for key, value in (resource or {}).items():
        resourceLogs.resource.attributes.add(key=key, value=AnyValue(string_value=value))
    scopeLogs = resourceLogs.scope_logs.add()
    scopeLogs.scope.name = scope
    scopeLogs.log_records.extend(logs)
    return request.SerializeToString()  # type: ignore[no-any-return]


class ProtobufTests(SynchronousTestCase):
    def test_mapping(self) -> None:
        """
        Body, severity, resource service.name/host.name, times, attributes,
        other resource attributes, scope name and trace/span ids map as
        documented.
        """
        log = LogRecord(
            time_unix_nano=1_544_712_660_300_000_123,
            observed_time_unix_nano=1_600_000_000_000_000_000,
            severity_number=13,
            severity_text="WARN",
            body=AnyValue(string_value="disk low"),
            attributes=[KeyValue(key="free", value=AnyValue(int_value=5)), KeyValue(key="deployment", value=AnyValue(string_value="blue"))],
            trace_id=bytes.fromhex("5B8EFFF798038103D269B633813FC60C"),
            span_id=bytes.fromhex("EEE19B7EC3C1B174"),
        )
        body = exportRequest(
            log, resource={"service.name": "api", "host.name": "web1", "deployment": "green", "k8s.pod.name": "p-1"}, scope="app.db"
        )
        batch = parseOTLPProtobuf(body, PEER, RECEIVED)
        [record] = batch.records
        self.assertEqual(batch.rejected, 0)
        self.assertEqual(record[:6], (1_544_712_660_300_000, RECEIVED, 4, "web1", "api", "disk low"))
        self.assertEqual(
            fieldsOf(record),
            {
                "free": 5,
                "deployment": "blue",
                "k8s.pod.name": "p-1",
                "scope": "app.db",
                "trace_id": "5b8efff798038103d269b633813fc60c",
                "span_id": "eee19b7ec3c1b174",
            },
        )

    def test_defaults(self) -> None:
        """
        Without a resource, body, severity or time: the peer as source, no
        service, empty message, info, receive time; observed time is taken
        when there is no event time.
        """
        batch = parseOTLPProtobuf(exportRequest(LogRecord(), LogRecord(observed_time_unix_nano=2_000_000_000)), PEER, RECEIVED)
        self.assertEqual([r[:7] for r in batch.records], [(RECEIVED, RECEIVED, 6, PEER, "", "", None), (2_000_000, RECEIVED, 6, PEER, "", "", None)])

    def test_severityNumbers(self) -> None:
        """1-8 debug, 9-12 info, 13-16 warning, 17-20 error, 21-24 critical; the number wins over the text."""
        expected = {1: 7, 4: 7, 5: 7, 8: 7, 9: 6, 12: 6, 13: 4, 16: 4, 17: 3, 20: 3, 21: 2, 24: 2}
        for number, severity in expected.items():
            self.assertEqual(severityLevel(number, "error", {}), severity, number)

    def test_severityText(self) -> None:
        """
        Without a number the text is read as a level name; one that is no
        level, or a number out of range, keeps the record as info with the
        value in fields.level.
        """
        self.assertEqual(severityLevel(0, "Warning", {}), 4)
        self.assertEqual(severityLevel(0, "FATAL", {}), 2)
        fields: dict[str, Any] = {}
        self.assertEqual(severityLevel(0, "verbose", fields), 6)
        self.assertEqual(fields, {"level": "verbose"})
        fields = {}
        self.assertEqual(severityLevel(99, "", fields), 6)
        self.assertEqual(fields, {"level": 99})

    def test_severityThroughRequests(self) -> None:
        """
        In a request, a number wins over the text; without one the text is
        read; a number out of range keeps the record as info with the number
        in fields.level beside the scope's fields; an empty string body is
        an empty message.
        """
        logs = [
            LogRecord(severity_number=21, severity_text="info", body=AnyValue(string_value="")),
            LogRecord(severity_text="error"),
            LogRecord(severity_number=99),  # type: ignore[arg-type]
        ]
        batch = parseOTLPProtobuf(exportRequest(*logs, scope="lib"), PEER, RECEIVED)
        self.assertEqual([(r.level, r.message, fieldsOf(r)) for r in batch.records], [
            (2, "", {"scope": "lib"}),
            (3, "", {"scope": "lib"}),
            (6, "", {"scope": "lib", "level": 99}),
        ])

    def test_bodies(self) -> None:
        """Non-string bodies are rendered as JSON; bytes as base64 text."""
        kv = AnyValue()
        kv.kvlist_value.values.add(key="a", value=AnyValue(bool_value=True))
        arr = AnyValue()
        arr.array_value.values.extend([AnyValue(int_value=1), AnyValue(double_value=1.5), AnyValue(string_value="x")])
        bodies = [kv, arr, AnyValue(int_value=-3), AnyValue(bytes_value=b"\x00\xff")]
        batch = parseOTLPProtobuf(exportRequest(*(LogRecord(body=b) for b in bodies)), PEER, RECEIVED)
        self.assertEqual([r.message for r in batch.records], ['{"a":true}', '[1,1.5,"x"]', "-3", "AP8="])

    def test_recordAttributeWinsOverResource(self) -> None:
        """A log attribute wins over a resource attribute of the same name."""
        log = LogRecord(attributes=[KeyValue(key="region", value=AnyValue(string_value="eu-1"))])
        [record] = parseOTLPProtobuf(exportRequest(log, resource={"region": "eu"}), PEER, RECEIVED).records
        self.assertEqual(fieldsOf(record), {"region": "eu-1"})

    def test_hostile(self) -> None:
        """
        Truncated bytes, garbage and nesting past protobuf's recursion limit
        are a RecordError, never another exception.
        """
        good = exportRequest(LogRecord(body=AnyValue(string_value="x" * 100)))
        # AnyValue.array_value (5) -> ArrayValue.values (1) -> AnyValue ...,
        # 400 levels deep, written by hand: the bindings refuse to build it.
        deep = AnyValue(string_value="leaf").SerializeToString()
        for _ in range(200):
            deep = field(5, field(1, deep))
        # ExportLogsServiceRequest.resource_logs (1) -> ResourceLogs.scope_logs
        # (2) -> ScopeLogs.log_records (2) -> LogRecord.body (5).
        deepBody = field(1, field(2, field(2, field(5, deep))))
        for bad in (good[:-10], b"\xff" * 64, b"\x0a\xff\xff\xff\xff\x0f", deepBody):
            with self.assertRaises(RecordError):
                parseOTLPProtobuf(bad, PEER, RECEIVED)

    def test_empty(self) -> None:
        """An empty request (no resource logs) holds no records and refuses none."""
        batch = parseOTLPProtobuf(b"", PEER, RECEIVED)
        self.assertEqual((batch.records, batch.rejected), ([], 0))


class JSONTests(SynchronousTestCase):
    def test_specExample(self) -> None:
        """
        The OTLP spec's example request (examples/logs.json: integers as
        numbers, upper-case hex ids, a severity text) maps as documented.
        """
        batch = parseOTLPJSON((GOLDEN / "otlp-logs.json").read_bytes(), PEER, RECEIVED)
        [record] = batch.records
        self.assertEqual(record[:6], (1_544_712_660_300_000, RECEIVED, 6, PEER, "my.service", "Example log record"))
        self.assertEqual(
            fieldsOf(record),
            {
                "scope": "my.library",
                "string.attribute": "some string",
                "boolean.attribute": True,
                "int.attribute": 10,
                "double.attribute": 637.704,
                "array.attribute": ["many", "values"],
                "map.attribute": {"some.map.key": "some value"},
                "trace_id": "5b8efff798038103d269b633813fc60c",
                "span_id": "eee19b7ec3c1b174",
            },
        )

    def test_stringIntegersAndSeverityNumber(self) -> None:
        """64-bit integers as strings (as exporters write them) and severityNumber are read."""
        body = {
            "resourceLogs": [
                {
                    "resource": {"attributes": [{"key": "host.name", "value": {"stringValue": "h1"}}]},
                    "scopeLogs": [
                        {"logRecords": [{"timeUnixNano": "1544712660300000000", "severityNumber": 17, "body": {"stringValue": "e"}}]}
                    ],
                }
            ]
        }
        [record] = parseOTLPJSON(orjson.dumps(body), PEER, RECEIVED).records
        self.assertEqual(record[:6], (1_544_712_660_300_000, RECEIVED, 3, "h1", "", "e"))

    def test_badRecordRefusedNeighboursKept(self) -> None:
        """
        A malformed log record is refused with its position and reason; the
        others of the request are kept.
        """
        body = {
            "resourceLogs": [
                {
                    "scopeLogs": [
                        {
                            "logRecords": [
                                {"body": {"stringValue": "a"}},
                                {"timeUnixNano": "yesterday"},
                                {"traceId": "not-hex"},
                                "nope",
                                {"body": {"stringValue": "b"}},
                            ]
                        }
                    ]
                }
            ]
        }
        batch = parseOTLPJSON(orjson.dumps(body), PEER, RECEIVED)
        self.assertEqual([r.message for r in batch.records], ["a", "b"])
        self.assertEqual(batch.rejected, 3)
        self.assertIn("logRecords[1]", batch.reason)
        self.assertIn("timeUnixNano", batch.reason)
        response = exportResponse(batch)
        self.assertEqual(response.partial_success.rejected_log_records, 3)
        self.assertIn("logRecords[1]", response.partial_success.error_message)

    def test_notARequest(self) -> None:
        """Invalid JSON, a non-object and misshapen envelopes are a RecordError."""
        for bad in (b"{", b"[]", b'{"resourceLogs": 1}', b'{"resourceLogs": [1]}', b'{"resourceLogs": [{"resource": 1}]}'):
            with self.assertRaises(RecordError):
                parseOTLPJSON(bad, PEER, RECEIVED)

    def test_deepNesting(self) -> None:
        """
        A body nested deeper than the decoders allow is refused with a
        RecordError (the whole body or the one record), nothing escaping.
        """
        value: Any = {"stringValue": "leaf"}
        for _ in range(60):
            value = {"arrayValue": {"values": [value]}}
        body = orjson.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": value}, {"body": {"stringValue": "ok"}}]}]}]})
        batch = parseOTLPJSON(body, PEER, RECEIVED)
        self.assertEqual(([r.message for r in batch.records], batch.rejected), (["ok"], 1))
        tooDeep = b'{"resourceLogs": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        self.assertRaises(RecordError, parseOTLPJSON, tooDeep, PEER, RECEIVED)

    def test_emptyResponse(self) -> None:
        """A request with nothing refused is answered with no partial_success."""
        batch = parseOTLPJSON(b"{}", PEER, RECEIVED)
        self.assertFalse(exportResponse(batch).HasField("partial_success"))


def _mutated(data: bytes, position: int, byte: int, cut: int) -> bytes:
    """
    @return: C{data} with one byte replaced and cut short: bodies that are
        almost valid, which reach the decoder's deeper paths.
    """
    if not data:
        return data
    position %= len(data)
    return (data[:position] + bytes([byte]) + data[position + 1 :])[: max(cut, 1)]


_VALID_PROTOBUF = exportRequest(
    LogRecord(
        time_unix_nano=1_544_712_660_300_000_000,
        severity_number=13,
        body=AnyValue(string_value="x"),
        attributes=[KeyValue(key="n", value=AnyValue(int_value=1))],
        trace_id=b"\x01" * 16,
    ),
    resource={"service.name": "s", "host.name": "h"},
    scope="sc",
)

_anyJSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10) | st.floats(allow_nan=False),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3),
    max_leaves=10,
)
_otlpKeys = st.sampled_from(
    ["timeUnixNano", "observedTimeUnixNano", "severityNumber", "severityText", "body", "attributes", "traceId",
     "spanId", "stringValue", "intValue", "kvlistValue", "arrayValue", "values", "key", "value", "x"]
)
_logJSON = st.dictionaries(_otlpKeys, _anyJSON, max_size=5)


_KEYS = st.sampled_from(["service.name", "host.name", "scope", "level", "trace_id", "user_id", "a", ""]) | st.text(max_size=6)
_scalarValues = st.one_of(
    st.builds(AnyValue),
    st.builds(AnyValue, string_value=st.sampled_from(["", "api", "web1"]) | st.text(max_size=8)),
    st.builds(AnyValue, int_value=st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63)]) | st.integers(-(2**63), 2**63 - 1)),
    st.builds(AnyValue, double_value=st.floats()),
    st.builds(AnyValue, bool_value=st.booleans()),
    st.builds(AnyValue, bytes_value=st.binary(max_size=6)),
)


def _nested(children: st.SearchStrategy[AnyValue]) -> st.SearchStrategy[AnyValue]:
    def kvlist(pairs: list[tuple[str, AnyValue]]) -> AnyValue:
        value = AnyValue()
        for key, item in pairs:
            value.kvlist_value.values.add(key=key, value=item)
        return value

    def array(items: list[AnyValue]) -> AnyValue:
        value = AnyValue()
        value.array_value.values.extend(items)
        return value

    return st.lists(st.tuples(_KEYS, children), max_size=3).map(kvlist) | st.lists(children, max_size=3).map(array)


_anyValues = st.recursive(_scalarValues, _nested, max_leaves=6)
_attributes = st.lists(st.builds(KeyValue, key=_KEYS, value=_anyValues), max_size=4)
_ids = st.sampled_from([b"", b"\x01" * 8, bytes(range(16))])
_logRecords = st.builds(
    LogRecord,
    time_unix_nano=st.sampled_from([0, 1_795_000_000_000_000_123]) | st.integers(0, 2**64 - 1),
    observed_time_unix_nano=st.sampled_from([0, 1_600_000_000_000_000_000]),
    severity_number=st.integers(-3, 30),
    severity_text=st.sampled_from(["", "WARN", "error", "verbose", "3", "²"]),
    body=_anyValues,
    attributes=_attributes,
    trace_id=_ids,
    span_id=_ids,
    **({"event_name": st.sampled_from(["", "login"])} if otlp._EVENT_NAME else {}),
)


@st.composite
def _requests(draw: st.DrawFn) -> ExportLogsServiceRequest:
    """
    @return: export requests of a few resources (their attributes of every
        kind, service.name and host.name among them), scopes and records.
    """
    request = ExportLogsServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        resourceLogs = request.resource_logs.add()
        resourceLogs.resource.attributes.extend(draw(_attributes))
        for _ in range(draw(st.integers(0, 2))):
            scopeLogs = resourceLogs.scope_logs.add()
            scopeLogs.scope.name = draw(st.sampled_from(["", "app.db", "level"]))
            scopeLogs.log_records.extend(draw(st.lists(_logRecords, max_size=4)))
    return request


def plainRecords(request: ExportLogsServiceRequest, peer: str, received: int) -> tuple[list[Record], int]:
    """
    @return: the records of C{request} mapped one by one by the plain path
        (L{otlp.logRecord}), and how many it refused.
    """
    records: list[Record] = []
    refused = 0
    for resourceLogs in request.resource_logs:
        for scopeLogs in resourceLogs.scope_logs:
            template = otlp._ScopeTemplate(resourceLogs.resource, scopeLogs.scope.name)
            for log in scopeLogs.log_records:
                try:
                    records.append(otlp.logRecord(log, template, template.host or peer, received))
                except RecordError:
                    refused += 1
    return records, refused


#: Attribute values of the shape the C loop reads itself (non-empty strings,
#: with characters JSON escapes among them, and non-zero integers), and a
#: few it leaves to the Python one.
_commonValues = st.one_of(
    st.builds(AnyValue, string_value=st.text(min_size=1, max_size=8)),
    st.builds(AnyValue, string_value=st.sampled_from(["GET /", "é", "a\"b", "a\\b", "\n", "\x7f", "\u2028", "😀"])),
    st.builds(AnyValue, int_value=st.integers(-(2**63), 2**63 - 1).filter(bool)),
    st.builds(AnyValue, int_value=st.sampled_from([2**63 - 1, -(2**63), -1, 7])),
    st.builds(AnyValue, double_value=st.floats(allow_nan=False)),
)
_commonKeys = st.sampled_from(["user_id", "http.method", "é", 'a"b', "scope", "trace_id"]) | st.text(min_size=1, max_size=6)
_commonLogRecords = st.builds(
    LogRecord,
    time_unix_nano=st.sampled_from([0, 1_795_000_000_000_000_123, 2**64 - 1]),
    observed_time_unix_nano=st.sampled_from([0, 1_600_000_000_000_000_000]),
    severity_number=st.integers(0, 24),
    severity_text=st.sampled_from(["", "", "WARN"]),
    body=st.builds(AnyValue, string_value=st.text(max_size=8)),
    attributes=st.lists(st.builds(KeyValue, key=_commonKeys, value=_commonValues), max_size=4),
    trace_id=_ids,
    span_id=_ids,
    **({"event_name": st.sampled_from(["", "login", 'a"b', "é"])} if otlp._EVENT_NAME else {}),
)


@st.composite
def _commonRequests(draw: st.DrawFn) -> ExportLogsServiceRequest:
    """
    @return: export requests whose records are mostly of the shape the C
        loop reads itself, under resources with string attributes.
    """
    request = ExportLogsServiceRequest()
    for _ in range(draw(st.integers(1, 2))):
        resourceLogs = request.resource_logs.add()
        for key in draw(st.lists(st.sampled_from(["service.name", "host.name", "region", "user_id"]), unique=True)):
            resourceLogs.resource.attributes.add(key=key, value=AnyValue(string_value=draw(st.text(max_size=4))))
        scopeLogs = resourceLogs.scope_logs.add()
        scopeLogs.scope.name = draw(st.sampled_from(["", "app.db"]))
        scopeLogs.log_records.extend(draw(st.lists(_commonLogRecords, min_size=1, max_size=4)))
    return request


class FastPathTests(SynchronousTestCase):
    """
    The protobuf mapping's fast loops (L{otlp._mapLogRecords}, and its C
    version where C{logsvc._speedups} is built, with their templates kept
    across requests) store exactly the records the plain one-record mapping
    (L{otlp.logRecord}) makes.
    """

    def assertSameAsPlain(self, request: ExportLogsServiceRequest) -> None:
        """
        C{request} maps to the plain mapping's records through the C loop
        when it is built, and through the Python one.
        """
        data = request.SerializeToString()
        fast = otlp._fastRequest
        expected = plainRecords(request, PEER, RECEIVED)
        for version in {fast, None}:
            otlp._fastRequest = version
            try:
                for _ in range(2):  # templates computed, then remembered
                    batch = parseOTLPProtobuf(data, PEER, RECEIVED)
                    self.assertEqual((batch.records, batch.rejected), expected)
                    for record in batch.records:
                        self.assertIs(type(record), Record)
            finally:
                otlp._fastRequest = fast

    @settings(max_examples=300, deadline=None)
    @given(_requests())
    def test_sameRecords(self, request: ExportLogsServiceRequest) -> None:
        """Any request: the same records, in the same order, field text for field text."""
        self.assertSameAsPlain(request)

    @settings(max_examples=300, deadline=None)
    @given(_commonRequests())
    def test_sameRecordsCommonShapes(self, request: ExportLogsServiceRequest) -> None:
        """
        Requests of what SDKs send (string and integer attributes, severity
        numbers, string bodies, ids): the same records.
        """
        self.assertSameAsPlain(request)

    def mappedInPython(self, request: ExportLogsServiceRequest) -> list[LogRecord]:
        """
        @return: the log records of C{request} the C loop hands to the
            Python one, once it is known to map C{request} to the plain
            mapping's records.
        """
        module = requireSpeedups()
        handed: list[LogRecord] = []

        def pythonMap(scopes: list[Any], *rest: Any) -> None:
            handed.extend(log for logs, _, _ in scopes for log in logs)
            otlp._mapLogRecords(scopes, *rest)

        otlp._configureC(module, pythonMap)
        try:
            self.assertSameAsPlain(request)
            del handed[:]
            parseOTLPProtobuf(request.SerializeToString(), PEER, RECEIVED)
        finally:
            otlp._configureC(module)
        return handed

    def test_commonShapesInC(self) -> None:
        """
        The C loop maps what SDKs send itself: string and integer
        attributes (non-ASCII text, the extremes of int64), ids, severity
        numbers or none, string or absent bodies, event or observed times.
        """
        logs = [
            LogRecord(
                time_unix_nano=1_795_000_000_000_000_123,
                severity_number=17,
                body=AnyValue(string_value="GET / took 3 ms"),
                attributes=[
                    KeyValue(key="user_id", value=AnyValue(int_value=-(2**63))),
                    KeyValue(key="path", value=AnyValue(string_value="/é/😀\x7f")),
                    KeyValue(key="n", value=AnyValue(int_value=2**63 - 1)),
                ],
                trace_id=bytes(range(16)),
                span_id=b"\xff" * 8,
            ),
            LogRecord(observed_time_unix_nano=1_600_000_000_000_000_000),
            LogRecord(severity_number=1, attributes=[KeyValue(key="k", value=AnyValue(string_value="v"))]),
        ]
        if otlp._EVENT_NAME:
            logs.append(LogRecord(severity_number=24, event_name="login"))
        request = ExportLogsServiceRequest.FromString(
            exportRequest(*logs, resource={"service.name": "api", "host.name": "wé", "region": "eu"}, scope="lib")
        )
        self.assertEqual(self.mappedInPython(request), [])

    def test_otherShapesInPython(self) -> None:
        """
        The C loop hands the Python one each record of another shape, alone,
        and keeps the order: other values, keys of the scope's fields or
        repeated, a severity text or number beyond 1..24, a text needing an
        escape, a body of another kind.
        """
        common = LogRecord(severity_number=9, body=AnyValue(string_value="ok"))
        others = [
            LogRecord(attributes=[KeyValue(key="ratio", value=AnyValue(double_value=0.5))]),
            LogRecord(attributes=[KeyValue(key="empty", value=AnyValue(string_value=""))]),
            LogRecord(attributes=[KeyValue(key="zero", value=AnyValue(int_value=0))]),
            LogRecord(attributes=[KeyValue(key="region", value=AnyValue(string_value="eu-1"))]),
            LogRecord(attributes=[KeyValue(key="a", value=AnyValue(int_value=1)), KeyValue(key="a", value=AnyValue(int_value=2))]),
            LogRecord(attributes=[KeyValue(key="trace_id", value=AnyValue(int_value=1))], trace_id=b"\x01" * 16),
            LogRecord(attributes=[KeyValue(key="q", value=AnyValue(string_value='say "hi"'))]),
            LogRecord(attributes=[KeyValue(key="line\n", value=AnyValue(int_value=1))]),
            LogRecord(severity_text="WARN"),
            LogRecord(severity_number=99),  # type: ignore[arg-type]
            LogRecord(body=AnyValue(int_value=3)),
        ]
        logs = [log for other in others for log in (common, other)]
        request = ExportLogsServiceRequest.FromString(exportRequest(*logs, resource={"region": "eu"}))
        self.assertEqual(self.mappedInPython(request), others)

    def test_largeResource(self) -> None:
        """A resource too large to remember is read for each request, to the same records."""
        big = "x" * otlp.MEMO_RESOURCE_BYTES
        body = exportRequest(LogRecord(body=AnyValue(string_value="m")), resource={"service.name": "api", "note": big})
        before = len(otlp._TEMPLATES)
        [record] = parseOTLPProtobuf(body, PEER, RECEIVED).records
        self.assertEqual(len(otlp._TEMPLATES), before)
        self.assertEqual((record.service, fieldsOf(record)), ("api", {"note": big}))

    def test_peerNotRemembered(self) -> None:
        """A resource without host.name takes each request's peer, remembered or not."""
        body = exportRequest(LogRecord(), resource={"service.name": "api"})
        sources = [parseOTLPProtobuf(body, peer, RECEIVED).records[0].source for peer in ("192.0.2.1", "192.0.2.2")]
        self.assertEqual(sources, ["192.0.2.1", "192.0.2.2"])


class FuzzTests(SynchronousTestCase):
    """
    Whatever the bytes, the OTLP parsers return a batch of well-formed
    records or raise RecordError; nothing else escapes.
    """

    def check(self, parse: Any, data: bytes) -> None:
        try:
            batch = parse(data, PEER, RECEIVED)
        except RecordError:
            return
        for record in batch.records:
            self.assertIn(record.level, range(8))
            self.assertIsInstance(record.message, str)
            if record.fields is not None:
                self.assertIsInstance(orjson.loads(record.fields), dict)
        self.assertGreaterEqual(batch.rejected, 0)

    @settings(max_examples=150, deadline=None)
    @given(
        st.one_of(
            st.binary(max_size=200),
            st.builds(_mutated, st.just(_VALID_PROTOBUF), st.integers(0, 500), st.integers(0, 255), st.integers(0, 500)),
        )
    )
    def test_protobuf(self, data: bytes) -> None:
        """Random and mutated protobuf bodies give records or a RecordError."""
        self.check(parseOTLPProtobuf, data)

    @settings(max_examples=150, deadline=None)
    @given(
        st.one_of(
            st.binary(max_size=100),
            _anyJSON.map(orjson.dumps),
            st.lists(_logJSON, max_size=3).map(
                lambda logs: orjson.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": logs}]}]})
            ),
        )
    )
    def test_json(self, data: bytes) -> None:
        """Random JSON, and OTLP-shaped JSON with random values, give records or a RecordError."""
        self.check(parseOTLPJSON, data)
