"""
The one query model every reader shares: L{Query}, parsed once from request
arguments, translated by the stores.

Order is by event time, ties broken by record id, so a cursor (the C{(ts, id)}
of the last record of a page) names a position that no later insert can move:
paging visits every record that matched when it started exactly once.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from logsvc.record import RecordError, parseLevel, parseTimestamp
from logsvc.search_syntax import Search, parseSearch

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


class QueryError(ValueError):
    """
    A query argument is invalid.

    @ivar param: the argument's name, e.g. C{"since"}.
    """

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


@dataclass(frozen=True)
class Query:
    """
    Filters, order and position of a search.

    @ivar since: inclusive lower bound on C{ts}, microseconds, or L{None}.
    @ivar until: exclusive upper bound on C{ts}, microseconds, or L{None}.
    @ivar level: the mildest severity wanted (C{level <= n}), or L{None}.
    @ivar sources: accepted sources (any of them); empty means all.
    @ivar services: accepted services (any of them); empty means all.
    @ivar q: search text over the message and service, in the syntax of
        L{logsvc.search_syntax} (words, "phrases", prefix*, -exclusions).
    @ivar limit: page size, 1..L{MAX_LIMIT}, or L{None} for no limit (export).
    @ivar order: C{"desc"} (newest first) or C{"asc"}.
    @ivar cursor: C{(ts, id)} of the last record already seen, or L{None}.
    @ivar fields: C{(key, value)} pairs that must all hold; see
        L{fieldMatches}.
    """

    since: int | None = None
    until: int | None = None
    level: int | None = None
    sources: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    q: str = ""
    limit: int | None = DEFAULT_LIMIT
    order: str = "desc"
    cursor: tuple[int, int] | None = None
    fields: tuple[tuple[str, str], ...] = field(default=())

    def words(self) -> list[str]:
        """
        @return: the whitespace-separated terms of L{q}, as typed.
        """
        return self.q.split()

    @property
    def search(self) -> Search:
        """
        L{q}, parsed (cached; never raises).
        """
        return parseSearch(self.q)

    def matches(self, row: tuple[Any, ...]) -> bool:
        """
        The one matcher every reader shares (the memory store, the live
        tail): the meaning the SQL stores translate.

        @param row: a stored row (columns as in
            L{logsvc.record.ROW_COLUMNS}, the id first).
        @return: True when C{row} passes every filter of this query (not its
            cursor).
        """
        _, ts, _, level, source, service, message, fields = row
        if self.since is not None and ts < self.since:
            return False
        if self.until is not None and ts >= self.until:
            return False
        if self.level is not None and level > self.level:
            return False
        if self.sources and source not in self.sources:
            return False
        if self.services and service not in self.services:
            return False
        if self.fields:
            decoded = decodeFields(fields)
            for name, value in self.fields:
                if not fieldMatches(decoded, name, value):
                    return False
        return self.search.matches(message, service)

    def after(self, ts: int, rowid: int) -> Query:
        """
        @return: this query positioned after the record C{(ts, rowid)}.
        """
        return replace(self, cursor=(ts, rowid))


def decodeFields(fields: str | None) -> dict[str, Any]:
    """
    @param fields: a row's C{fields} column (a JSON object, or L{None}).
    @return: the fields decoded; C{{}} for none or for JSON that is not an
        object.
    """
    if not fields:
        return {}
    decoded = orjson.loads(fields)
    return decoded if isinstance(decoded, dict) else {}


def fieldNumber(text: str) -> int | float | None:
    """
    @return: C{text} as a JSON number (an C{int} when integral in form, e.g.
        C{"200"}; a C{float} for C{"1.5"} or C{"1e3"}), or L{None} when it is
        not a finite number.
    """
    try:
        number = int(text)
    except ValueError:
        pass
    else:
        # Past 64 bits SQLite holds numbers as floats: compare as one too.
        return number if -(2**63) <= number < 2**63 else float(number)
    try:
        real = float(text)
    except (ValueError, OverflowError):
        return None
    if real != real or real in (float("inf"), float("-inf")):
        return None
    return real


def fieldMatches(fields: Mapping[str, object], key: str, expected: str) -> bool:
    """
    The meaning of C{field.KEY=expected}: a string field equals C{expected};
    a number equals it read as a number (C{status=200} matches C{200} and
    C{200.0}; C{"200"} matches only the string C{"200"}); C{true}, C{false}
    and C{null} match those JSON values.  Objects, arrays and absent keys
    never match.

    @param fields: a record's decoded fields.
    """
    if key not in fields:
        return False
    actual = fields[key]
    if actual is None:
        return expected == "null"
    if isinstance(actual, str):
        return actual == expected
    if isinstance(actual, bool):
        return expected == ("true" if actual else "false")
    if isinstance(actual, (int, float)):
        number = fieldNumber(expected)
        return number is not None and actual == number
    return False


def encodeCursor(ts: int, rowid: int) -> str:
    """
    @return: an opaque URL-safe token for the position after C{(ts, rowid)}.
    """
    return base64.urlsafe_b64encode(f"{ts}:{rowid}".encode("ascii")).decode("ascii").rstrip("=")


def decodeCursor(token: str) -> tuple[int, int]:
    """
    @return: the C{(ts, id)} named by a token from L{encodeCursor}.
    @raise QueryError: for a token this service did not make.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        ts, rowid = raw.split(":")
        return int(ts), int(rowid)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise QueryError("cursor", f"invalid cursor {token!r}") from None


