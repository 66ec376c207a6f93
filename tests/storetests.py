"""
The L{IStore} contract as a test mixin, run against every store
implementation (see C{tests/test_store_sqlite.py} and
C{tests/test_store_memory.py}).
"""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import Any

import orjson
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks, succeed

from logsvc.pagesize import PAGE_BYTES, pageCut, rowBytes
from logsvc.query import Query
from logsvc.record import Record
from logsvc.store.base import IStore

T0 = 1_767_323_045_000_000
SECOND = 1_000_000


def record(
    message: str = "m",
    *,
    ts: int = T0,
    level: int = 6,
    source: str = "host",
    service: str = "svc",
    fields: dict[str, Any] | None = None,
    received: int | None = None,
) -> Record:
    return Record(
        ts,
        T0 if received is None else received,
        level,
        source,
        service,
        message,
        orjson.dumps(fields).decode() if fields else None,
    )


# The query language: one table of cases, run on every store (through
# QueryLanguageTestsMixin, part of StoreTestsMixin) and on the live tail's
# matcher (tests/test_web_tail.py).

#: Records of the query language's cases: (message, level, source,
#: service, fields); the n-th (from 1) is at T0 + n seconds.
LANGUAGE_RECORDS: list[tuple[str, int, str, str, dict[str, Any] | None]] = [
    ("GET /api/v1/users 200 in 12 ms", 6, "web-1", "api",
     {"user": 42, "path": "/api/v1/users", "status": 200, "ms": 12, "trace_id": "abc"}),
    ("GET /api/v1/items 500 in 734 ms", 3, "web-3", "api",
     {"user": "42", "path": "/api/v1/items", "status": 500, "ms": 734.5}),
    ("timeout after 30 ms talking to db", 4, "web-3", "web", {"user": 7, "ms": "900", "level": "custom"}),
    ("connection refused at 10:32:00 from fe80::1", 2, "db-1", "worker",
     {"ms": "fast", "when": "2026-12-04T10:00:00Z"}),
    ("see http://x/y for details", 7, "web-1", "", None),
    ("User Admin logged in", 5, "auth-1", "auth",
     {"user": "admin", "ok": True, "when": "2026-12-04T12:00:00Z", "nested": {"a": 1}}),
    ("timeout after 1500 ms", 3, "web-2", "api", {"status": 504, "ms": 1500, "trace_id": None}),
    ("Error: disk full", 0, "db-1", "worker", {"dot.key": "d", "tags": ["x"]}),
]


def languageRecords() -> list[Record]:
    """@return: L{LANGUAGE_RECORDS} as records, in order."""
    return [
        record(message, ts=T0 + (n + 1) * SECOND, level=level, source=source, service=service, fields=fields)
        for n, (message, level, source, service, fields) in enumerate(LANGUAGE_RECORDS)
    ]


def _at(seconds: int) -> str:
    from logsvc.record import formatMicros

    return formatMicros(T0 + seconds * SECOND)


