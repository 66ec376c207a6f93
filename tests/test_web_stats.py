"""
Tests for L{logsvc.web.stats}: C{GET /stats} histograms and top values,
bucket edges, time zones, and its argument errors.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

import orjson
import treq
from twisted.trial.unittest import SynchronousTestCase

from logsvc.query import QueryError
from logsvc.record import Record, parseTimestamp
from logsvc.testing import MemoryLogService
from logsvc.web.stats import (
    MAX_BUCKETS,
    autoInterval,
    bucketStarts,
    formatInterval,
    parseInterval,
    parseZone,
)

HOUR = 3600 * 1_000_000


def at(text: str) -> int:
    """Microseconds of an RFC 3339 time."""
    return parseTimestamp(text)


class StatsAPITests(SynchronousTestCase):
    def setUp(self) -> None:
        self.service = MemoryLogService()

    def add(self, *records: tuple[str, int, str]) -> None:
        """Store records given as (time, level, service)."""
        self.service.store.append(
            [Record(at(ts), at(ts), level, "h", service, "m", None) for ts, level, service in records]
        )

    def get(self, path: str) -> tuple[int, Any]:
        response = self.successResultOf(self.service.treq.get("http://logsvc.test" + path))
        return response.code, orjson.loads(self.successResultOf(treq.content(response)))

    def test_edges(self) -> None:
        """A record at a bucket's start counts in it; one a microsecond earlier in the one before."""
        self.add(
            ("2026-01-01T00:59:59.999999Z", 6, "a"),
            ("2026-01-01T01:00:00Z", 3, "a"),
            ("2026-01-01T01:30:00Z", 6, "b"),
        )
        code, body = self.get("/stats?since=2026-01-01T00:00:00Z&until=2026-01-01T03:00:00Z&interval=1h")
        self.assertEqual(code, 200)
        self.assertEqual(body["total"], 3)
        self.assertEqual(body["levels"], {"error": 1, "info": 2})
        self.assertEqual(
            body["buckets"],
            [
                {"start": "2026-01-01T00:00:00.000000Z", "count": 1, "levels": {"info": 1}},
                {"start": "2026-01-01T01:00:00.000000Z", "count": 2, "levels": {"error": 1, "info": 1}},
                {"start": "2026-01-01T02:00:00.000000Z", "count": 0, "levels": {}},
            ],
        )

    def test_until_exclusive(self) -> None:
        """A record at until is outside; since is inside."""
        self.add(("2026-01-01T00:00:00Z", 6, "a"), ("2026-01-01T00:01:00Z", 6, "a"))
        _, body = self.get("/stats?since=2026-01-01T00:00:00Z&until=2026-01-01T00:01:00Z&interval=10s")
        self.assertEqual(body["total"], 1)
        self.assertEqual(len(body["buckets"]), 6)

    def test_filters(self) -> None:
        """The GET /logs filters apply to the counts."""
        self.add(("2026-01-01T00:00:00Z", 3, "a"), ("2026-01-01T00:00:01Z", 6, "a"), ("2026-01-01T00:00:02Z", 3, "b"))
        _, body = self.get("/stats?level=error&service=a&interval=1m")
        self.assertEqual((body["total"], body["levels"]), (1, {"error": 1}))

    def test_time_zone_days(self) -> None:
        """Day buckets start at local midnight; the day clocks go forward lasts 23 hours."""
        self.add(("2026-03-28T23:30:00Z", 6, "a"), ("2026-03-29T22:30:00Z", 6, "a"))
        _, body = self.get(
            "/stats?since=2026-03-28T00:00:00%2B01:00&until=2026-03-31T00:00:00%2B02:00&interval=1d&tz=Europe/Berlin"
        )
        self.assertEqual(
            [(b["start"], b["count"]) for b in body["buckets"]],
            [
                ("2026-03-28T00:00:00.000000+01:00", 0),
                ("2026-03-29T00:00:00.000000+01:00", 1),
                ("2026-03-30T00:00:00.000000+02:00", 1),
            ],
        )

    def test_fixed_offset(self) -> None:
        """A fixed offset such as +05:30 aligns hour buckets to its half hours."""
        self.add(("2026-01-01T00:29:00Z", 6, "a"), ("2026-01-01T00:31:00Z", 6, "a"))
        _, body = self.get("/stats?since=2026-01-01T00:00:00Z&until=2026-01-01T01:00:00Z&interval=1h&tz=%2B05:30")
        self.assertEqual(
            [(b["start"], b["count"]) for b in body["buckets"]],
            [("2026-01-01T05:00:00.000000+05:30", 1), ("2026-01-01T06:00:00.000000+05:30", 1)],
        )

    def test_automatic_interval(self) -> None:
        """Without interval, one is chosen from the span of the matches."""
        self.add(("2026-01-01T00:00:00Z", 6, "a"), ("2026-01-02T00:00:00Z", 6, "a"))
        _, body = self.get("/stats?until=2026-01-02T00:00:01Z")
        self.assertEqual(body["interval"], "15m")
        self.assertEqual(body["total"], 2)
        self.assertEqual(body["buckets"][0]["start"], "2026-01-01T00:00:00.000000Z")

    def test_empty(self) -> None:
        """No records: zero total and empty buckets, not an error."""
        code, body = self.get("/stats?interval=10m")
        self.assertEqual((code, body["total"], body["levels"]), (200, 0, {}))
        self.assertTrue(all(b["count"] == 0 for b in body["buckets"]))

    def test_top(self) -> None:
        """by= lists the top values with counts, most first, at most limit."""
        self.add(
            ("2026-01-01T00:00:00Z", 3, "a"),
            ("2026-01-01T00:00:01Z", 6, "b"),
            ("2026-01-01T00:00:02Z", 3, "b"),
            ("2026-01-01T00:00:03Z", 3, "c"),
        )
        _, body = self.get("/stats?by=service&limit=2")
        self.assertEqual(body, {"total": 4, "by": "service", "values": [{"value": "b", "count": 2}, {"value": "a", "count": 1}]})
        _, body = self.get("/stats?by=level&service=b")
        self.assertEqual(body["values"], [{"value": "error", "count": 1}, {"value": "info", "count": 1}])

    def test_errors(self) -> None:
        """Bad arguments are 400s naming the argument."""
        for path, param in [
            ("/stats?interval=5x", "interval"),
            ("/stats?interval=0s", "interval"),
            ("/stats?tz=Mars/Olympus", "tz"),
            ("/stats?by=message", "by"),
            ("/stats?by=service&limit=0", "limit"),
            ("/stats?since=1&until=100000000&interval=1s", "interval"),
            ("/stats?level=loud", "level"),
        ]:
            code, body = self.get(path)
            self.assertEqual((code, body["param"]), (400, param), path)


