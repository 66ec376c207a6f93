"""
C{GET /stats}: counts over time of the records matching the C{GET /logs}
filters, or the top values of a column.

    GET /stats?level=error&interval=1h&tz=Europe/Berlin
    -> {"total": n, "levels": {"error": n, ...}, "interval": "1h",
        "since": ..., "until": ..., "tz": "Europe/Berlin",
        "buckets": [{"start": "2026-11-22T00:00:00+01:00", "count": n, "levels": {...}}, ...]}
    GET /stats?by=service&limit=5
    -> {"total": n, "by": "service", "values": [{"value": "api", "count": n}, ...]}
    GET /stats?by=field.user&limit=5
    -> {"total": n, "sampled": false, "by": "field.user", "present": m,
        "share": 0.42, "values": [{"value": 42, "count": n}, ...]}

C{by=field.NAME} reads the newest matches (see L{logsvc.web.fields}).

Without C{since}/C{until} the span of the matching records is used (the
last hour up to now when none match).  Buckets are half-open, C{[start, next start)}, aligned to the interval in the
time zone C{tz} (UTC by default): an hour bucket starts on the hour, a day
bucket at local midnight (23 or 25 hours long across a daylight saving
change).  Every bucket between C{since} and C{until} is listed, empty ones
with count 0.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twisted.internet.defer import Deferred, succeed
from twisted.web.server import Request

from logsvc import units
from logsvc.query import FILTER_PARAMETERS, Query, QueryError, parseQuery
from logsvc.record import LEVEL_NAMES
from logsvc.store.base import IStore
from logsvc.times import datetimeToMicros, microsToDatetime, nowMicros
from logsvc.units import SECOND, formatInterval
from logsvc.web.common import JSONResource, renderAsync, writeJSON
from logsvc.web.errors import errorBody
from logsvc.web.fields import MAX_SAMPLE, parseCount, topFieldValues

DAY = units.TIME_UNITS["d"]

#: Intervals an automatic choice picks from, smallest first.
AUTO_INTERVALS = ("1s", "5s", "10s", "30s", "1m", "5m", "10m", "15m", "30m", "1h", "3h", "6h", "12h", "1d", "7d", "30d")
#: An automatic interval gives at most this many buckets.
AUTO_BUCKETS = 120
#: The parameters of C{GET /stats} (besides C{field.KEY}).
STATS_PARAMETERS = FILTER_PARAMETERS | {"interval", "tz", "by", "limit", "sample"}
#: Most buckets one answer may hold.
MAX_BUCKETS = 10_000
#: Most values C{by=} may list.
MAX_TOP = 1000
DEFAULT_TOP = 10

BY_COLUMNS = ("service", "source", "level")

_OFFSET = re.compile(r"^([+-])(\d{1,2})(?::?(\d{2}))?$")


def parseInterval(text: str) -> int:
    """
    @param text: see L{units.parseInterval}; at most 366 days.
    @return: the interval in microseconds.
    @raise QueryError: for anything else.
    """
    try:
        width = units.parseInterval(text)
    except ValueError as e:
        raise QueryError("interval", f"{e}: {text!r}") from None
    if width > 366 * DAY:
        raise QueryError("interval", "at most 366d")
    return width


def parseZone(text: str) -> tzinfo:
    """
    @param text: C{UTC}/C{Z}, a UTC offset (C{+02:00}, C{-0530}, C{+2}) or
        an IANA zone name (C{Europe/Berlin}).
    @raise QueryError: for an unknown zone.
    """
    cleaned = text.strip()
    if cleaned.upper() in ("", "UTC", "Z", "GMT"):
        return timezone.utc
    offset = _OFFSET.match(cleaned)
    if offset is not None:
        sign = -1 if offset.group(1) == "-" else 1
        hours, minutes = int(offset.group(2)), int(offset.group(3) or 0)
        if hours > 23 or minutes > 59:
            raise QueryError("tz", f"offset out of range: {text!r}")
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return ZoneInfo(cleaned)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise QueryError("tz", f"unknown time zone {text!r}") from None


def bucketStarts(since: int, until: int, width: int, zone: tzinfo) -> list[int]:
    """
    The starts of the buckets covering C{[since, until)}, plus the end of the
    last: C{len(result) - 1} buckets.

    Whole days are calendar days in C{zone} (so a bucket of C{1d} may last
    23 or 25 hours); shorter intervals are aligned to the zone's UTC offset
    at C{since}.

    @param since: microseconds, inclusive.
    @param until: microseconds, exclusive; more than C{since}.
    @param width: microseconds.
    @raise QueryError: when that would be more than L{MAX_BUCKETS} buckets.
    """
    if (until - since) // width + 2 > MAX_BUCKETS:
        raise QueryError("interval", f"more than {MAX_BUCKETS} buckets; choose a larger interval")
    local = microsToDatetime(since).astimezone(zone)
    if width % DAY == 0:
        days = width // DAY
        # Count whole days from a fixed local date so every query agrees on
        # where a multi-day bucket starts.
        ordinal = local.date().toordinal()
        first = ordinal - (ordinal - 1) % days
        starts: list[int] = []
        day = first
        while True:
            start = _localMidnight(day, zone)
            if start > since and not starts:
                # since falls before this local midnight (never in practice).
                day -= days
                continue
            starts.append(start)
            if start >= until:
                break
            day += days
        return starts
    utcoffset = local.utcoffset()
    offset = int(utcoffset.total_seconds() * SECOND) if utcoffset is not None else 0
    first = (since + offset) // width * width - offset
    count = -(-(until - first) // width)
    return [first + n * width for n in range(count + 1)]


def _localMidnight(ordinal: int, zone: tzinfo) -> int:
    day = datetime.fromordinal(ordinal)
    midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
    # fold=0 picks the first of two midnights and skips a missing one forward.
    return datetimeToMicros(midnight.astimezone(timezone.utc))


def autoInterval(since: int, until: int) -> int:
    """
    @return: the smallest of L{AUTO_INTERVALS} giving at most
        L{AUTO_BUCKETS} buckets over C{[since, until)}.
    """
    span = max(until - since, 1)
    for text in AUTO_INTERVALS:
        width = parseInterval(text)
        if span / width <= AUTO_BUCKETS:
            return width
    return parseInterval(AUTO_INTERVALS[-1])


def _formatStart(micros: int, zone: tzinfo) -> str:
    moment = microsToDatetime(micros)
    if zone is timezone.utc:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.astimezone(zone).isoformat(timespec="microseconds")


def foldCounts(
    counts: dict[tuple[int, int], int], origin: int, slot: int, starts: list[int]
) -> tuple[list[int], list[dict[int, int]]]:
    """
    Fold per-slot counts (slot C{n} starts at C{origin + n * slot}) into the
    buckets L{bucketStarts} gave.

    @return: the count per bucket and the count per level per bucket.
    """
    buckets = len(starts) - 1
    totals = [0] * buckets
    levels: list[dict[int, int]] = [{} for _ in range(buckets)]
    for (n, level), count in counts.items():
        at = origin + n * slot
        index = bisect.bisect_right(starts, at) - 1
        if 0 <= index < buckets:
            totals[index] += count
            levels[index][level] = levels[index].get(level, 0) + count
    return totals, levels


def _levelNames(counts: dict[int, int]) -> dict[str, int]:
    return {LEVEL_NAMES[level]: n for level, n in sorted(counts.items()) if n}


class StatsResource(JSONResource):
    """
    C{GET /stats}; see the module docstring.
    """

    isLeaf = True

    def __init__(self, store: IStore, *, now: Callable[[], int] = nowMicros) -> None:
        """
        @param now: the current time in microseconds: the end of a histogram
            of a quiet store, and what relative times are resolved against.
        """
        super().__init__()
        self.store = store
        self._nowMicros = now

    def render_GET(self, request: Request) -> object:
        args = request.args or {}
        try:
            query = parseQuery(
                {k: v for k, v in args.items() if k not in (b"limit", b"sample")},
                allowUnlimited=True,
                accepted=STATS_PARAMETERS,
                now=self._nowMicros,
            )
            by = _arg(args, b"by")
            if by:
                limit = _limit(args)
                if by.startswith("field.") and len(by) > len("field."):
                    sample = parseCount(args, "sample", None, MAX_SAMPLE)
                    found = topFieldValues(self.store, query, by[len("field.") :], limit, sample)
                    return renderAsync(request, found.addCallback(lambda body: writeJSON(request, 200, body)))
                if by not in BY_COLUMNS:
                    raise QueryError(
                        "by", f"must be one of {', '.join(BY_COLUMNS)} or field.NAME, not {by!r}"
                    )
                return renderAsync(request, self._top(request, query, by, limit))
            intervalText = _arg(args, b"interval")
            width = parseInterval(intervalText) if intervalText and intervalText != "auto" else None
            zoneText = _arg(args, b"tz") or "UTC"
            zone = parseZone(zoneText)
        except QueryError as e:
            return errorBody(request, 400, str(e), **e.details())
        return renderAsync(request, self._histogram(request, query, width, zone, zoneText))

    def _top(self, request: Request, query: Query, by: str, limit: int) -> Deferred[bytes]:
        def render(counts: dict[Any, int]) -> bytes:
            ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
            values = [
                {"value": LEVEL_NAMES[value] if by == "level" else value, "count": count}
                for value, count in ranked[:limit]
            ]
            return writeJSON(request, 200, {"total": sum(counts.values()), "by": by, "values": values})

        return self.store.top(query, by).addCallback(render)  # type: ignore[no-any-return]

    def _histogram(
        self, request: Request, query: Query, width: int | None, zone: tzinfo, zoneText: str
    ) -> Deferred[bytes]:
        if query.since is not None and query.until is not None:
            span: Deferred[Any] = succeed(None)
        else:
            span = self.store.timeRange(query)

        def count(found: tuple[int, int] | None) -> Deferred[bytes]:
            now = self._nowMicros()
            until = query.until
            if until is None:
                # The span of the matches when there are any: a histogram of
                # everything should not stretch to now from a quiet store.
                until = found[1] + 1 if found else now
            since = query.since
            if since is None:
                since = found[0] if found else until - 3600 * SECOND
            if since >= until:
                since = until - 1
            chosen = width if width is not None else autoInterval(since, until)
            try:
                starts = bucketStarts(since, until, chosen, zone)
            except QueryError as e:
                return succeed(errorBody(request, 400, str(e), **e.details()))
            slot = _slotWidth(starts)
            bounded = replace(query, since=since, until=until, cursor=None)
            d = self.store.histogram(bounded, starts[0], slot)

            def render(counts: dict[tuple[int, int], int]) -> bytes:
                totals, levels = foldCounts(counts, starts[0], slot, starts)
                allLevels: dict[int, int] = {}
                for perLevel in levels:
                    for level, n in perLevel.items():
                        allLevels[level] = allLevels.get(level, 0) + n
                body = {
                    "total": sum(totals),
                    "levels": _levelNames(allLevels),
                    "interval": formatInterval(chosen),
                    "since": _formatStart(since, zone),
                    "until": _formatStart(until, zone),
                    "tz": zoneText,
                    "buckets": [
                        {"start": _formatStart(start, zone), "count": total, "levels": _levelNames(perLevel)}
                        for start, total, perLevel in zip(starts, totals, levels, strict=False)
                    ],
                }
                return writeJSON(request, 200, body)

            return d.addCallback(render)  # type: ignore[no-any-return]

        return span.addCallback(count)


def _slotWidth(starts: list[int]) -> int:
    """
    @return: the largest width dividing every distance between bucket starts:
        the interval itself, or less when days differ in length.
    """
    width = 0
    for start in starts[1:]:
        width = math.gcd(width, start - starts[0])
    return width or 1


def _arg(args: dict[bytes, list[bytes]], name: bytes) -> str | None:
    values = args.get(name)
    return values[-1].decode("utf-8", "replace").strip() if values else None


def _limit(args: dict[bytes, list[bytes]]) -> int:
    text = _arg(args, b"limit")
    if not text:
        return DEFAULT_TOP
    try:
        limit = int(text)
    except ValueError:
        raise QueryError("limit", f"not an integer: {text!r}") from None
    if not 1 <= limit <= MAX_TOP:
        raise QueryError("limit", f"must be between 1 and {MAX_TOP}")
    return limit
