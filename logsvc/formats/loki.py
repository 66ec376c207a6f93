"""
Loki's push API, JSON flavour: C{{"streams": [{"stream": {labels},
"values": [[ns-timestamp, line(, metadata)], ...]}]}}.

Labels map to the record where their usual names say so (the first present
wins, the rest stay in fields):

  - service: C{service_name}, C{service}, C{app}, C{job};
  - source: C{host}, C{hostname}, C{instance} (else the peer address);
  - level: C{level}, C{severity}, C{detected_level} (a value that is not a
    level stays in fields and the level is info);
  - every other label, and the entry's structured metadata, -> fields.
"""

from __future__ import annotations

from typing import Any

from logsvc.formats.jsonline import DocumentError, loadJSON
from logsvc.record import INFO, LEVEL_ALIASES, Record, RecordError, dumpFields, parseTimestamp

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
