# -*- test-case-name: tests.test_formats_forward -*-
"""
Fluent forward protocol v1 messages (Fluentd, Fluent Bit, Docker's
C{fluentd} log driver, the fluent-logger libraries), decoded from msgpack.

A message is an array whose second element tells its mode:

  - Message: C{[tag, time, record]} or C{[tag, time, record, option]};
  - Forward: C{[tag, [[time, record], ...], option?]};
  - PackedForward: C{[tag, bin, option?]}, the bin a msgpack stream of
    C{[time, record]} entries;
  - CompressedPackedForward: the same with C{option["compressed"] ==
    "gzip"}, the bin gzip-compressed (inflated to at most a limit).

A time is an integer of epoch seconds or an C{EventTime} (msgpack ext type 0:
seconds and nanoseconds, 32 bits each, big-endian).  C{nil} is a heartbeat.

Mapping of one entry to a record:

  - message: C{message}, else C{msg}, else C{log} (Docker, Fluent Bit's tail);
  - level: C{level}, else C{severity} (the record model's aliases);
  - service: the record's C{service} or C{app}, else the tag; the tag also
    goes to C{fields.tag};
  - source: C{host} or C{hostname}, else the sender's address (a C{source}
    key, Docker's C{stdout}/C{stderr}, stays a field);
  - ts: the entry's time; a C{ts}/C{time}/C{timestamp} key of the record
    stays a field;
  - the rest: fields.

Pure: no Twisted.  Every decoder here is bounded (L{unpacker}).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import msgpack

from logsvc.formats import Rejection
from logsvc.formats.compression import InflateError, inflate
from logsvc.record import (
    INFO,
    Record,
    RecordError,
    dumpFields,
    keptLevel,
    normalize,
    parseTimestamp,
)

__all__ = [
    "DECODE_ERRORS",
    "DecodeError",
    "EventTime",
    "ForwardMessage",
    "decodeMessage",
    "forwardRecord",
    "unpacker",
]

#: Keys of a record that would otherwise be read as its time: the entry's
#: time is the event time, so these stay fields.
_TIME_KEYS = ("ts", "timestamp", "time", "@timestamp")


class DecodeError(ValueError):
    """
    A forward message that cannot be read at all (not the shape of any mode,
    a corrupt packed stream); none of its entries is stored.
    """


class EventTime(int):
    """
    The forward protocol's EventTime (seconds and nanoseconds), held as
    microseconds since the epoch (an C{int}, so the decoder makes one object
    per entry and the mapping does no arithmetic).
    """

    __slots__ = ()

    def __new__(cls, seconds: int, nanoseconds: int = 0) -> EventTime:
        return int.__new__(cls, seconds * 1_000_000 + nanoseconds // 1000)

    @property
    def seconds(self) -> int:
        return int(self) // 1_000_000

    @property
    def nanoseconds(self) -> int:
        """
        @return: the nanoseconds, to the microsecond kept.
        """
        return int(self) % 1_000_000 * 1000

    def micros(self) -> int:
        """
        @return: microseconds since the epoch.
        """
        return int(self)

    def __repr__(self) -> str:
        return f"EventTime({self.seconds}, {self.nanoseconds})"


_unpackEventTime = struct.Struct(">II").unpack


def _extHook(code: int, data: bytes) -> Any:
    if code == 0 and len(data) == 8:
        seconds, nanoseconds = _unpackEventTime(data)
        # int.__new__ skips EventTime's Python-level __new__: once per entry.
        return _newInt(EventTime, seconds * 1_000_000 + nanoseconds // 1000)
    return msgpack.ExtType(code, data)


_newInt = int.__new__


def packEventTime(obj: Any) -> Any:
    """
    A msgpack C{default} hook writing L{EventTime}s as ext type 0 (for
    tests and senders).
    """
    if isinstance(obj, EventTime):
        return msgpack.ExtType(0, struct.pack(">II", obj.seconds, obj.nanoseconds))
    raise TypeError(f"cannot pack {obj!r}")


#: What a bounded msgpack decoder raises for input it refuses.
DECODE_ERRORS = (ValueError, TypeError, msgpack.UnpackException)


def unpacker(maxBytes: int, *, raw: bool = False) -> msgpack.Unpacker:
    """
    @param raw: leave strings as bytes (for the connection's stream, whose
        PackedForward entries Fluentd sends as a msgpack I{str} holding
        binary data); else decode them, invalid UTF-8 kept as U+FFFD.
    @return: a streaming msgpack decoder that holds at most C{maxBytes}
        bytes, refuses strings, arrays, maps and ext values longer than that
        (a header claiming four billion elements is refused before anything
        is allocated) and reads EventTime.  Nesting deeper than msgpack's
        stack is refused too.  Refusals are C{ValueError},
        C{msgpack.UnpackException} (C{BufferFull}) or C{TypeError} (a map
        keyed by an array or a map): catch L{DECODE_ERRORS}.
    """
    return msgpack.Unpacker(
        max_buffer_size=maxBytes,
        raw=raw,
        unicode_errors="replace",
        strict_map_key=False,
        ext_hook=_extHook,
    )


def _text(value: Any) -> Any:
    """
    Decode every byte string in C{value} (from a raw decoder) as UTF-8,
    invalid sequences as U+FFFD.

    @raise RecordError: for nesting deeper than Python's recursion allows.
    """
    try:
        return _decoded(value)
    except RecursionError:
        raise RecordError("record nested too deeply") from None


def _decoded(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_decoded(key): _decoded(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_decoded(item) for item in value]
    return value


def _time(value: Any) -> int:
    if type(value) is EventTime:
        # Microseconds already, and in range: 32-bit unsigned seconds and
        # nanoseconds (1970 to 2106) are times the store takes.
        return int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return parseTimestamp(value, "time")
    raise RecordError(f"time: not an integer or EventTime: {value!r}")


def forwardRecord(tag: str, time: Any, record: Any, peer: str, received: int) -> Record:
    """
    Map one forward entry to a record; see the module docstring.

    @raise RecordError: when the record is not a map, the time is not a
        time, or a value has no JSON form.
    """
    if not isinstance(record, dict):
        raise RecordError(f"record must be a map, not {type(record).__name__}")
    ts = _time(time)
    if _GENERAL_KEYS.isdisjoint(record):
        message = record.get("message", _ABSENT)
        if message is _ABSENT:
            message = record.get("log", "")
        if type(message) is str:
            return _plainRecord(tag, ts, record, message, peer, received)
    obj = dict(record)
    if "message" not in obj and "msg" not in obj and "log" in obj:
        obj["message"] = obj.pop("log")
    if "service" not in obj and "app" not in obj:
        obj["service"] = tag
    extra: dict[str, Any] = {"tag": tag}
    if "source" in obj:
        extra["source"] = obj.pop("source")
    for key in _TIME_KEYS:
        if key in obj:
            extra[key] = obj.pop(key)
    nested = obj.get("fields")
    if isinstance(nested, dict):
        obj["fields"] = {**nested, **extra}
    else:
        if nested is not None:
            extra["fields"] = obj.pop("fields")
        obj["fields"] = extra
    mapped = normalize(obj, peer, received)
    return _newRecord(Record, (ts, *mapped[1:]))


_newRecord = tuple.__new__

#: Keys whose reading takes the record model's general rules (aliases of
#: message, level, source and service; a nested fields map): a record
#: without any of them (Fluent Bit's, Docker's and most fluent-logger
#: records) is mapped by L{_plainRecord}.
_GENERAL_KEYS = frozenset({"msg", "severity", "levelname", "host", "hostname", "service", "app", "logger", "fields"})

#: Keys kept in fields after the tag, in this order, where the general path
#: puts them too: C{source} (Docker's stdout/stderr) and the time keys.
_MOVED_KEYS = ("source", *_TIME_KEYS)
_MOVED = frozenset(_MOVED_KEYS)

_ABSENT = object()


def _plainRecord(tag: str, ts: int, record: dict[Any, Any], message: str, peer: str, received: int) -> Record:
    """
    L{forwardRecord} for a record without L{_GENERAL_KEYS} whose message
    (C{message}, else C{log}) is a string: the same record, with the
    general path's work (alias lookups, a second copy, the nested fields
    merge) left out.  This runs once per entry and is most of forward's cost.
    """
    fields = dict(record)
    pop = fields.pop
    if pop("message", _ABSENT) is _ABSENT:
        pop("log", None)
    level = pop("level", None)
    fields.setdefault("tag", tag)
    if not _MOVED.isdisjoint(fields):
        for key in _MOVED_KEYS:
            if key in fields:
                fields[key] = pop(key)
    return _newRecord(
        Record,
        (
            ts,
            received,
            # After the fields above: an unknown level is kept in them.
            INFO if level is None else keptLevel(level, fields),
            peer,
            tag,
            message,
            dumpFields(fields),
        ),
    )


class ForwardMessage:
    """
    One decoded forward message.

    @ivar tag: its tag.
    @ivar entries: its C{(time, record)} pairs, as decoded.
    @ivar chunk: the C{chunk} option (to answer C{{"ack": chunk}}), or L{None}.
    @ivar raw: whether the entries' strings are still bytes.
    """

    def __init__(self, tag: str, entries: Sequence[Sequence[Any]], chunk: Any, *, raw: bool = False) -> None:
        self.tag = tag
        self.entries = entries
        self.chunk = chunk
        self.raw = raw

    def records(self, peer: str, received: int) -> tuple[list[Record], list[Rejection]]:
        """
        @return: the records of the entries, and the entries rejected with
            their reasons.
        """
        records: list[Record] = []
        rejected: list[Rejection] = []
        tag = self.tag
        raw = self.raw
        for time, record in self.entries:
            try:
                if raw:
                    record = _text(record)
                records.append(forwardRecord(tag, time, record, peer, received))
            except RecordError as e:
                rejected.append((repr(record)[:200].encode("utf-8", "replace"), str(e)))
        return records, rejected


def _packedEntries(data: bytes, maxBytes: int) -> list[Any]:
    """
    @return: the C{[time, record]} entries of a packed stream.
    @raise DecodeError: when the stream is corrupt, ends inside an entry or
        holds something else than a pair.
    """
    stream = unpacker(maxBytes)
    try:
        stream.feed(data)
        entries = list(stream)
    except DECODE_ERRORS as e:
        raise DecodeError(f"packed entries: {type(e).__name__}: {e}") from None
    for entry in entries:
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise DecodeError("packed entry is not a [time, record] pair")
    if stream.tell() != len(data):
        raise DecodeError(f"packed entries end inside an entry ({len(data) - stream.tell()} bytes left)")
    return entries


def decodeMessage(message: Any, *, maxBytes: int) -> ForwardMessage | None:
    """
    Read one msgpack value, decoded raw (L{unpacker} with C{raw=True}), as a
    forward message.

    @param maxBytes: the most bytes a packed stream may have, inflated.
    @return: the message, or L{None} for a heartbeat (C{nil}).
    @raise DecodeError: for a value that is no forward message, a packed
        stream that is corrupt, or a compressed one that is corrupt or
        inflates past C{maxBytes}.
    """
    if message is None:
        return None
    if not isinstance(message, (list, tuple)) or not 2 <= len(message) <= 4:
        raise DecodeError("a forward message is an array [tag, ...] of 2 to 4 elements")
    tag = message[0]
    if not isinstance(tag, bytes):
        raise DecodeError("the tag must be a string")
    tag = tag.decode("utf-8", "replace")
    raw = True
    second = message[1]
    if isinstance(second, (int, float, EventTime)) and not isinstance(second, bool):
        # Message mode: [tag, time, record, option?]
        if len(message) < 3:
            raise DecodeError("Message mode needs [tag, time, record]")
        option = message[3] if len(message) == 4 else None
        entries = [(second, message[2])]
    else:
        if len(message) > 3:
            raise DecodeError("Forward modes are [tag, entries, option?]")
        option = message[2] if len(message) == 3 else None
        if isinstance(second, (list, tuple)):
            entries = []
            for entry in second:
                if not isinstance(entry, (list, tuple)) or len(entry) != 2:
                    raise DecodeError("a Forward entry is a [time, record] pair")
                entries.append((entry[0], entry[1]))
        elif isinstance(second, bytes):
            data = second
            compressed = option.get(b"compressed") if isinstance(option, dict) else None
            if compressed not in (None, b"text"):
                if compressed != b"gzip":
                    raise DecodeError(f"unknown compression {compressed!r} (gzip is known)")
                try:
                    data = inflate(data, "gzip", maxBytes)
                except InflateError as e:
                    raise DecodeError(f"CompressedPackedForward: {e}") from None
            entries = _packedEntries(data, maxBytes)
            raw = False
        else:
            raise DecodeError(f"unknown forward mode: second element is {type(second).__name__}")
    if option is not None and not isinstance(option, dict):
        raise DecodeError("the option must be a map")
    chunk = option.get(b"chunk") if option else None
    return ForwardMessage(tag, entries, chunk, raw=raw)
