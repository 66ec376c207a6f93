"""
Loki's push API: the JSON flavour, C{{"streams": [{"stream": {labels},
"values": [[ns-timestamp, line(, metadata)], ...]}]}}, and the protobuf
flavour (Promtail's and Alloy's default), a C{PushRequest} whose streams
carry their labels as one string C{{k="v", ...}} and entries with a
timestamp, a line and structured metadata.  Both map alike.

Labels map to the record where their usual names say so (the first present
wins, the rest stay in fields):

  - service: C{service_name}, C{service}, C{app}, C{job};
  - source: C{host}, C{hostname}, C{instance} (else the peer address);
  - level: C{level}, C{severity}, C{detected_level} (a value that is not a
    level stays in fields and the level is info);
  - every other label, and the entry's structured metadata, -> fields.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from logsvc.formats.jsonline import DocumentError, loadJSON
from logsvc.record import (
    INFO,
    LEVEL_ALIASES,
    Memo,
    Record,
    RecordError,
    dumpFields,
    nanosToMicros,
    parseTimestamp,
)

SERVICE_LABELS = ("service_name", "service", "app", "job")
SOURCE_LABELS = ("host", "hostname", "instance")
LEVEL_LABELS = ("level", "severity", "detected_level")


def _first(labels: dict[str, Any], names: tuple[str, ...]) -> tuple[str | None, Any]:
    for name in names:
        value = labels.get(name)
        if isinstance(value, str) and value:
            return name, value
    return None, None


def _streamTemplate(labels: dict[str, Any], peer: str) -> tuple[int, str, str, dict[str, Any]]:
    """
    @return: level, source, service and the remaining labels of a stream.
    """
    rest = dict(labels)
    name, service = _first(rest, SERVICE_LABELS)
    if name is not None:
        del rest[name]
    name, source = _first(rest, SOURCE_LABELS)
    if name is not None:
        del rest[name]
    level = INFO
    for name in LEVEL_LABELS:
        value = rest.get(name)
        if isinstance(value, str):
            found = LEVEL_ALIASES.get(value.strip().lower())
            if found is not None:
                level = found
                del rest[name]
                break
    return level, source or peer, service or "", rest


def _timestamp(value: Any) -> int:
    """
    Loki timestamps are nanoseconds since the epoch, as a string (or number).
    """
    if isinstance(value, str) and value.strip().isdigit():
        # Exact integer arithmetic: a float would lose the microseconds.
        value = int(value)
    return parseTimestamp(value, "ts")


def parseLokiPush(data: bytes, peer: str, received: int) -> list[Record]:
    """
    Parse a Loki JSON push body.

    @raise DocumentError: for the first invalid stream or entry; C{index} is
        the entry's position counted over all streams, and the message names
        the stream and value.
    @raise RecordError: when the body is not a push request at all.
    """
    body = loadJSON(data)
    if not isinstance(body, dict) or not isinstance(body.get("streams"), list):
        raise RecordError('body must be an object with a "streams" array')
    records: list[Record] = []
    for s, stream in enumerate(body["streams"]):
        if not isinstance(stream, dict):
            raise DocumentError(f"streams[{s}]: must be an object", len(records))
        labels = stream.get("stream", {})
        values = stream.get("values")
        if not isinstance(labels, dict) or not isinstance(values, list):
            raise DocumentError(
                f'streams[{s}]: needs a "stream" object and a "values" array', len(records)
            )
        level, source, service, rest = _streamTemplate(labels, peer)
        for v, entry in enumerate(values):
            where = f"streams[{s}].values[{v}]"
            if not isinstance(entry, list) or len(entry) not in (2, 3) or not isinstance(entry[1], str):
                raise DocumentError(f"{where}: must be [timestamp, line] or [timestamp, line, metadata]", len(records))
            try:
                ts = _timestamp(entry[0])
            except RecordError as e:
                raise DocumentError(f"{where}: {e}", len(records)) from None
            fields = rest
            if len(entry) == 3:
                metadata = entry[2]
                if not isinstance(metadata, dict):
                    raise DocumentError(f"{where}: metadata must be an object", len(records))
                if metadata:
                    fields = {**rest, **metadata}
            records.append(Record(ts, received, level, source, service, entry[1], dumpFields(fields)))
    return records


# The protobuf flavour.  Loki publishes PushRequest only as a .proto file
# (pkg/push/push.proto, no Python bindings on PyPI), so its few messages are
# described here, field numbers as published, and decoded by protobuf's
# runtime (imported on first use: it is the extra logsvc[loki]).


@cache
def pushRequestClass() -> Any:
    """
    @return: the message class of Loki's C{logproto.PushRequest}, built from
        a descriptor in a pool of its own.
    @raise ImportError: when the protobuf runtime is not installed.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

    proto = descriptor_pb2.FieldDescriptorProto
    optional, repeated = proto.LABEL_OPTIONAL, proto.LABEL_REPEATED
    string, uint64, message = proto.TYPE_STRING, proto.TYPE_UINT64, proto.TYPE_MESSAGE
    file = descriptor_pb2.FileDescriptorProto(
        name="logsvc/loki_push.proto",
        package="logproto",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )

    def define(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        described = file.message_type.add(name=name)
        for fieldName, number, label, kind, typeName in fields:
            added = described.field.add(name=fieldName, number=number, label=label, type=kind)
            if typeName:
                added.type_name = typeName

    define(
        "PushRequest",
        ("streams", 1, repeated, message, ".logproto.StreamAdapter"),
        ("format", 2, optional, string, ""),
    )
    define(
        "StreamAdapter",
        ("labels", 1, optional, string, ""),
        ("entries", 2, repeated, message, ".logproto.EntryAdapter"),
        ("hash", 3, optional, uint64, ""),
    )
    define("LabelPairAdapter", ("name", 1, optional, string, ""), ("value", 2, optional, string, ""))
    define(
        "EntryAdapter",
        ("timestamp", 1, optional, message, ".google.protobuf.Timestamp"),
        ("line", 2, optional, string, ""),
        ("structuredMetadata", 3, repeated, message, ".logproto.LabelPairAdapter"),
        ("parsed", 4, repeated, message, ".logproto.LabelPairAdapter"),
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("logproto.PushRequest"))


# name="value" pairs as Prometheus writes label sets: \\, \" and \n escapes.
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)', re.DOTALL)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _unescape(match: re.Match[str]) -> str:
    char = match.group(1)
    return "\n" if char == "n" else char


