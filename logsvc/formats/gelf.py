"""
GELF (Graylog Extended Log Format) 1.1 messages: one JSON object each.

  - message: C{short_message} (C{full_message} when there is no short one);
    C{full_message} otherwise goes to C{fields["full_message"]};
  - level: C{level}, a syslog severity number (absent: info, not the spec's
    alert: a message that says nothing should not page anyone; anything
    else: info, the value kept in C{fields["level"]});
  - source: C{host}; ts: C{timestamp} (epoch seconds with decimals);
  - service: the first of C{_service}, C{_app}, C{_application_name},
    C{_facility} and the deprecated C{facility};
  - additional fields C{_name} -> C{fields["name"]} (underscore dropped);
    other keys (C{line}, C{file}, ...) -> fields; C{version} is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from logsvc.formats import Rejection
from logsvc.formats.jsonline import DocumentError, JSONSyntaxError, loadJSON
from logsvc.record import Record, RecordError, dumpFields, keptLevel, parseTimestamp

SERVICE_KEYS = ("_service", "_app", "_application_name", "_facility", "facility")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value).decode("utf-8") if isinstance(value, (dict, list)) else str(value)


def isGelf(value: Any) -> bool:
    """
    @return: whether a decoded JSON value is a GELF message: an object with
        both C{version} and C{short_message} (what every GELF sender writes;
        a logsvc JSON record has neither).
    """
    return isinstance(value, dict) and "short_message" in value and "version" in value


def gelfRecord(message: Any, peer: str, received: int) -> Record:
    """
    Map one decoded GELF message to a record.

    @raise RecordError: when it is not an object, has no message, or has an
        invalid timestamp.
    """
    if not isinstance(message, dict):
        raise RecordError("GELF message must be a JSON object")
    obj = dict(message)
    obj.pop("version", None)
    short = obj.pop("short_message", None)
    full = obj.pop("full_message", None)
    if short is None or short == "":
        if full is None:
            raise RecordError("short_message: missing")
        short, full = full, None
    level = obj.pop("level", None)
    timestamp = obj.pop("timestamp", None)
    host = obj.pop("host", None)
    service = ""
    if not _SERVICE_KEY_SET.isdisjoint(obj):
        for key in SERVICE_KEYS:
            if key in obj:
                service = _text(obj.pop(key))
                break
    fields: dict[str, Any] = {}
    if full is not None:
        fields["full_message"] = _text(full)
    for key, value in obj.items():
        name = key[1:] if key.startswith("_") and len(key) > 1 else key
        fields.setdefault(name, value)
    # The common level (a syslog severity) without the general parser's
    # calls: the same value it gives.
    if type(level) is not int or not 0 <= level <= 7:
        if isinstance(level, float) and level.is_integer():
            level = int(level)
        if isinstance(level, int) and not isinstance(level, bool) and not 0 <= level <= 7:
            # GELF levels are syslog severities: never Python's 10..50.
            fields["level"] = level
            level = None
        level = keptLevel(level, fields)
    ts = received if timestamp is None else parseTimestamp(timestamp, "timestamp")
    return _newRecord(
        Record,
        (
            ts,
            received,
            level,
            peer if host is None or host == "" else _text(host),
            service,
            _text(short),
            dumpFields(fields),
        ),
    )


_SERVICE_KEY_SET = frozenset(SERVICE_KEYS)
_newRecord = tuple.__new__


def parseGelfBody(data: bytes, peer: str, received: int) -> list[Record]:
    """
    Parse a GELF HTTP body: one message, a JSON array of them, or one per line.

    @raise DocumentError: for the first invalid message, with its index.
    @raise JSONSyntaxError: for a body that is not JSON.
    """
    try:
        value = loadJSON(data)
        items = value if isinstance(value, list) else [value]
    except JSONSyntaxError:
        if b"\n" not in data.strip():
            raise
        items = []
        for number, line in enumerate(data.split(b"\n"), 1):
            if line.strip():
                try:
                    items.append(loadJSON(line))
                except JSONSyntaxError as e:
                    raise DocumentError(f"line {number}: {e}", len(items)) from None
    records = []
    for index, item in enumerate(items):
        try:
            records.append(gelfRecord(item, peer, received))
        except RecordError as e:
            raise DocumentError(str(e), index) from None
    return records


def parseGelfFrames(
    frames: Sequence[bytes], peer: str, received: int
) -> tuple[list[Record], list[Rejection]]:
    """
    Parse GELF TCP frames (NUL-delimited JSON); blank frames are skipped.

    @return: the records, and the frames rejected with their reasons.
    """
    records: list[Record] = []
    rejected: list[Rejection] = []
    for frame in frames:
        if not frame.strip():
            continue
        try:
            records.append(gelfRecord(loadJSON(frame), peer, received))
        except RecordError as e:
            rejected.append((frame, str(e)))
    return records, rejected
