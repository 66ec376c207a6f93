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

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

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
    Map one decoded GELF message to a record.  C{message} is not changed.

    @raise RecordError: when it is not an object, has no message, or has an
        invalid timestamp.
    """
    if type(message) is dict:
        record = _commonRecord(message, peer, received)
        if record is not None:
            return record
    return _generalRecord(message, peer, received)


class _Shape(NamedTuple):
    """
    How L{_commonRecord} maps the messages whose keys are one sequence.

    @ivar standard: the values of C{short_message}, C{level}, C{timestamp},
        C{host} and the service key (C{short_message} again when there is
        none).
    @ivar hasService: whether there is a service key.
    @ivar hasFull: whether there is a C{full_message} (a field, placed first).
    @ivar fields: the other fields of a message, a new dict in the keys'
        order.
    """

    standard: Callable[[dict[str, Any]], tuple[Any, ...]]
    hasService: bool
    hasFull: bool
    fields: Callable[[dict[str, Any]], dict[str, Any]]


def _shape(keys: tuple[str, ...]) -> _Shape | None:
    """
    @return: how to map the messages with C{keys}, or L{None} when
        L{_commonRecord} does not map them: without one of C{short_message},
        C{level}, C{timestamp} and C{host}; or with two keys that name one
        field (C{_x} and C{x}, C{full_message} and C{_full_message}: the
        general way keeps the first).
    """
    if not _COMMON_KEYS.issubset(keys):
        return None
    hasFull = "full_message" in keys
    service = next((key for key in SERVICE_KEYS if key in keys), None)
    notFields = _STANDARD_KEYS if service is None else _STANDARD_KEYS | {service}
    fieldKeys = [key for key in keys if key not in notFields]
    fieldNames = [key[1:] if key.startswith("_") and len(key) > 1 else key for key in fieldKeys]
    if len(set(fieldNames)) < len(fieldNames) or (hasFull and "full_message" in fieldNames):
        return None
    return _Shape(
        itemgetter("short_message", "level", "timestamp", "host", service or "short_message"),
        service is not None,
        hasFull,
        _fieldsOf(fieldKeys, fieldNames),
    )


def _fieldsOf(keys: list[str], names: list[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """
    @return: a function giving a new dict of a message's values of C{keys},
        each under its name in C{names}.
    """
    if len(keys) > 1:
        pairs = list(zip(keys, names, strict=True))
        return lambda message: {name: message[key] for key, name in pairs}
    if keys:
        # The cheapest way for the commonest number of fields.
        (key,), (name,) = keys, names
        return lambda message: {name: message[key]}
    return lambda message: {}


_COMMON_KEYS = frozenset(("short_message", "level", "timestamp", "host"))
#: The keys that are not fields (but a service key).
_STANDARD_KEYS = frozenset(("version", "short_message", "full_message", "level", "timestamp", "host"))
#: The shapes of the messages seen, by their keys: a sender writes few.
_SHAPES: dict[tuple[str, ...], _Shape | None] = {}
#: The most shapes kept (then forgotten all at once), of at most this many
#: keys of at most this many characters: a hostile sender's keys cost
#: memory only that far (about 20 MB, measured with every shape at its
#: largest).
_MOST_SHAPES = 1024
_MOST_SHAPE_KEYS = 64
_MOST_KEY_LENGTH = 64


def _commonRecord(message: dict[str, Any], peer: str, received: int) -> Record | None:
    """
    L{_generalRecord}'s record for the message nearly every sender writes
    (graypy, Docker's gelf driver): a non-empty C{short_message} and
    C{host}, a syslog severity as C{level}, epoch seconds as C{timestamp},
    a string service if any; with the keys' roles
    worked out once for each sequence of keys (L{_Shape}), as this runs for
    every GELF datagram on the reactor thread.

    @return: the record, or L{None} for any other message (for the general
        way to map, or refuse).
    """
    keys = tuple(message)
    shape = _SHAPES.get(keys, _UNKNOWN)
    if shape is _UNKNOWN:
        if len(keys) > _MOST_SHAPE_KEYS or max(map(len, keys), default=0) > _MOST_KEY_LENGTH:
            return None
        if len(_SHAPES) >= _MOST_SHAPES:
            _SHAPES.clear()
        shape = _SHAPES[keys] = _shape(keys)
    if shape is None:
        return None
    short, level, timestamp, host, service = shape.standard(message)
    if (
        type(short) is not str
        or not short
        or type(level) is not int
        or not 0 <= level <= 7
        or (type(timestamp) is not float and type(timestamp) is not int)
        or not 0 <= timestamp < 1e11
        or type(host) is not str
        or not host
    ):
        return None
    if not shape.hasService:
        service = ""
    elif type(service) is not str:
        return None
    fields = shape.fields(message)
    if shape.hasFull:
        full = message["full_message"]
        if full is not None:
            fields = {"full_message": _text(full), **fields}
    return _newRecord(
        Record,
        (
            # What parseTimestamp gives epoch seconds after 1970 (an int).
            round(timestamp * 1_000_000),
            received,
            level,
            host,
            service,
            short,
            dumpFields(fields),
        ),
    )


_UNKNOWN: Any = object()


def _generalRecord(message: Any, peer: str, received: int) -> Record:
    """
    L{gelfRecord}, for every message.
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