#: (q, the numbers (from 1) of the records it matches, in order).
LANGUAGE_CASES: list[tuple[str, list[int]]] = [
    ("", [1, 2, 3, 4, 5, 6, 7, 8]),
    ("timeout", [3, 7]),
    ('"timeout after"', [3, 7]),
    ("time*", [3, 7]),
    ("-timeout", [1, 2, 4, 5, 6, 8]),
    ("api", [1, 2, 7]),
    ("(timeout)", [3, 7]),
    # Field terms on columns: exact and case-sensitive.
    ("service:api", [1, 2, 7]),
    ("service:API", []),
    ("-service:api", [3, 4, 5, 6, 8]),
    ("service:ap*", [1, 2, 7]),
    ("service:*", [1, 2, 3, 4, 6, 7, 8]),
    ("source:web-3", [2, 3]),
    ("source>web-2", [2, 3]),
    ("id>6", [7, 8]),
    (f"ts>={_at(3)} ts<{_at(5)}", [3, 4]),
    # Field terms on fields: strings exactly, numbers as numbers.
    ("user:42", [1, 2]),
    ('user:"42"', [1, 2]),
    ("user:4*", [2]),
    ('path:"/api/v1/users"', [1]),
    ("path:/api/v1/items", [2]),
    ("ok:true", [6]),
    ("dot.key:d", [8]),
    ("user:admin", [6]),
    ("user:Admin", []),
    ("-user:admin", [1, 2, 3, 4, 5, 7, 8]),
    ("-ok:false", [1, 2, 3, 4, 5, 6, 7, 8]),
    ("-status:abc", [1, 2, 3, 4, 5, 6, 7, 8]),
    # Existence: any value, null included.
    ("trace_id:*", [1, 7]),
    ("nested:*", [6]),
    ("-trace_id:*", [2, 3, 4, 5, 6, 8]),
    # Comparisons: numbers (and strings that read as one), times, strings.
    ("ms>500", [2, 3, 7]),
    ("ms>=12 ms<=734.5", [1, 2]),
    ("status>=500", [2, 7]),
    ("-ms>500", [1, 4, 5, 6, 8]),
    (f"when>{'2026-12-04T11:00:00Z'}", [6]),
    ("when<2026-12-04T11:00:00Z", [4]),
    ("user>a", [6]),
    ("ms<fast", [3]),
    ("ms<=fast", [3, 4]),
    # Levels: names in any case; >= means that severity or worse.
    ("level>=warning", [2, 3, 4, 7, 8]),
    ("level:ERROR", [2, 7]),
    ("level:err", [2, 7]),
    ("level<notice", [1, 5]),
    ("level>error", [4, 8]),
    ("level<=notice", [1, 5, 6]),
    ("fields.level:custom", [3]),
    ("fields.level:*", [3]),
    # OR, AND, parentheses, exclusions of groups.
    ("timeout OR refused", [3, 4, 7]),
    ("timeout AND api", [7]),
    ("timeout api OR refused", [4, 7]),
    ("timeout (api OR web)", [3, 7]),
    ("-(service:api OR service:worker)", [3, 5, 6]),
    ("(service:api OR service:web) -timeout", [1, 2]),
    ("ms>500 -service:web", [2, 7]),
    ("service:api OR user:7", [1, 2, 3, 7]),
    ("(status:500 OR status:504) OR source:db-1", [2, 4, 7, 8]),
    ("timeout or", []),
    ("and or", []),
    # Regular expressions on the message (RE2).
    ('~"timeout after \\d+ ms"', [3, 7]),
    ('~"(?i)user admin"', [6]),
    ('~"^GET"', [1, 2]),
    ('~"^GET" -~"500"', [1]),
    ('~"\\d{4} ms"', [7]),
    ('api ~"[0-9]{3} in"', [1, 2]),
    # message: words in the message only.
    ("message:timeout", [3, 7]),
    ("message:api", [1, 2]),
    # Ordinary text stays text: times, URLs, IPv6, a trailing colon.
    ("10:32:00", [4]),
    ("http://x/y", [5]),
    ("fe80::1", [4]),
    ("Error:", [8]),
    ("users-list -", []),
]


class QueryLanguageTestsMixin:
    """
    The query language's semantics (L{LANGUAGE_CASES}), the same on every
    store.  Part of L{StoreTestsMixin}; a store whose search index trails
    overrides L{settle}.
    """

    store: IStore
    assertEqual: Any
    assertRaises: Any
    failureResultOf: Any

    def settle(self) -> Deferred[None]:
        """
        @return: a Deferred firing once every appended record is visible
            to queries (and, for a store with a search index, indexed).
        """
        return succeed(None)

    @inlineCallbacks
    def fillLanguage(self) -> Generator[Deferred[Any], Any, int]:
        first: int = yield self.store.append(languageRecords())
        yield self.settle()
        return first

    @inlineCallbacks
    def test_languageCases(self) -> Generator[Deferred[Any], Any, None]:
        """Every case of the query language matches exactly its records, in both orders."""
        first = yield self.fillLanguage()
        for q, expected in LANGUAGE_CASES:
            for order in ("asc", "desc"):
                rows = yield self.store.query(Query(q=q, limit=None, order=order))
                numbers = [row[0] - first + 1 for row in rows]
                want = expected if order == "asc" else expected[::-1]
                self.assertEqual(numbers, want, f"q={q!r} order={order}")

    @inlineCallbacks
    def test_languagePagedAndCounted(self) -> Generator[Deferred[Any], Any, None]:
        """Pages, histograms, top values and time ranges of a query agree with its matches."""
        first = yield self.fillLanguage()
        for q, expected in LANGUAGE_CASES:
            query = Query(q=q, limit=2, order="asc", since=T0, until=T0 + 100 * SECOND)
            seen: list[int] = []
            while True:
                rows = yield self.store.query(query)
                seen.extend(row[0] - first + 1 for row in rows[:2])
                if len(rows) <= 2:
                    break
                query = query.after(rows[1][1], rows[1][0])
            self.assertEqual(seen, expected, q)
            counts = yield self.store.histogram(Query(q=q, since=T0, until=T0 + 100 * SECOND), T0, 100 * SECOND)
            self.assertEqual(sum(counts.values()), len(expected), q)
            services = yield self.store.top(Query(q=q), "service")
            self.assertEqual(sum(services.values()), len(expected), q)
            span = yield self.store.timeRange(Query(q=q))
            self.assertEqual(
                span, (T0 + expected[0] * SECOND, T0 + expected[-1] * SECOND) if expected else None, q
            )

    @inlineCallbacks
    def test_languageWithPlainFilters(self) -> Generator[Deferred[Any], Any, None]:
        """q combines with the plain arguments (level, service, field.K) by AND."""
        first = yield self.fillLanguage()
        rows = yield self.store.query(
            Query(q="timeout OR user:42", services=("api",), level=3, limit=None, order="asc")
        )
        self.assertEqual([row[0] - first + 1 for row in rows], [2, 7])
        rows = yield self.store.query(Query(q="-timeout", fields=(("user", "42"),), limit=None, order="asc"))
        self.assertEqual([row[0] - first + 1 for row in rows], [1, 2])

    @inlineCallbacks
    def test_languageAfterId(self) -> Generator[Deferred[Any], Any, None]:
        """A tail's replay (afterId) applies the query language too."""
        first = yield self.fillLanguage()
        rows = yield self.store.afterId(Query(q="ms>500 OR refused"), first + 2, 10)
        self.assertEqual([row[0] - first + 1 for row in rows], [4, 7])