def parseLabels(text: str) -> dict[str, str]:
    """
    Parse a stream's label set as Loki's protobuf push writes it:
    C{{app="api", host="web1"}} (Prometheus syntax).

    @raise RecordError: when C{text} is not one.
    """
    inner = text.strip()
    if not (inner.startswith("{") and inner.endswith("}")):
        raise RecordError(f"labels must be {{name=\"value\", ...}}, not {text[:80]!r}")
    inner = inner[1:-1]
    labels: dict[str, str] = {}
    position = 0
    while position < len(inner) and not inner[position:].isspace():
        match = _LABEL.match(inner, position)
        if match is None:
            raise RecordError(f"labels: cannot parse {text[:80]!r} at offset {position + 1}")
        value = match.group(2)
        labels[match.group(1)] = _UNESCAPE.sub(_unescape, value) if "\\" in value else value
        position = match.end()
        if not match.group(3):
            break
    return labels


def parseLokiProtobuf(data: bytes, peer: str, received: int) -> list[Record]:
    """
    Parse a Loki protobuf push, already snappy-decompressed.  Entries map as
    in L{parseLokiPush}; an entry without a timestamp takes the receive time.

    @raise DocumentError: for a stream whose labels do not parse or an entry
        whose time is out of range, with the entry's index counted over all
        streams, all or nothing as for JSON pushes.
    @raise RecordError: when C{data} is not a C{PushRequest}.
    @raise ImportError: when the protobuf runtime is not installed.
    """
    from google.protobuf.message import DecodeError

    request = pushRequestClass()()
    try:
        request.ParseFromString(data)
    except (DecodeError, RecursionError) as e:
        raise RecordError(f"invalid Loki protobuf push: {e or 'cannot decode'}") from None
    records: list[Record] = []
    append = records.append
    new = tuple.__new__
    for s, stream in enumerate(request.streams):
        try:
            level, source, service, rest, restFields = _PROTOBUF_STREAMS[stream.labels, peer]
        except RecordError as error:
            raise DocumentError(f"streams[{s}]: {error}", len(records)) from None
        for n, entry in enumerate(stream.entries):
            ts = received
            if entry.HasField("timestamp"):
                stamp = entry.timestamp
                try:
                    ts = nanosToMicros(stamp.seconds * 1_000_000_000 + stamp.nanos)
                except RecordError as error:
                    raise DocumentError(f"streams[{s}].entries[{n}]: {error}", len(records)) from None
            fields = restFields
            metadata = entry.structuredMetadata
            if metadata:
                fields = dumpFields({**rest, **{pair.name: pair.value for pair in metadata}})
            append(new(Record, (ts, received, level, source, service, entry.line, fields)))
    return records


def _protobufStream(key: tuple[str, str]) -> tuple[int, str, str, dict[str, Any], str | None]:
    """
    @return: what every entry of a protobuf stream with these labels, from
        this peer, shares: level, source, service, the other labels and
        their fields text.
    @raise RecordError: when the labels do not parse.
    """
    labels, peer = key
    level, source, service, rest = _streamTemplate(parseLabels(labels), peer)
    return level, source, service, rest, dumpFields(rest)


#: Label texts seen lately, by peer: Promtail sends the same few streams in
#: every push, so their labels are parsed once.
_PROTOBUF_STREAMS: Memo[tuple[str, str], tuple[int, str, str, dict[str, Any], str | None]] = Memo(_protobufStream)
