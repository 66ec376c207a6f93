# -*- test-case-name: tests.test_formats_otlp -*-
"""
OpenTelemetry logs (OTLP): an C{ExportLogsServiceRequest}, as protobuf bytes
(OTLP/HTTP C{application/x-protobuf}, OTLP/gRPC) or in OTLP's JSON encoding,
decoded by the maintained bindings (C{opentelemetry-proto}, the extra
C{logsvc[otlp]}).

Mapping of one C{LogRecord}, with its resource and scope:

  - message: C{body} (a string as is; any other value rendered as JSON;
    absent: C{""});
  - level: C{severity_number} (1-8 trace and debug: debug, 9-12 info,
    13-16 warning, 17-20 error, 21-24 critical), else C{severity_text} read
    as any level name (a name that is no level: info, the text kept in
    C{fields["level"]});
  - ts: C{time_unix_nano}, else C{observed_time_unix_nano}, else the
    receive time;
  - service: the resource's C{service.name}; source: the resource's
    C{host.name}, else the peer address;
  - fields: the record's attributes, the resource's other attributes
    (a record attribute wins over a resource attribute of the same name),
    C{scope} (the instrumentation scope's name), C{trace_id} and C{span_id}
    (lowercase hex), C{event_name}.

A value that is not a string is kept as its JSON value: kvlists become
objects, arrays lists, bytes base64 text.

In the JSON encoding each log record is decoded on its own: one malformed
record is refused (counted in the result, with its reason) and its
neighbours are kept.  A body that is not a request at all is an error.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import orjson
from google.protobuf.json_format import ParseDict, ParseError
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from logsvc import speedups
from logsvc.formats.jsonline import loadJSON
from logsvc.record import INFO, Record, RecordError, dumpFields, keptLevel
from logsvc.times import Memo

__all__ = [
    "OTLPBatch",
    "anyValue",
    "exportResponse",
    "parseOTLPJSON",
    "parseOTLPProtobuf",
    "requestRecords",
    "severityLevel",
]

#: severity_number // 4 (after subtracting 1) -> syslog severity: 1-4 trace
#: and 5-8 debug are debug, 9-12 info, 13-16 warning, 17-20 error, 21-24
#: critical (fatal).
_SEVERITIES = (7, 7, 6, 4, 3, 2)


@dataclass(slots=True)
class OTLPBatch:
    """
    The records of one export request.

    @ivar records: the records to store, in request order.
    @ivar rejected: how many log records were refused.
    @ivar reason: why the first refused one was, C{""} when none was.
    """

    records: list[Record] = field(default_factory=list)
    rejected: int = 0
    reason: str = ""

    def refuse(self, reason: str) -> None:
        self.rejected += 1
        if not self.reason:
            self.reason = reason


#: AnyValue kinds whose Python value is the field itself.
_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value"})


def anyValue(value: AnyValue) -> Any:
    """
    @return: an C{AnyValue} as a JSON-able Python value (L{None} when unset).
    """
    kind = value.WhichOneof("value")
    if kind in _SCALARS:
        return getattr(value, kind)
    if kind == "kvlist_value":
        return attributeDict(value.kvlist_value.values)
    if kind == "array_value":
        return [anyValue(item) for item in value.array_value.values]
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def attributeDict(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    """
    @return: key-value pairs as a dict (a repeated key: the last wins).
    """
    return {kv.key: anyValue(kv.value) for kv in attributes}


def severityLevel(number: int, text: str, fields: dict[str, Any]) -> int:
    """
    @return: the syslog severity of an OTLP severity: C{number} when it is
        1..24, else C{text} read as a level name (see
        L{logsvc.record.keptLevel}: a text that is no level is kept in
        C{fields["level"]}); info when both are unset.
    """
    if 1 <= number <= 24:
        return _SEVERITIES[(number - 1) // 4]
    if text:
        return keptLevel(text, fields)
    if number:
        fields["level"] = number
    return INFO


class _ScopeTemplate:
    """
    What every record of one resource and scope shares: service, the
    resource's C{host.name} (C{""} when it names none: the records' source
    is then the peer), the fields, and those fields as JSON text (what a
    record without attributes or ids of its own stores).  Never changed once
    made: templates are shared by every request that sends the same
    resource and scope (L{_TEMPLATES}).
    """

    __slots__ = ("host", "service", "fields", "fieldsText")

    def __init__(self, resource: Resource, scopeName: str) -> None:
        fields = attributeDict(resource.attributes)
        service = fields.pop("service.name", "")
        host = fields.pop("host.name", None)
        self.service = service if isinstance(service, str) else orjson.dumps(service).decode("utf-8")
        self.host = host if isinstance(host, str) else ""
        if scopeName:
            fields["scope"] = scopeName
        self.fields = fields
        self.fieldsText = dumpFields(fields)


def _templateOf(key: tuple[bytes, str]) -> _ScopeTemplate:
    resource, scopeName = key
    return _ScopeTemplate(Resource.FromString(resource), scopeName)


#: Resources up to this many bytes (serialized) have their templates kept in
#: L{_TEMPLATES}; a larger one is read for each request that sends it.
MEMO_RESOURCE_BYTES = 2048

#: Templates by serialized resource and scope name: an SDK or a Collector
#: sends the same few resources in every request, so each is read once
#: (about 6 us per resource, the tenth of a record's mapping when resources
#: hold ten records each).  At most 512 resources of at most 2 KiB: 1 MiB.
#: gRPC's threads share it with the reactor's: a template never changes,
#: and two threads missing the same key at once only compute it twice.
_TEMPLATES: Memo[tuple[bytes, str], _ScopeTemplate] = Memo(_templateOf, limit=512)


#: event_name is new in OTLP 1.5 (opentelemetry-proto 1.33); older bindings
#: lack it.
_EVENT_NAME = "event_name" in LogRecord.DESCRIPTOR.fields_by_name

#: The level of each severity_number 0..24 (L{None} for 0, unset).
_LEVEL_OF_NUMBER: tuple[int | None, ...] = (None, *(_SEVERITIES[(n - 1) >> 2] for n in range(1, 25)))

_new = tuple.__new__


def logRecord(log: LogRecord, template: _ScopeTemplate, source: str, received: int) -> Record:
    """
    Map one log record (see the module docstring), plainly: what
    L{_mapLogRecords} does faster for a protobuf request, and what the JSON
    encoding uses.

    @param source: the records' source (the template's host, else the peer).
    @raise RecordError: when its fields cannot be stored as JSON.
    """
    fields = {**template.fields, **attributeDict(log.attributes)}
    if log.trace_id:
        fields["trace_id"] = log.trace_id.hex()
    if log.span_id:
        fields["span_id"] = log.span_id.hex()
    if _EVENT_NAME and log.event_name:
        fields["event_name"] = log.event_name
    level = severityLevel(log.severity_number, log.severity_text, fields)
    body = anyValue(log.body)
    message = "" if body is None else body if isinstance(body, str) else orjson.dumps(body).decode("utf-8")
    nanos = log.time_unix_nano or log.observed_time_unix_nano
    # fixed64 nanoseconds: up to the year 2554, always a time the store
    # takes, so no range check (nanosToMicros).
    return Record(nanos // 1000 if nanos else received, received, level, source, template.service, message, dumpFields(fields))


#: The log records of one scope, what they share, and their source.
_Scope = tuple[list[LogRecord], _ScopeTemplate, str]


def _mapLogRecords(
    scopes: Iterable[_Scope],
    received: int,
    append: Callable[[Record], object],
    refuse: Callable[[str], object],
) -> None:
    """
    Map the log records of each scope, appending each record and calling
    C{refuse(reason)} for each one whose fields cannot be stored as JSON:
    the records L{logRecord} makes, at about 60% of its cost.

    This loop is the cost of OTLP ingest: every read of a decoded protobuf
    message creates a wrapper object (upb, about 0.15 us each), so each
    field is read once, the common case takes the fewest reads (a string
    body read without asking its kind, an attribute's string or integer
    value before its kind, a lone attribute without a list), and what a
    scope's records share is looked up once per scope, in one call for
    the whole request (scopes often hold ten records or fewer).
    """
    levelOf = _LEVEL_OF_NUMBER
    eventNames = _EVENT_NAME
    dumps = orjson.dumps
    for logs, template, source in scopes:
        service = template.service
        baseFields = template.fields
        baseText = template.fieldsText
        for log in logs:
            try:
                attributes = log.attributes
                count = len(attributes)
                traceID = log.trace_id
                spanID = log.span_id
                eventName = log.event_name if eventNames else ""
                fields: dict[str, Any] | None = None
                if count or traceID or spanID or eventName:
                    fields = baseFields.copy()
                    # A non-empty string or a non-zero integer is what the
                    # value's oneof holds, read without asking its kind;
                    # anything else (an empty string, a zero, another kind,
                    # none) is asked.
                    if count == 1:
                        # A lone attribute is read without a list or a loop.
                        kv = attributes[0]
                        value = kv.value
                        fields[kv.key] = value.string_value or value.int_value or anyValue(value)
                    elif count:
                        # A slice (a list): iterating the container itself
                        # ends by raising IndexError, which costs more than
                        # the copy.
                        for kv in attributes[:]:
                            value = kv.value
                            fields[kv.key] = value.string_value or value.int_value or anyValue(value)
                    if traceID:
                        fields["trace_id"] = traceID.hex()
                    if spanID:
                        fields["span_id"] = spanID.hex()
                    if eventName:
                        fields["event_name"] = eventName
                number = log.severity_number
                level = levelOf[number] if 0 <= number <= 24 else None
                if level is None:
                    kept: dict[str, Any] = {}
                    level = severityLevel(number, log.severity_text, kept)
                    if kept:
                        fields = baseFields.copy() if fields is None else fields
                        fields.update(kept)
                body = log.body
                message = body.string_value
                if not message:
                    kind = body.WhichOneof("value")
                    if kind is not None and kind != "string_value":
                        value = anyValue(body)
                        message = value if isinstance(value, str) else orjson.dumps(value).decode("utf-8")
                nanos = log.time_unix_nano or log.observed_time_unix_nano
                # tuple.__new__ skips NamedTuple's Python-level __new__ (as
                # record.py does).
                append(
                    _new(
                        Record,
                        (
                            nanos // 1000 if nanos else received,
                            received,
                            level,
                            source,
                            service,
                            message,
                            baseText if fields is None else dumps(fields).decode(),
                        ),
                    )
                )
            except TypeError:
                # orjson refused the fields (nesting past its limit): the
                # plain path says why.
                try:
                    append(logRecord(log, template, source, received))
                except RecordError as e:
                    refuse(str(e))
            except RecordError as e:
                refuse(str(e))


#: L{requestRecords}' mapping in C, appending to a list, where the optional
#: C module C{logsvc._speedups} is built: the records of the common shape
#: (string or integer attributes under keys of their own, a severity
#: number, a string body) at about two thirds of the Python loop's cost
#: (what is left is mostly the bindings' wrapper objects, made for each
#: field read as in Python), each other record handed alone to
#: L{_mapLogRecords}; L{None} where it is not built.
_fastRequest: Callable[[ExportLogsServiceRequest, str, int, list[Record], Callable[[str], object]], None] | None = None


def _configureC(module: ModuleType, pythonMap: Callable[..., None] = _mapLogRecords) -> None:
    """
    Give the C version (C{module}, L{logsvc.speedups.module}) what it reads
    from this module: the record type, the severity table, the templates
    and their memo, and C{pythonMap}, what it hands the records of another
    shape to (L{_mapLogRecords}, or a test's probe).
    """
    module.configureOTLP(Record, _LEVEL_OF_NUMBER, _EVENT_NAME, pythonMap, _TEMPLATES, MEMO_RESOURCE_BYTES, _ScopeTemplate)


if speedups.module is not None:
    _configureC(speedups.module)
    _fastRequest = speedups.module.mapRequest


def requestRecords(request: ExportLogsServiceRequest, peer: str, received: int) -> OTLPBatch:
    """
    Map every log record of a decoded request (the gRPC service's entry).

    @param peer: the sender's address, the source when a resource names no
        C{host.name}.
    @param received: receive time in microseconds.
    """
    batch = OTLPBatch()
    if _fastRequest is not None:
        _fastRequest(request, peer, received, batch.records, batch.refuse)
        return batch
    append = batch.records.append
    refuse = batch.refuse
    templates = _TEMPLATES
    scopes: list[_Scope] = []
    for resourceLogs in request.resource_logs[:]:
        resource = resourceLogs.resource
        key = resource.SerializeToString()
        memo = len(key) <= MEMO_RESOURCE_BYTES
        for scopeLogs in resourceLogs.scope_logs[:]:
            scopeName = scopeLogs.scope.name
            template = templates[key, scopeName] if memo else _ScopeTemplate(resource, scopeName)
            scopes.append((scopeLogs.log_records[:], template, template.host or peer))
    _mapLogRecords(scopes, received, append, refuse)
    return batch


def parseOTLPProtobuf(data: bytes, peer: str, received: int) -> OTLPBatch:
    """
    Decode a protobuf C{ExportLogsServiceRequest} and map its records.

    @raise RecordError: when C{data} is not one (truncated, malformed, or
        nested deeper than protobuf's recursion limit).
    """
    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(data)
    except (DecodeError, RecursionError) as e:
        raise RecordError(f"invalid OTLP protobuf body: {e or 'cannot decode'}") from None
    return requestRecords(request, peer, received)


def _hexIDs(record: dict[str, Any]) -> dict[str, Any]:
    """
    OTLP JSON writes trace and span ids as hex, where protobuf's JSON mapping
    (which L{ParseDict} reads) wants base64: convert them.

    @raise RecordError: for an id that is not hex.
    """
    for key in ("traceId", "trace_id", "spanId", "span_id"):
        value = record.get(key)
        if isinstance(value, str) and value:
            try:
                record[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            except ValueError:
                raise RecordError(f"{key}: not hex: {value[:64]!r}") from None
    return record


def _parsed(value: Any, message: Any, where: str) -> Any:
    """
    Decode one JSON object of the request into a protobuf C{message}.

    @raise RecordError: naming C{where} when it is not one.
    """
    if value is None:
        return message
    if not isinstance(value, dict):
        raise RecordError(f"{where}: must be an object")
    try:
        return ParseDict(value, message, ignore_unknown_fields=True)
    except (ParseError, RecursionError, ValueError, TypeError) as e:
        raise RecordError(f"{where}: {e}") from None


def _objects(parent: dict[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = parent.get(camel, parent.get(snake, []))
    if not isinstance(value, list):
        raise RecordError(f"{where}.{camel}: must be an array")
    return value


def _placed(reason: str, where: str) -> str:
    """
    @return: C{reason} prefixed with C{where} unless it already names it.
    """
    return reason if reason.startswith(where) else f"{where}: {reason}"


def parseOTLPJSON(data: bytes, peer: str, received: int) -> OTLPBatch:
    """
    Decode an C{ExportLogsServiceRequest} in OTLP's JSON encoding (lowerCamelCase
    keys, hex ids, 64-bit integers as strings or numbers) and map its records.
    Each log record is decoded on its own: a malformed one is refused in the
    result, its neighbours kept.

    @raise RecordError: when the body is not JSON, not an object with a
        C{resourceLogs} array, or a resource or scope is malformed.
    """
    body = loadJSON(data)
    if not isinstance(body, dict):
        raise RecordError('body must be an object with a "resourceLogs" array')
    batch = OTLPBatch()
    append = batch.records.append
    for r, resourceLogs in enumerate(_objects(body, "resourceLogs", "resource_logs", "body")):
        where = f"resourceLogs[{r}]"
        if not isinstance(resourceLogs, dict):
            raise RecordError(f"{where}: must be an object")
        resource = _parsed(resourceLogs.get("resource"), Resource(), f"{where}.resource")
        for s, scopeLogs in enumerate(_objects(resourceLogs, "scopeLogs", "scope_logs", where)):
            scopeWhere = f"{where}.scopeLogs[{s}]"
            if not isinstance(scopeLogs, dict):
                raise RecordError(f"{scopeWhere}: must be an object")
            scope = _parsed(scopeLogs.get("scope"), InstrumentationScope(), f"{scopeWhere}.scope")
            template = _ScopeTemplate(resource, scope.name)
            source = template.host or peer
            for n, item in enumerate(_objects(scopeLogs, "logRecords", "log_records", scopeWhere)):
                logWhere = f"{scopeWhere}.logRecords[{n}]"
                try:
                    if not isinstance(item, dict):
                        raise RecordError("must be an object")
                    log = _parsed(_hexIDs(item), LogRecord(), logWhere)
                    append(logRecord(log, template, source, received))
                except RecordError as e:
                    batch.refuse(_placed(str(e), logWhere))
    return batch


def exportResponse(batch: OTLPBatch) -> ExportLogsServiceResponse:
    """
    @return: the response to an export once its records are durable:
        empty, or with C{partial_success} counting the refused records and
        naming the first reason.
    """
    response = ExportLogsServiceResponse()
    if batch.rejected:
        response.partial_success.rejected_log_records = batch.rejected
        response.partial_success.error_message = (
            f"{batch.rejected} log record(s) refused; first: {batch.reason}"
        )
    return response