class StoreTestsMixin(QueryLanguageTestsMixin):
    """
    Tests of the L{IStore} contract.  A subclass mixes this into a trial
    C{TestCase} and defines L{makeStore}, returning a started store (its
    cleanup registered with C{addCleanup}).
    """

    store: IStore

    # Provided by trial's TestCase.
    assertEqual: Any
    assertTrue: Any
    assertIsNone: Any

    def makeStore(self) -> IStore:
        raise NotImplementedError()

    def setUp(self) -> None:
        self.store = self.makeStore()

    @inlineCallbacks
    def add(self, *records: Record) -> Generator[Deferred[Any], Any, int]:
        first: int = yield self.store.append(list(records))
        return first

    @inlineCallbacks
    def messages(self, **kwargs: Any) -> Generator[Deferred[Any], Any, list[str]]:
        rows = yield self.store.query(Query(**kwargs))
        return [row[6] for row in rows]

    # Appending

    @inlineCallbacks
    def test_idsConsecutive(self) -> Generator[Deferred[Any], Any, None]:
        """An append fires with its first id; ids are consecutive in append order."""
        first = yield self.add(record("a"), record("b"), record("c"))
        second = yield self.add(record("d"), record("e"))
        self.assertEqual(second, first + 3)
        rows = yield self.store.query(Query(order="asc", limit=None))
        self.assertEqual(
            [(row[0], row[6]) for row in rows], list(zip(range(first, first + 5), "abcde", strict=True))
        )

    @inlineCallbacks
    def test_concurrentAppendsConsecutive(self) -> Generator[Deferred[Any], Any, None]:
        """Appends issued together get consecutive id ranges in the order they were made."""
        sizes = [3, 1, 4, 1, 5, 9, 2, 6]
        appends = [
            self.store.append([record(f"{n}.{i}") for i in range(size)])
            for n, size in enumerate(sizes)
        ]
        firsts = yield gatherResults(appends)
        expected = [firsts[0]]
        for size in sizes[:-1]:
            expected.append(expected[-1] + size)
        self.assertEqual(firsts, expected)
        rows = yield self.store.query(Query(order="asc", limit=None))
        byId = {row[0]: row[6] for row in rows}
        for n, (first, size) in enumerate(zip(firsts, sizes, strict=True)):
            self.assertEqual(
                [byId[first + i] for i in range(size)], [f"{n}.{i}" for i in range(size)]
            )

    @inlineCallbacks
    def test_rowRoundTrip(self) -> Generator[Deferred[Any], Any, None]:
        """A stored row holds exactly the record's values, in ROW_COLUMNS order."""
        original = record(
            "h\u00e9llo \u2603\nsecond line",
            ts=T0 + 123,
            received=T0 + 456,
            level=2,
            source="web-1",
            service="api",
            fields={"user": {"id": 7}, "tags": ["a"]},
        )
        first = yield self.add(original, record("plain", ts=T0 + 999))
        rows = yield self.store.query(Query(order="asc"))
        self.assertEqual(rows[0], (first, *original))
        self.assertIsNone(rows[1][7])

    @inlineCallbacks
    def test_count(self) -> Generator[Deferred[Any], Any, None]:
        """count() is the number of stored records."""
        empty = yield self.store.count()
        yield self.add(*[record() for _ in range(7)])
        full = yield self.store.count()
        self.assertEqual((empty, full), (0, 7))

    # Order and limit

    @inlineCallbacks
    def test_orderDesc(self) -> Generator[Deferred[Any], Any, None]:
        """By default records come newest first by event time, ties by id descending."""
        yield self.add(
            record("b", ts=T0 + 2),
            record("a", ts=T0 + 1),
            record("c", ts=T0 + 2),
            record("d", ts=T0 + 3),
        )
        found = yield self.messages()
        self.assertEqual(found, ["d", "c", "b", "a"])

    @inlineCallbacks
    def test_orderAsc(self) -> Generator[Deferred[Any], Any, None]:
        """order=asc gives oldest first by event time, ties by id ascending."""
        yield self.add(
            record("b", ts=T0 + 2),
            record("a", ts=T0 + 1),
            record("c", ts=T0 + 2),
            record("d", ts=T0 + 3),
        )
        found = yield self.messages(order="asc")
        self.assertEqual(found, ["a", "b", "c", "d"])

    @inlineCallbacks
    def test_limitPlusOne(self) -> Generator[Deferred[Any], Any, None]:
        """A query returns up to limit + 1 rows, so the caller can tell another page exists."""
        yield self.add(*[record(str(i), ts=T0 + i) for i in range(10)])
        five = yield self.messages(limit=5)
        nine = yield self.messages(limit=9)
        ten = yield self.messages(limit=10)
        everything = yield self.messages(limit=None)
        self.assertEqual(five, ["9", "8", "7", "6", "5", "4"])
        self.assertEqual((len(nine), len(ten), len(everything)), (10, 10, 10))

    # Filters

    @inlineCallbacks
    def test_sinceUntil(self) -> Generator[Deferred[Any], Any, None]:
        """since is inclusive and until exclusive, on event time."""
        yield self.add(*[record(str(i), ts=T0 + i * SECOND) for i in range(5)])
        found = yield self.messages(since=T0 + SECOND, until=T0 + 3 * SECOND, order="asc")
        self.assertEqual(found, ["1", "2"])

    @inlineCallbacks
    def test_level(self) -> Generator[Deferred[Any], Any, None]:
        """level keeps that severity or worse."""
        yield self.add(*[record(str(n), level=n) for n in range(8)])
        found = yield self.messages(level=3, order="asc")
        self.assertEqual(found, ["0", "1", "2", "3"])
        worst = yield self.messages(level=0)
        self.assertEqual(worst, ["0"])

    @inlineCallbacks
    def test_sources(self) -> Generator[Deferred[Any], Any, None]:
        """sources keeps records from any of the named sources, exactly."""
        yield self.add(
            record("a", source="web1"), record("b", source="web2"), record("c", source="web")
        )
        one = yield self.messages(sources=("web1",))
        two = yield self.messages(sources=("web1", "web"), order="asc")
        self.assertEqual((one, two), (["a"], ["a", "c"]))

    @inlineCallbacks
    def test_services(self) -> Generator[Deferred[Any], Any, None]:
        """services keeps records of any of the named services; "" names records without one."""
        yield self.add(
            record("a", service="api"), record("b", service=""), record("c", service="db")
        )
        one = yield self.messages(services=("db",))
        two = yield self.messages(services=("api", ""), order="asc")
        self.assertEqual((one, two), (["c"], ["a", "b"]))

    @inlineCallbacks
    def test_words(self) -> Generator[Deferred[Any], Any, None]:
        """q keeps records whose message holds every word, ignoring ASCII case."""
        yield self.add(
            record("Disk FULL on /var"),
            record("disk almost full"),
            record("disk ok"),
            record("full moon"),
        )
        found = yield self.messages(q="full disk", order="asc")
        self.assertEqual(found, ["Disk FULL on /var", "disk almost full"])

    @inlineCallbacks
    def test_wordsLiteral(self) -> Generator[Deferred[Any], Any, None]:
        """Characters special to SQL LIKE (% _ \\) in q match only themselves."""
        yield self.add(
            record("50% done"), record("500 done"), record("a_b"), record("axb"), record("c\\d")
        )
        percent = yield self.messages(q="50%")
        underscore = yield self.messages(q="a_b")
        backslash = yield self.messages(q="c\\d")
        self.assertEqual((percent, underscore, backslash), (["50% done"], ["a_b"], ["c\\d"]))

    @inlineCallbacks
    def test_fields(self) -> Generator[Deferred[Any], Any, None]:
        """A field filter matches a string value exactly and a number as a number."""
        yield self.add(
            record("a", fields={"user": "ann", "code": "500"}),
            record("b", fields={"user": "bob", "code": 500}),
            record("c"),
            record("d", fields={"user": "ann"}),
        )
        ann = yield self.messages(fields=(("user", "ann"),), order="asc")
        code = yield self.messages(fields=(("code", "500"),))
        both = yield self.messages(fields=(("user", "ann"), ("code", "500")))
        self.assertEqual((ann, code, both), (["a", "d"], ["b", "a"], ["a"]))

    @inlineCallbacks
    def test_combined(self) -> Generator[Deferred[Any], Any, None]:
        """All filters apply together."""
        yield self.add(
            record("hit one", ts=T0 + 5, level=3, source="h", service="api"),
            record("hit two", ts=T0 + 5, level=4, source="h", service="api"),
            record("hit three", ts=T0 + 5, level=3, source="x", service="api"),
            record("hit four", ts=T0 + 5, level=3, source="h", service="db"),
            record("miss", ts=T0 + 5, level=3, source="h", service="api"),
            record("hit early", ts=T0, level=3, source="h", service="api"),
        )
        found = yield self.messages(
            since=T0 + 1, level=3, sources=("h",), services=("api",), q="hit"
        )
        self.assertEqual(found, ["hit one"])

    # Cursors and paging

    @inlineCallbacks
    def test_cursor(self) -> Generator[Deferred[Any], Any, None]:
        """A cursor starts strictly after its (ts, id), in either order."""
        first = yield self.add(record("a", ts=T0), record("b", ts=T0), record("c", ts=T0 + 1))
        desc = yield self.messages(cursor=(T0, first + 1))
        asc = yield self.messages(cursor=(T0, first), order="asc")
        self.assertEqual((desc, asc), (["a"], ["b", "c"]))

    @inlineCallbacks
    def pageThrough(
        self, order: str, pageSize: int, between: Any = None
    ) -> Generator[Deferred[Any], Any, list[int]]:
        """
        Page through every record with C{next}-style cursors, calling
        C{between(pageNumber, lastRow)} (which may return a Deferred) between
        pages.

        @return: the ids visited, in order.
        """
        seen: list[int] = []
        query = Query(order=order, limit=pageSize)
        for page in range(1000):
            rows = yield self.store.query(query)
            seen.extend(row[0] for row in rows[:pageSize])
            if len(rows) <= pageSize:
                return seen
            last = rows[pageSize - 1]
            query = query.after(last[1], last[0])
            if between is not None:
                yield between(page, last)
        raise AssertionError("paging did not end")

    @inlineCallbacks
    def test_pagingExactlyOnce(self) -> Generator[Deferred[Any], Any, None]:
        """Paging visits every record once, in order, in both orders, with ties in ts."""
        rng = random.Random(4)
        yield self.add(*[record(str(i), ts=T0 + rng.randrange(10)) for i in range(53)])
        rows = yield self.store.query(Query(order="desc", limit=None))
        for order, expected in (("desc", rows), ("asc", rows[::-1])):
            for size in (1, 7, 53, 100):
                seen = yield self.pageThrough(order, size)
                self.assertEqual(seen, [row[0] for row in expected], (order, size))

    @inlineCallbacks
    def test_pagingUnderInserts(self) -> Generator[Deferred[Any], Any, None]:
        """
        Paging newest-first while records arrive visits every earlier record
        exactly once; arrivals older than the cursor are visited, newer ones not.
        """
        rng = random.Random(7)
        first = yield self.add(
            *[record(f"o{i}", ts=T0 + rng.randrange(0, 40) * SECOND) for i in range(60)]
        )
        original = set(range(first, first + 60))
        behind: set[int] = set()
        ahead: set[int] = set()

        @inlineCallbacks
        def insert(page: int, last: tuple[Any, ...]) -> Generator[Deferred[Any], Any, None]:
            ts = last[1]
            arrivals = [
                record(f"old{page}", ts=ts - SECOND),
                record(f"ancient{page}", ts=T0 - SECOND),
                record(f"new{page}", ts=T0 + 100 * SECOND),
                record(f"tie{page}", ts=ts),
            ]
            first = yield self.add(*arrivals)
            for offset, arrival in enumerate(arrivals):
                position = (arrival.ts, first + offset)
                (behind if position < (ts, last[0]) else ahead).add(first + offset)

        seen = yield self.pageThrough("desc", 7, insert)
        self.assertEqual(len(seen), len(set(seen)), "a record was visited twice")
        self.assertTrue(original <= set(seen), "an original record was missed")
        self.assertTrue(behind <= set(seen), "a record inserted behind the cursor was missed")
        self.assertEqual(set(seen) & ahead, set())
        self.assertTrue(len(behind) >= 10 and len(ahead) >= 10)

    @inlineCallbacks
    def test_pagingAscUnderInserts(self) -> Generator[Deferred[Any], Any, None]:
        """Paging oldest-first while records arrive visits every record once, new arrivals included."""
        first = yield self.add(*[record(f"o{i}", ts=T0 + (i % 13) * SECOND) for i in range(40)])
        arrived: set[int] = set()
        old: set[int] = set()

        @inlineCallbacks
        def insert(page: int, last: tuple[Any, ...]) -> Generator[Deferred[Any], Any, None]:
            newId = yield self.add(record(f"new{page}", ts=T0 + 50 * SECOND))
            arrived.add(newId)
            oldId = yield self.add(record(f"old{page}", ts=T0 - SECOND))
            old.add(oldId)

        seen = yield self.pageThrough("asc", 6, insert)
        self.assertEqual(len(seen), len(set(seen)), "a record was visited twice")
        self.assertTrue(set(range(first, first + 40)) <= set(seen))
        self.assertTrue(arrived <= set(seen))
        self.assertEqual(set(seen) & old, set())

    @inlineCallbacks
    def test_pagingWithFilter(self) -> Generator[Deferred[Any], Any, None]:
        """Paging a filtered query visits exactly the matching records."""
        yield self.add(*[record(str(i), ts=T0 + i, level=i % 8) for i in range(40)])
        query = Query(level=3, limit=4)
        seen: list[str] = []
        while True:
            rows = yield self.store.query(query)
            seen.extend(row[6] for row in rows[:4])
            if len(rows) <= 4:
                break
            query = query.after(rows[3][1], rows[3][0])
        self.assertEqual(seen, [str(i) for i in range(39, -1, -1) if i % 8 <= 3])

    # Pages bounded in bytes

    @inlineCallbacks
    def test_pagesBoundedInBytes(self) -> Generator[Deferred[Any], Any, None]:
        """
        Pages of large records end by bytes (about PAGE_BYTES) before their
        record limit, a record over the budget comes alone, and paging still
        visits every record once: for query, exportPage and afterId alike.
        """
        big = 1024 * 1024
        yield self.add(*[record(str(n) + "x" * big, ts=T0 + n) for n in range(20)])
        yield self.add(record("huge" + "y" * (PAGE_BYTES + big), ts=T0 + 20))
        # query: pages of at most PAGE_BYTES but for one lone record.
        seen: list[int] = []
        query = Query(limit=100, order="asc")
        while True:
            rows = yield self.store.query(query)
            if not rows:
                # A lone record over the budget may be followed by nothing.
                break
            page, more = pageCut(rows, query.limit)
            self.assertTrue(len(page) == 1 or sum(rowBytes(r) for r in page) <= PAGE_BYTES, len(page))
            self.assertTrue(sum(rowBytes(r) for r in rows) <= PAGE_BYTES + len(rows[-1][6]) + 4096)
            seen.extend(r[0] for r in page)
            if not more:
                break
            query = query.after(page[-1][1], page[-1][0])
        self.assertEqual(seen, sorted(set(seen)))
        self.assertEqual(len(seen), 21)
        self.assertTrue(len(seen) > 3)
        # exportPage
        exported = 0
        query = Query(limit=100, order="asc")
        while True:
            body, count, last = yield self.store.exportPage(query)
            self.assertTrue(count == 1 or len(body) <= PAGE_BYTES, (count, len(body)))
            exported += count
            if last is None:
                break
            query = query.after(*last)
        self.assertEqual(exported, 21)
        # afterId: the tail's replay
        replayed: list[int] = []
        lastId = 0
        while True:
            rows = yield self.store.afterId(Query(), lastId, 100)
            if not rows:
                break
            self.assertTrue(len(rows) < 20)
            replayed.extend(r[0] for r in rows)
            lastId = rows[-1][0]
        self.assertEqual(len(replayed), 21)