Args = Mapping[bytes, Sequence[bytes]]


def _values(args: Args, name: str) -> list[str]:
    return [v.decode("utf-8", "replace") for v in args.get(name.encode("ascii"), [])]


def _one(args: Args, name: str) -> str | None:
    values = _values(args, name)
    return values[-1] if values else None


def _time(args: Args, name: str) -> int | None:
    value = _one(args, name)
    if value is None or value == "":
        return None
    try:
        return parseTimestamp(value, name)
    except RecordError as e:
        raise QueryError(name, str(e).split(": ", 1)[1]) from None


def parseQuery(args: Args, *, allowUnlimited: bool = False) -> Query:
    """
    Build a L{Query} from request arguments (C{request.args}).

    C{since}/C{until}: RFC 3339 or epoch seconds; C{level}: any level alias;
    C{source}/C{service}: repeatable; C{q}: words; C{limit}: 1..10000
    (default 100); C{order}: C{asc}|C{desc}; C{cursor}: a C{next} token;
    C{field.KEY=value}: repeatable exact matches on fields.

    @param allowUnlimited: when true and C{limit} is absent, the query has no
        limit (streaming export).
    @raise QueryError: naming the first invalid argument.
    """
    since = _time(args, "since")
    until = _time(args, "until")
    levelText = _one(args, "level")
    level = None
    if levelText:
        try:
            level = parseLevel(levelText)
        except RecordError:
            raise QueryError("level", f"unknown level {levelText!r}") from None
    limitText = _one(args, "limit")
    limit: int | None
    if limitText is None or limitText == "":
        limit = None if allowUnlimited else DEFAULT_LIMIT
    else:
        try:
            limit = int(limitText)
        except ValueError:
            raise QueryError("limit", f"not an integer: {limitText!r}") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise QueryError("limit", f"must be between 1 and {MAX_LIMIT}")
    order = (_one(args, "order") or "desc").lower()
    if order not in ("asc", "desc"):
        raise QueryError("order", f"must be asc or desc, not {order!r}")
    cursorText = _one(args, "cursor")
    cursor = decodeCursor(cursorText) if cursorText else None
    fields = []
    for key in args:
        if key.startswith(b"field."):
            name = key[6:].decode("utf-8", "replace")
            if not name:
                raise QueryError("field.", "missing field name")
            for value in args[key]:
                fields.append((name, value.decode("utf-8", "replace")))
    return Query(
        since=since,
        until=until,
        level=level,
        sources=tuple(v for v in _values(args, "source") if v != ""),
        services=tuple(_values(args, "service")),
        q=_one(args, "q") or "",
        limit=limit,
        order=order,
        cursor=cursor,
        fields=tuple(fields),
    )
