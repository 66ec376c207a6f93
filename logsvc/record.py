"""
The one record model: L{Record}, severity levels and their aliases, timestamps.

Every ingest format ends in L{Record}; every reader renders stored rows with
L{renderRow}.  Times are integers: microseconds since the Unix epoch, UTC.
Levels are syslog severities: 0 (emergency) is the worst, 7 (debug) the mildest,
so "that severity or worse" is C{level <= n}.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from math import isfinite
from typing import Any, NamedTuple

import orjson

from logsvc.times import Memo, datetimeToMicros

LEVEL_NAMES: tuple[str, ...] = (
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
)

INFO = 6

#: Every accepted spelling of a level (lower-cased) -> syslog severity.
LEVEL_ALIASES: dict[str, int] = {name: n for n, name in enumerate(LEVEL_NAMES)}
LEVEL_ALIASES.update(
    {
        "emerg": 0,
        "panic": 0,
        "crit": 2,
        "fatal": 2,
        "err": 3,
        "warn": 4,
        "informational": 6,
        "information": 6,
        "trace": 7,
        "notset": 7,
    }
)
LEVEL_ALIASES.update({str(n): n for n in range(8)})

#: A numeric scale for integer levels above 7: (threshold, severity), the
#: highest threshold first; a level takes the severity of the first threshold
#: it reaches.
NumericScale = tuple[tuple[int, int], ...]

#: Python logging's numeric levels (10 DEBUG, 20 INFO, 30 WARNING, 40 ERROR,
#: 50 CRITICAL).
PYTHON_SCALE: NumericScale = ((50, 2), (40, 3), (30, 4), (20, 6), (0, 7))

#: pino's and bunyan's numeric levels (10 trace, 20 debug, 30 info, 40 warn,
#: 50 error, 60 fatal): 30 is info here, where Python's 30 is a warning.
PINO_SCALE: NumericScale = ((60, 2), (50, 3), (40, 4), (30, 6), (0, 7))


class RecordError(ValueError):
    """
    A record could not be normalized.  C{str(error)} names the problem and the
    offending key, e.g. C{"ts: cannot parse 'yesterday'"}.
    """


class Record(NamedTuple):
    """
    A normalized log record, as stored (before the store assigns its id).

    @ivar ts: event time, microseconds since the epoch (UTC).
    @ivar received: receive time, microseconds since the epoch (UTC).
    @ivar level: syslog severity 0..7.
    @ivar source: producing host, else the peer address.
    @ivar service: app / program / logger name, C{""} when unknown.
    @ivar message: the message text.
    @ivar fields: every other key as a JSON object text, or L{None} when empty.
    """

    ts: int
    received: int
    level: int
    source: str
    service: str
    message: str
    fields: str | None


def _newRecord(values: tuple[Any, ...]) -> Record:
    # tuple.__new__ skips NamedTuple's Python-level __new__: twice as fast.
    return tuple.__new__(Record, values)  # type: ignore[type-var]


def parseLevel(value: object, key: str = "level", scale: NumericScale = PYTHON_SCALE) -> int:
    """
    Map a level in any accepted spelling to a syslog severity.

    Accepts the names in L{LEVEL_NAMES}, the aliases in L{LEVEL_ALIASES} (any
    case), syslog numbers 0..7 and integers 8..100 on C{scale} (Python
    logging's numeric levels unless told otherwise).

    @raise RecordError: naming C{key} for anything else.
    """
    if isinstance(value, bool):
        raise RecordError(f"{key}: unknown level {value!r}")
    if isinstance(value, int):
        if 0 <= value <= 7:
            return value
        if 8 <= value <= 100:
            for threshold, severity in scale:
                if value >= threshold:
                    return severity
        raise RecordError(f"{key}: unknown level {value!r}")
    if isinstance(value, str):
        found = LEVEL_ALIASES.get(value)
        if found is not None:
            return found
        found = LEVEL_ALIASES.get(value.strip().lower())
        if found is not None:
            return found
        stripped = value.strip()
        # isdigit() alone also takes "²", which int() refuses.
        if stripped.isascii() and stripped.isdigit():
            return parseLevel(int(stripped), key, scale)
    raise RecordError(f"{key}: unknown level {value!r}")


def keptLevel(value: object, fields: dict[str, Any], scale: NumericScale = PYTHON_SCALE) -> int:
    """
    The policy for a level that is not one: the record is kept.

    @return: C{value}'s severity (L{parseLevel}); for a value that names no
        level, L{INFO}, with C{value} itself stored in C{fields["level"]} so
        nothing the sender said is lost.  L{None} means no level: info.
    """
    if value is None:
        return INFO
    try:
        return parseLevel(value, scale=scale)
    except RecordError:
        fields["level"] = value
        return INFO


def _epochToMicros(number: float) -> int:
    """
    Interpret an epoch number by magnitude: seconds, milliseconds, microseconds
    or nanoseconds (a seconds value past 1e11 would be the year 5138).
    """
    magnitude = abs(number)
    if magnitude >= 1e17:
        return int(number // 1000)
    if magnitude >= 1e14:
        return int(number)
    if magnitude >= 1e11:
        return int(round(number * 1000))
    return int(round(number * 1_000_000))


#: The exact types of an epoch number (not bool, which is an int).
_NUMBERS = (int, float)


def parseTimestamp(value: object, key: str = "ts") -> int:
    """
    Parse an RFC 3339 / ISO 8601 string or an epoch number (seconds,
    milliseconds, microseconds or nanoseconds, told apart by magnitude; numeric
    strings count as numbers).  A time without an offset is taken as UTC.

    @return: microseconds since the epoch.
    @raise RecordError: naming C{key} when the value is not a time.
    """
    if type(value) in _NUMBERS and 0 <= value < 1e11:  # type: ignore[operator]
        # The common case, epoch seconds after 1970, first: what
        # _epochToMicros gives it, always within the range checked below.
        return int(round(value * 1_000_000))  # type: ignore[operator]
    if isinstance(value, bool):
        raise RecordError(f"{key}: cannot parse {value!r}")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not isfinite(value):
            raise RecordError(f"{key}: cannot parse {value!r}")
        micros = _epochToMicros(value)
    elif isinstance(value, str):
        found = _textToMicros(value.strip())
        if found is None:
            raise RecordError(f"{key}: cannot parse {value!r}")
        micros = found
    else:
        raise RecordError(f"{key}: cannot parse {value!r}")
    if not _MIN_MICROS <= micros <= _MAX_MICROS:
        raise RecordError(f"{key}: out of range {value!r}")
    return micros


def nanosToMicros(nanos: int, key: str = "ts") -> int:
    """
    Convert an event time in nanoseconds since the epoch, as protobuf senders
    write it unambiguously (OTLP, Loki's protobuf push), exactly.

    @return: microseconds since the epoch.
    @raise RecordError: naming C{key} when it is outside the times
        L{parseTimestamp} takes.
    """
    micros = nanos // 1000
    if not _MIN_MICROS <= micros <= _MAX_MICROS:
        raise RecordError(f"{key}: out of range {nanos!r}")
    return micros


#: The form nearly every sender writes, UTC to the second with an optional
#: fraction ("2026-11-22T16:55:33.123456Z"), parsed without datetime.
_UTC_TEXT = re.compile(r"(\d{4}-\d\d-\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:[Zz]|\+00:00)", re.ASCII)

_EPOCH_DATE = date(1970, 1, 1)


def _epochDays(day: str) -> int | None:
    try:
        return (date.fromisoformat(day) - _EPOCH_DATE).days
    except ValueError:
        return None


#: Days since the epoch of "YYYY-MM-DD" texts (None: not a date).
_DAYS: Memo[str, int | None] = Memo(_epochDays)


def _utcTextToMicros(text: str) -> int | None:
    """
    @return: microseconds for a text in L{_UTC_TEXT}'s form that names a
        real time, else L{None} (for the general parser to decide).  The
        same answers as C{datetime.fromisoformat}, fractions past
        microseconds truncated, at a fifth of the cost: a record's time is
        parsed on the reactor thread for every record.
    """
    match = _UTC_TEXT.fullmatch(text)
    if match is None:
        return None
    day, hours, minutes, seconds, fraction = match.groups()
    days = _DAYS[day]
    h, m, sec = int(hours), int(minutes), int(seconds)
    if days is None or h > 23 or m > 59 or sec > 59:
        return None
    micros = (((days * 24 + h) * 60 + m) * 60 + sec) * 1_000_000
    if fraction:
        micros += int(fraction[:6].ljust(6, "0"))
    return micros


def _textToMicros(text: str) -> int | None:
    """
    @return: microseconds for an epoch number or an ISO 8601 text, or L{None}.
    """
    fast = _utcTextToMicros(text)
    if fast is not None:
        return fast
    # int() first: a float cannot hold nanoseconds since the epoch exactly.
    for number in (int, float):
        try:
            return _epochToMicros(number(text))
        except (ValueError, OverflowError):
            pass
    return _isoTextToMicros(text)


def _isoTextToMicros(text: str) -> int | None:
    """
    @return: microseconds for any ISO 8601 text C{datetime.fromisoformat}
        takes (UTC when it names no offset), or L{None}.
    """
    try:
        # RFC 3339 allows a lower-case "t" and "z"; fromisoformat does not.
        parsed = datetime.fromisoformat(text.upper())
    except ValueError:
        return None
    return datetimeToMicros(parsed)


_MIN_MICROS = 0
_MAX_MICROS = 253402300799_999999  # 9999-12-31T23:59:59.999999Z

_MESSAGE_KEYS = ("message", "msg")
_LEVEL_KEYS = ("level", "severity", "levelname")
_TS_KEYS = ("ts", "timestamp", "time", "@timestamp")
_SOURCE_KEYS = ("host", "hostname", "source")
_SERVICE_KEYS = ("service", "app", "logger")
#: Every alias but the first of each kind.
_OTHER_ALIASES = frozenset(_LEVEL_KEYS[1:] + _TS_KEYS[1:] + _SOURCE_KEYS[1:] + _SERVICE_KEYS[1:])


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode("utf-8")
    return str(value)


def _take(obj: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, Any]:
    """
    Pop the first present key of C{keys} from C{obj}; later aliases stay in
    C{obj} and so end up in fields.

    @return: the key found (the first of C{keys} when none is) and its value,
        L{None} when absent; errors name the key the sender used.
    """
    for key in keys:
        value = obj.pop(key, _MISSING)
        if value is not _MISSING:
            return key, value
    return keys[0], None


_MISSING = object()


def jsonSafe(value: Any) -> Any:
    """
    @return: C{value} when JSON can hold it as it is, else its C{repr}:
        what a sender does with an attribute of a type JSON does not know (a
        datetime, an object, an int beyond 64 bits, a dict with non-string
        keys) rather than lose the record or the value.
    """
    if value is None or type(value) in (str, int, float, bool):
        if type(value) is not int or -(2**63) <= value < 2**64:
            return value
        return repr(value)
    try:
        orjson.dumps(value)
    except TypeError:
        return repr(value)
    return value


def dumpFields(fields: dict[str, Any]) -> str | None:
    """
    @return: C{fields} as JSON object text, or L{None} when it is empty.
    @raise RecordError: when a value cannot be represented in JSON.
    """
    if not fields:
        return None
    try:
        # Keys are nearly always strings; orjson's option for other keys
        # (a msgpack map may have them) costs more on every call.
        return orjson.dumps(fields).decode("utf-8")
    except TypeError:
        pass
    try:
        return orjson.dumps(fields, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
    except TypeError as e:
        raise RecordError(f"fields: {e}") from None


def normalize(obj: object, peer: str, received: int) -> Record:
    """
    Normalize one decoded JSON value into a L{Record}.

    message from message/msg; level from level/severity/levelname; ts from
    ts/timestamp/time/@timestamp; source from host/hostname/source, else
    C{peer}; service from service/app/logger; a C{fields} object is merged in,
    and every other key goes into fields.  C{obj} is consumed (keys are popped).

    A level that names none is kept: level info, the value in
    C{fields["level"]} (L{keptLevel}).  Integer levels above 7 are read on
    pino's and bunyan's scale (L{PINO_SCALE}) when the record has their
    shape, its message under C{msg} and none under C{message}; else on
    Python's (L{PYTHON_SCALE}).

    @param peer: the sender's address, the source when the record names none.
    @param received: receive time in microseconds, also the event time when the
        record carries none.
    @raise RecordError: when C{obj} is not an object or a value is invalid.
    """
    if not isinstance(obj, dict):
        raise RecordError(f"record must be a JSON object, not {_jsonType(obj)}")
    # Unrolled pops: this runs once per JSON record and dominates JSON ingest.
    # The other aliases are looked for only when one is there (one set
    # operation), which most records, naming the first key or none, skip.
    pop = obj.pop
    aliased = not _OTHER_ALIASES.isdisjoint(obj)
    message = pop("message", _MISSING)
    scale = PYTHON_SCALE
    if message is _MISSING:
        message = pop("msg", None)
        if message is not None:
            scale = PINO_SCALE
    level = pop("level", _MISSING)
    if level is _MISSING:
        level = _take(obj, _LEVEL_KEYS[1:])[1] if aliased else None
    tsKey = "ts"
    ts = pop("ts", _MISSING)
    if ts is _MISSING:
        tsKey, ts = _take(obj, _TS_KEYS[1:]) if aliased else (tsKey, None)
    source = pop("host", _MISSING)
    if source is _MISSING:
        source = _take(obj, _SOURCE_KEYS[1:])[1] if aliased else None
    service = pop("service", _MISSING)
    if service is _MISSING:
        service = _take(obj, _SERVICE_KEYS[1:])[1] if aliased else None
    nested = obj.get("fields")
    if isinstance(nested, dict):
        del obj["fields"]
        for key, value in nested.items():
            obj.setdefault(key, value)
    return _newRecord(
        (
            received if ts is None else parseTimestamp(ts, tsKey),
            received,
            # Before the fields below: an unknown level is kept in them.
            INFO if level is None else keptLevel(level, obj, scale),
            peer if source is None else _text(source),
            "" if service is None else _text(service),
            "" if message is None else _text(message),
            dumpFields(obj) if obj else None,
        )
    )


def _jsonType(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__


def plainRecord(message: str, peer: str, received: int) -> Record:
    """
    @return: a record for a line of plain text: level info, no service, the
        peer as source, the receive time as event time.
    """
    return _newRecord((received, received, INFO, peer, "", message, None))


#: The RFC 3339 UTC text of a whole second since the epoch, up to the
#: fraction (C{"2026-11-22T16:55:33"}).
SECOND_PREFIXES: Memo[int, str] = Memo(lambda seconds: datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S"))


def formatMicros(micros: int) -> str:
    """
    Render microseconds since the epoch as RFC 3339 UTC with microseconds,
    e.g. C{"2026-11-22T16:55:33.000123Z"}.
    """
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{SECOND_PREFIXES[seconds]}.{fraction:06d}Z"


#: Column order of a stored row, as the stores return it.
ROW_COLUMNS = ("id", "ts", "received", "level", "source", "service", "message", "fields")


def renderRow(row: tuple[Any, ...]) -> dict[str, Any]:
    """
    Render a stored row (columns in L{ROW_COLUMNS} order) as the API's record
    object: C{{"id", "ts", "received", "level", "source", "service",
    "message", "fields"}}.
    """
    rowid, ts, received, level, source, service, message, fields = row
    return {
        "id": rowid,
        "ts": formatMicros(ts),
        "received": formatMicros(received),
        "level": LEVEL_NAMES[level],
        "source": source,
        "service": service,
        "message": message,
        "fields": orjson.loads(fields) if fields else {},
    }