class BucketTests(SynchronousTestCase):
    def test_intervals(self) -> None:
        """Intervals are a positive number and a unit s, m, h or d."""
        self.assertEqual([parseInterval(t) for t in ("10s", "1m", "1H", "1d")], [10**7, 6 * 10**7, HOUR, 24 * HOUR])
        self.assertEqual(formatInterval(90 * 10**6), "90s")
        self.assertRaises(QueryError, parseInterval, "1.5h")

    def test_zones(self) -> None:
        """UTC, offsets and IANA names are zones; other text is an error."""
        self.assertIs(parseZone("Z"), timezone.utc)
        self.assertEqual(parseZone("-0530").utcoffset(None).total_seconds(), -19800)  # type: ignore[union-attr]
        self.assertRaises(QueryError, parseZone, "+25:00")

    def test_starts_cover(self) -> None:
        """Bucket starts begin at or before since and end at or after until."""
        since, until = at("2026-01-01T00:10:00Z"), at("2026-01-01T02:10:00Z")
        starts = bucketStarts(since, until, HOUR, timezone.utc)
        self.assertEqual(starts, [at("2026-01-01T00:00:00Z") + n * HOUR for n in range(4)])

    def test_fall_back_day(self) -> None:
        """The day clocks go back lasts 25 hours."""
        starts = bucketStarts(
            at("2026-10-25T00:00:00+02:00"), at("2026-10-26T00:00:00+01:00"), 24 * HOUR, parseZone("Europe/Berlin")
        )
        self.assertEqual(starts[1] - starts[0], 25 * HOUR)

    def test_too_many(self) -> None:
        """More than MAX_BUCKETS buckets is refused."""
        self.assertRaises(QueryError, bucketStarts, 0, (MAX_BUCKETS + 5) * 10**6, 10**6, timezone.utc)

    def test_auto(self) -> None:
        """The automatic interval keeps the bucket count small."""
        self.assertEqual(autoInterval(0, HOUR), 30 * 10**6)
        self.assertEqual(autoInterval(0, 30 * 24 * HOUR), 6 * HOUR)
