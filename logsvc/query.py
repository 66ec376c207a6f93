"""
The one query model every reader shares: L{Query}, parsed once from request
arguments, translated by the stores.

Order is by event time, ties broken by record id, so a cursor (the C{(ts, id)}
of the last record of a page) names a position that no later insert can move:
paging visits every record that matched when it started exactly once.

The read endpoints are strict about their parameters (L{checkParameters}: an
unknown name is an error naming the closest known one) and take relative times
(C{since=15m}, C{now-2h}, C{until=now}; L{parseTimeBound}).  A relative time is
resolved once, at the first page: the cursor of the next page carries that
instant, so every page of one search has the same absolute bounds.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from logsvc.record import RecordError, nowMicros, parseLevel, parseTimestamp
from logsvc.search_syntax import Search, parseSearch

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000

#: The filter parameters every read endpoint takes (besides C{field.KEY}).
FILTER_PARAMETERS = frozenset({"since", "until", "level", "source", "service", "q"})
#: The prefix of field filters, C{field.KEY=value}.
FIELD_PREFIX = "field."


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
    @ivar resolvedAt: the instant (microseconds) relative times (C{15m},
        C{now}) were resolved at, or L{None} when none was given; the next
        page's cursor carries it so that page resolves them alike.
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
    resolvedAt: int | None = field(default=None, compare=False)

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


def encodeCursor(ts: int, rowid: int, resolvedAt: int | None = None) -> str:
    """
    @param resolvedAt: the instant the search's relative times were resolved
        at (L{Query.resolvedAt}), carried to the next page.
    @return: an opaque URL-safe token for the position after C{(ts, rowid)}.
    """
    text = f"{ts}:{rowid}" if resolvedAt is None else f"{ts}:{rowid}@{resolvedAt}"
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def decodePosition(token: str) -> tuple[int, int, int | None]:
    """
    @return: the C{(ts, id, resolvedAt)} named by a token from
        L{encodeCursor}; C{resolvedAt} is L{None} when it carries none.
    @raise QueryError: for a token this service did not make.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        position, at, resolvedAt = raw.partition("@")
        ts, rowid = position.split(":")
        return int(ts), int(rowid), int(resolvedAt) if at else None
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise QueryError("cursor", f"invalid cursor {token!r}") from None


def decodeCursor(token: str) -> tuple[int, int]:
    """
    @return: the C{(ts, id)} named by a token from L{encodeCursor}.
    @raise QueryError: for a token this service did not make.
    """
    ts, rowid, _ = decodePosition(token)
    return ts, rowid


class UnknownParameter(QueryError):
    """
    A read endpoint was given a parameter it does not know.

    @ivar suggestion: the closest known parameter, or L{None}.
    """

    def __init__(self, param: str, suggestion: str | None, known: Collection[str]) -> None:
        hint = (
            f"did you mean {suggestion!r}?"
            if suggestion is not None
            else "known: " + ", ".join(sorted(known)) + f", {FIELD_PREFIX}KEY"
        )
        super().__init__(param, f"unknown parameter; {hint}")
        self.suggestion = suggestion


def checkParameters(args: Args, known: Collection[str]) -> None:
    """
    Refuse a parameter a read endpoint does not know, so that a typo
    (C{levle=error}) is an error rather than a search for everything.

    @param known: the endpoint's parameter names; C{field.KEY} is always
        accepted.
    @raise UnknownParameter: for the first unknown name, with the closest
        known one (by L{difflib}) when there is a close one.
    """
    for raw in args:
        name = raw.decode("utf-8", "replace")
        if name in known or (name.startswith(FIELD_PREFIX) and len(name) > len(FIELD_PREFIX)):
            continue
        if name == FIELD_PREFIX:
            raise QueryError(FIELD_PREFIX, "missing field name")
        close = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.6)
        raise UnknownParameter(name, close[0] if close else None, known)


#: The forms C{since} and C{until} take, for error messages.
TIME_FORMS = (
    "RFC 3339 (2026-11-22T10:00:00Z), epoch seconds (1763805600), now, "
    "a time ago (15m, 2h, 7d; units s m h d w) or now-15m"
)

_RELATIVE = re.compile(r"^(?:now\s*-\s*)?(\d+)\s*([smhdw])$", re.IGNORECASE)
_UNIT_MICROS = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
_UNIT_MICROS["w"] = 7 * _UNIT_MICROS["d"]


def isRelativeTime(text: str) -> bool:
    """
    @return: whether C{text} is a relative time (C{now}, C{15m}, C{now-15m}),
        which L{parseTimeBound} resolves against the current time.
    """
    text = text.strip().lower()
    return text == "now" or _RELATIVE.match(text) is not None


def parseTimeBound(text: str, name: str, now: Callable[[], int]) -> int:
    """
    Parse a C{since} or C{until} value: an absolute time (RFC 3339, epoch
    seconds) or a relative one: C{now}, a duration ago (C{15m}, C{2h},
    C{7d}) or C{now-DURATION}.

    @param now: returns the instant relative times are resolved at, in
        microseconds; called only for a relative time.
    @return: microseconds since the epoch.
    @raise QueryError: naming C{name} and listing the accepted forms.
    """
    stripped = text.strip()
    if isRelativeTime(stripped):
        lowered = stripped.lower()
        if lowered == "now":
            return now()
        found = _RELATIVE.match(lowered)
        assert found is not None
        return now() - int(found.group(1)) * _UNIT_MICROS[found.group(2)]
    try:
        return parseTimestamp(stripped, name)
    except RecordError as e:
        reason = str(e).split(": ", 1)[1]
        raise QueryError(name, f"{reason}; use {TIME_FORMS}") from None


Args = Mapping[bytes, Sequence[bytes]]


def _values(args: Args, name: str) -> list[str]:
    return [v.decode("utf-8", "replace") for v in args.get(name.encode("ascii"), [])]


def _one(args: Args, name: str) -> str | None:
    values = _values(args, name)
    return values[-1] if values else None


def _time(args: Args, name: str, now: Callable[[], int]) -> int | None:
    value = _one(args, name)
    if value is None or value == "":
        return None
    return parseTimeBound(value, name, now)


def parseQuery(
    args: Args,
    *,
    allowUnlimited: bool = False,
    accepted: Collection[str] | None = None,
    now: Callable[[], int] = nowMicros,
) -> Query:
    """
    Build a L{Query} from request arguments (C{request.args}).

    C{since}/C{until}: RFC 3339, epoch seconds or relative (C{now}, C{15m},
    C{now-2h}; see L{parseTimeBound}); C{level}: any level alias;
    C{source}/C{service}: repeatable; C{q}: words; C{limit}: 1..10000
    (default 100); C{order}: C{asc}|C{desc}; C{cursor}: a C{next} token;
    C{field.KEY=value}: repeatable exact matches on fields.

    @param allowUnlimited: when true and C{limit} is absent, the query has no
        limit (streaming export).
    @param accepted: the endpoint's parameter names (L{checkParameters});
        L{None} accepts any.
    @param now: the current time in microseconds, asked at most once, and
        only when a relative time is given and the cursor carries no instant
        of an earlier page.
    @raise QueryError: naming the first invalid argument.
    """
    if accepted is not None:
        checkParameters(args, accepted)
    cursorText = _one(args, "cursor")
    cursor, resolvedAt = None, None
    if cursorText:
        ts, rowid, resolvedAt = decodePosition(cursorText)
        cursor = (ts, rowid)
    instant: list[int] = [] if resolvedAt is None else [resolvedAt]

    def resolvedNow() -> int:
        if not instant:
            instant.append(now())
        return instant[0]

    since = _time(args, "since", resolvedNow)
    until = _time(args, "until", resolvedNow)
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
        resolvedAt=instant[0] if instant else None,
    )
