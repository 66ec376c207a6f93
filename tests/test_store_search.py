"""
Tests for search, paging, export, stats and replay reads of both stores
(L{logsvc.store.memory.MemoryStore} and L{logsvc.store.sqlite.SqliteStore}),
through one mixin so they give the same answers.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import replace
from typing import Any

import orjson
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase

from logsvc.query import Query
from logsvc.record import Record, renderRow
from logsvc.store.memory import MemoryStore
from logsvc.store.sqlite.connection import SCHEMA_VERSION, connect
from logsvc.store.sqlite.searchindex import searchPath
from logsvc.store.sqlite.store import SqliteStore

T0 = 1_767_323_045_000_000
SECOND = 1_000_000


def record(message: str, *, ts: int = T0, level: int = 6, source: str = "h1", service: str = "api", **fields: Any) -> Record:
    """A record with the given message and fields."""
    return Record(ts, ts, level, source, service, message, orjson.dumps(fields).decode() if fields else None)


CORPUS = [
    record("connection refused by upstream", service="api", level=3, status=502),
    record("Connection was refused", service="api", status="502"),
    record("refused connection", service="auth", status=200, ok=True),
    record("user logged in", service="auth", user="ann", status=200),
    record("user logged out", service="auth", user="bob", status=200.0),
    record("GET /api/users/17 200 in 5 ms", service="web", path="/api/users/17", status=200),
    record("GET /api/items/3 404 in 1 ms", service="web", path="/api/items/3", status=404),
    record("disk full on /var", service="worker", level=2, ok=False, nothing=None),
    record("debug: cache warm", service="worker", level=7, nested={"a": 1}),
    record("Ünïcode straße 日本語 works", service="i18n", lang="de"),
    record("timeout after 30s", service="api", level=4, attempt=3),
    record("timeouts are bad", service="api", level=4),
    record('quote " and AND OR NEAR( ^x col:on', service="weird", **{'we"ird': "v", "dot.key": "d"}),
    record("connection reset", service="db", level=3, peer="10.0.0.1"),
    record("service name only", service="billing"),
]

QUERIES = [
    "connection",
    "CONNECTION refused",
    '"connection refused"',
    '"refused connection"',
    "conn*",
    "time*",
    "timeout",
    "-connection",
    "connection -reset",
    'connection -"connection refused"',
    "/api/users",
    "api",
    "billing",
    "日本語",
    "straße",
    "ünïcode",
    '"unclosed quote',
    "and or NEAR",
    "^x col:on",
    "^x \"col:on\"",
    '"" * - ( )',
    "nothing-matches-this",
    "user log*",
    "-user -connection",
]

FIELD_FILTERS = [
    [("status", "200")],
    [("status", "200.0")],
    [("status", "502")],
    [("status", "2e2")],
    [("user", "ann")],
    [("ok", "true")],
    [("ok", "false")],
    [("nothing", "null")],
    [("missing", "null")],
    [("nested", '{"a": 1}')],
    [('we"ird', "v")],
    [("dot.key", "d")],
    [("path", "/api/users/17")],
    [("status", "200"), ("user", "bob")],
    [("attempt", "3")],
    [("attempt", "9223372036854775808")],
    [("attempt", "1" * 5000)],
]


class StoreSearchMixin:
    """
    The behaviour both stores share.  Subclasses provide L{makeStore} and
    L{settle} (make everything committed visible and, when C{indexed}, in
    the search index).
    """

    store: Any

    def makeStore(self) -> Any:
        raise NotImplementedError()

    def settle(self, indexed: bool = True) -> Deferred[None]:
        raise NotImplementedError()

    @inlineCallbacks
    def fill(self, records: list[Record] = CORPUS, indexed: bool = True) -> Any:
        self.store = self.makeStore()
        yield self.store.append(list(records))
        yield self.settle(indexed)

    @inlineCallbacks
    def messages(self, **kw: Any) -> Any:
        rows = yield self.store.query(Query(limit=None, order="asc", **kw))
        return [row[6] for row in rows]

    @inlineCallbacks
    def test_words(self) -> Any:
        """Every word must occur, in any case, as a whole word."""
        yield self.fill()
        found = yield self.messages(q="CONNECTION refused")
        self.assertEqual(
            found,
            ["connection refused by upstream", "Connection was refused", "refused connection"],
        )
        found = yield self.messages(q="timeout")
        self.assertEqual(found, ["timeout after 30s"])

    @inlineCallbacks
    def test_phrase(self) -> Any:
        """A quoted phrase needs its words next to each other in order."""
        yield self.fill()
        found = yield self.messages(q='"connection refused"')
        self.assertEqual(found, ["connection refused by upstream"])

    @inlineCallbacks
    def test_prefix(self) -> Any:
        """word* matches words starting with it."""
        yield self.fill()
        found = yield self.messages(q="time*")
        self.assertEqual(found, ["timeout after 30s", "timeouts are bad"])

    @inlineCallbacks
    def test_excluded(self) -> Any:
        """-word leaves out records with that word, alone or with others."""
        yield self.fill()
        found = yield self.messages(q="connection -reset -refused")
        self.assertEqual(found, [])
        found = yield self.messages(q="-connection -user -timeout -timeouts")
        self.assertNotIn("connection reset", found)
        self.assertIn("disk full on /var", found)

    @inlineCallbacks
    def test_service_searched(self) -> Any:
        """A word of the service matches as well as one of the message."""
        yield self.fill()
        found = yield self.messages(q="billing")
        self.assertEqual(found, ["service name only"])

    @inlineCallbacks
    def test_unicode(self) -> Any:
        """Non-ASCII words match case-insensitively, CJK included."""
        yield self.fill()
        found = yield self.messages(q="STRASSE")
        self.assertEqual(found, [])
        found = yield self.messages(q="ÜNÏCODE 日本語")
        self.assertEqual(found, ["Ünïcode straße 日本語 works"])

    @inlineCallbacks
    def test_operators_are_words(self) -> Any:
        """FTS5 operators typed by a user are plain words, never FTS5 syntax."""
        yield self.fill()
        found = yield self.messages(q='and or NEAR ^x "col:on" "')
        self.assertEqual(found, ['quote " and AND OR NEAR( ^x col:on'])

    @inlineCallbacks
    def test_fields(self) -> Any:
        """field filters compare strings exactly and numbers as numbers."""
        yield self.fill()
        found = yield self.messages(fields=(("status", "200"),))
        self.assertEqual(
            found,
            [
                "refused connection",
                "user logged in",
                "user logged out",
                "GET /api/users/17 200 in 5 ms",
            ],
        )
        found = yield self.messages(fields=(("status", "502"),))
        self.assertEqual(found, ["connection refused by upstream", "Connection was refused"])
        found = yield self.messages(fields=(("ok", "false"), ("nothing", "null")))
        self.assertEqual(found, ["disk full on /var"])

    @inlineCallbacks
    def test_same_answers(self) -> Any:
        """Every query in a list gives the answers the in-memory store gives."""
        yield self.fill()
        reference = MemoryStore()
        yield reference.append(list(CORPUS))
        for q in QUERIES:
            for fields in [[], *FIELD_FILTERS]:
                query = Query(q=q, fields=tuple(fields), limit=None, order="asc")
                mine = yield self.store.query(query)
                theirs = yield reference.query(query)
                self.assertEqual([r[0] for r in mine], [r[0] for r in theirs], (q, fields))

    @inlineCallbacks
    def test_paging_with_search(self) -> Any:
        """Pages of a search, in both orders, visit each match once."""
        records = [record(f"event {n} {'odd' if n % 2 else 'even'}", ts=T0 + (n % 7) * SECOND) for n in range(60)]
        yield self.fill(records)
        for order in ("asc", "desc"):
            seen: list[int] = []
            query = Query(q="odd", limit=4, order=order)
            while True:
                rows = yield self.store.query(query)
                page = rows[:4]
                seen.extend(r[0] for r in page)
                if len(rows) <= 4:
                    break
                query = query.after(page[-1][1], page[-1][0])
            self.assertEqual(sorted(seen), [n + 1 for n in range(60) if n % 2])
            self.assertEqual(len(seen), len(set(seen)))

    @inlineCallbacks
    def test_export_pages(self) -> Any:
        """
        Export pages are NDJSON of the API's record objects (every kind of
        text: unicode, quotes, control characters) and chain by position.
        """
        yield self.fill()
        yield self.store.append([record("tab\tnew\nline \x01 \\ \u2028", service="ctl\u00e9")])
        for q in ("connection", ""):
            query = Query(q=q, limit=2, order="asc")
            lines: list[dict[str, Any]] = []
            while True:
                body, count, last = yield self.store.exportPage(query)
                self.assertIsInstance(body, bytes)
                lines.extend(orjson.loads(line) for line in body.splitlines())
                self.assertEqual(count, len(body.splitlines()))
                if last is None:
                    break
                query = query.after(*last)
            rows = yield self.store.query(Query(q=q, limit=None, order="asc"))
            self.assertEqual(lines, [renderRow(row) for row in rows])

    @inlineCallbacks
    def test_export_pages_times_and_ties(self) -> Any:
        """
        Export pages render the first and last representable times, and a
        page that ends inside a run of records with the same time resumes
        after the last one written, in both orders.
        """
        last = 253402300799_999999
        records = [record("epoch", ts=0), record("end of time", ts=last), record("frac", ts=T0 + 7)]
        records += [record(f"tie {n}", ts=T0 + 5 * SECOND + 123, level=n % 8) for n in range(7)]
        yield self.fill(records)
        for order in ("asc", "desc"):
            query = Query(limit=3, order=order)
            lines: list[dict[str, Any]] = []
            while True:
                body, count, resume = yield self.store.exportPage(query)
                lines.extend(orjson.loads(line) for line in body.splitlines())
                if resume is None:
                    break
                query = query.after(*resume)
            rows = yield self.store.query(Query(limit=None, order=order))
            self.assertEqual(lines, [renderRow(row) for row in rows])
            self.assertEqual(len(lines), len(records))
        self.assertIn("1970-01-01T00:00:00.000000Z", [line["ts"] for line in lines])
        self.assertIn("9999-12-31T23:59:59.999999Z", [line["ts"] for line in lines])

    @inlineCallbacks
    def test_after_id(self) -> Any:
        """afterId returns matches above an id in id order, at most limit."""
        yield self.fill()
        rows = yield self.store.afterId(Query(q="connection"), 1, 2)
        self.assertEqual([r[0] for r in rows], [2, 3])

    @inlineCallbacks
    def test_histogram_and_top(self) -> Any:
        """histogram counts by slot and level; top by value; timeRange spans matches."""
        records = [record("a", ts=T0 + n * 10 * SECOND, level=3 if n % 3 == 0 else 6, service=f"s{n % 2}") for n in range(9)]
        yield self.fill(records)
        counts = yield self.store.histogram(Query(since=T0), T0, 30 * SECOND)
        self.assertEqual(counts, {(0, 3): 1, (0, 6): 2, (1, 3): 1, (1, 6): 2, (2, 3): 1, (2, 6): 2})
        top = yield self.store.top(Query(level=3), "service")
        self.assertEqual(top, {"s0": 2, "s1": 1})
        span = yield self.store.timeRange(Query(service=None) if False else Query(services=("s1",)))
        self.assertEqual(span, (T0 + 10 * SECOND, T0 + 70 * SECOND))
        none = yield self.store.timeRange(Query(q="absent"))
        self.assertIsNone(none)

    @inlineCallbacks
    def test_histogram_bounded(self) -> Any:
        """With since and until, slots clip to them, and level and service filters apply."""
        records = [
            record("a", ts=T0 + n * 7 * SECOND, level=n % 8, service=f"s{n % 3}") for n in range(40)
        ]
        yield self.fill(records)
        reference = MemoryStore()
        yield reference.append(records)
        for query in (
            Query(since=T0 + 5 * SECOND, until=T0 + 200 * SECOND),
            Query(since=T0 + 5 * SECOND, until=T0 + 200 * SECOND, level=3),
            Query(since=T0, until=T0 + 281 * SECOND, services=("s1",)),
            Query(since=T0, until=T0 + 281 * SECOND, q="a"),
        ):
            origin = T0 - 3 * SECOND
            mine = yield self.store.histogram(query, origin, 50 * SECOND)
            theirs = yield reference.histogram(query, origin, 50 * SECOND)
            self.assertEqual(mine, theirs, query)
            self.assertEqual(sum(mine.values()), len(reference._page(replace(query, limit=None))))


class MemoryStoreSearchTests(StoreSearchMixin, TestCase):
    """The in-memory store."""

    def makeStore(self) -> Any:
        return MemoryStore()

    def settle(self, indexed: bool = True) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        d.callback(None)
        return d


class SqliteStoreSearchTests(StoreSearchMixin, TestCase):
    """The SQLite store, everything in the search index."""

    indexed = True

    def makeStore(self) -> Any:
        store = SqliteStore(os.path.join(self.mktemp() + ".sqlite3"))
        if not self.indexed:
            store.indexing = False
        store.startService()
        self.addCleanup(store.stopService)
        return store

    def settle(self, indexed: bool = True) -> Deferred[None]:
        if self.indexed:
            return self.store.whenIndexed()  # type: ignore[no-any-return]
        d: Deferred[None] = Deferred()
        d.callback(None)
        return d


class SqliteStoreUnindexedTests(SqliteStoreSearchTests):
    """The SQLite store with the index trailing: every record in the scanned tail."""

    indexed = False


class SqliteStoreNoIndexTests(SqliteStoreSearchTests):
    """The SQLite store with the search index off."""

    def makeStore(self) -> Any:
        store = SqliteStore(os.path.join(self.mktemp() + ".sqlite3"), searchIndex=False)
        store.startService()
        self.addCleanup(store.stopService)
        return store

    def settle(self, indexed: bool = True) -> Deferred[None]:
        return self.store.whenIndexed()  # type: ignore[no-any-return]


class SqliteSearchIndexTests(TestCase):
    """The search index's upkeep in the SQLite store."""

    def start(self, path: str, **kw: Any) -> SqliteStore:
        store = SqliteStore(path, **kw)
        store.startService()
        return store

    @inlineCallbacks
    def test_half_indexed(self) -> Any:
        """Records split between the index and the scanned tail are all found, once."""
        path = self.mktemp()
        store = self.start(path)
        self.addCleanup(store.stopService)
        yield store.append(CORPUS[:7])
        yield store.whenIndexed()
        store.indexing = False
        yield store.append(CORPUS[7:])
        reference = MemoryStore()
        yield reference.append(list(CORPUS))
        for q in QUERIES:
            query = Query(q=q, limit=None, order="asc")
            mine = yield store.query(query)
            theirs = yield reference.query(query)
            self.assertEqual([r[0] for r in mine], [r[0] for r in theirs], q)

    @inlineCallbacks
    def test_deletes_while_indexing(self) -> Any:
        """
        Deletes that race with the indexer (retention during ingest) leave no
        entry behind and take none that belongs to a kept record.
        """
        from logsvc.store.sqlite import searchindex

        self.patch(searchindex, "INDEX_CHUNK", 97)
        store = self.start(self.mktemp())
        self.addCleanup(store.stopService)
        kept = 0
        for round in range(20):
            yield store.append([record(f"common r{round}", user=f"u{n}") for n in range(500)])
            low = (round + 1) * 500 - 50
            deleted = yield store.callInWriter(
                lambda conn, low=low: conn.execute("DELETE FROM logs WHERE id <= ?", (low,)).rowcount
            )
            kept += 500 - deleted
        yield store.whenIndexed()

        def counts(conn: sqlite3.Connection) -> tuple[int, int, int]:
            return (
                conn.execute("SELECT count(*) FROM logs").fetchone()[0],
                conn.execute("SELECT count(*) FROM logs_search WHERE logs_search MATCH 'common'").fetchone()[0],
                conn.execute("SELECT count(*) FROM logs_fields WHERE logs_fields MATCH 'user'").fetchone()[0],
            )

        found = yield store.read(counts)
        self.assertEqual(found, (kept, kept, kept))

    @inlineCallbacks
    def test_delete_leaves_index(self) -> Any:
        """Deleting indexed records (retention) takes them out of the index."""
        path = self.mktemp()
        store = self.start(path)
        self.addCleanup(store.stopService)
        yield store.append(CORPUS)
        yield store.whenIndexed()
        yield store.callInWriter(lambda conn: conn.execute("DELETE FROM logs WHERE id <= 3"))
        hits = yield store.read(
            lambda conn: conn.execute(
                "SELECT count(*) FROM logs_search WHERE logs_search MATCH 'connection'"
            ).fetchone()[0]
        )
        self.assertEqual(hits, 1)
        fieldHits = yield store.read(
            lambda conn: conn.execute("SELECT rowid FROM logs_fields WHERE logs_fields MATCH 'status'").fetchall()
        )
        self.assertEqual(
            [hit for (hit,) in fieldHits],
            [n for n, r in enumerate(CORPUS, 1) if n > 3 and r.fields and "status" in r.fields],
        )

    @inlineCallbacks
    def test_rebuilds_other_search_version(self) -> Any:
        """
        A search file of another version is dropped, its pages returned to
        the file system, and rebuilt from the records.
        """
        path = self.mktemp()
        store = self.start(path)
        yield store.append(CORPUS)
        yield store.stopService()
        old = sqlite3.connect(searchPath(path))
        old.executescript(
            """
            DROP TABLE logs_search; DROP TABLE logs_fields;
            CREATE VIRTUAL TABLE logs_search USING fts5(text, fields, content='', detail=column);
            CREATE TABLE filler (data BLOB);
            INSERT INTO filler VALUES (zeroblob(100000));
            UPDATE search_state SET indexed = 5;
            PRAGMA user_version=1;
            """
        )
        old.execute("DROP TABLE filler")
        old.commit()
        old.close()
        store = self.start(path)
        self.addCleanup(store.stopService)
        yield store.whenIndexed()
        self.assertEqual(self.indexedMark(path), len(CORPUS))
        rows = yield store.query(Query(q="refused", fields=(("status", "502"),), order="asc"))
        self.assertEqual([r[0] for r in rows], [1, 2])
        free = yield store.read(lambda conn: conn.execute("PRAGMA search.freelist_count").fetchone()[0])
        self.assertEqual(free, 0)

    def oldStore(self, schema: str) -> SqliteStore:
        """
        Write L{CORPUS} into a database made by C{schema} (an older
        logsvc's), then start a store on it.
        """
        path = self.mktemp()
        conn = sqlite3.connect(path)
        conn.executescript(schema)
        conn.executemany(
            "INSERT INTO logs (ts, received, level, source, service, message, fields) VALUES (?, ?, ?, ?, ?, ?, ?)",
            CORPUS,
        )
        conn.commit()
        conn.close()
        store = self.start(path)
        self.addCleanup(store.stopService)
        return store

    @inlineCallbacks
    def test_migrates_version_1(self) -> Any:
        """A version 1 database gets the search index and indexes its records."""
        store = self.oldStore(
            """
            CREATE TABLE logs (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, received INTEGER NOT NULL,
                level INTEGER NOT NULL, source TEXT NOT NULL, service TEXT NOT NULL,
                message TEXT NOT NULL, fields TEXT);
            CREATE INDEX logs_ts ON logs (ts);
            CREATE INDEX logs_service_level_ts ON logs (service, level, ts);
            PRAGMA user_version=1;
            """
        )
        path = store.path
        yield store.whenIndexed()
        rows = yield store.query(Query(q='"connection refused"'))
        self.assertEqual([r[6] for r in rows], ["connection refused by upstream"])
        check = connect(path, readonly=True)
        self.addCleanup(check.close)
        self.assertEqual(check.execute("PRAGMA user_version").fetchone()[0], SCHEMA_VERSION)
        self.assertEqual(self.indexedMark(path), len(CORPUS))

    def indexedMark(self, path: str) -> int:
        check = connect(searchPath(path), readonly=True)
        try:
            return int(check.execute("SELECT indexed FROM search_state").fetchone()[0])
        finally:
            check.close()

    @inlineCallbacks
    def test_migrates_version_2(self) -> Any:
        """
        A version 2 database loses the search index it held; the index is
        rebuilt in the search file, and deletes still leave it.
        """
        store = self.oldStore(
            """
            CREATE TABLE logs (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, received INTEGER NOT NULL,
                level INTEGER NOT NULL, source TEXT NOT NULL, service TEXT NOT NULL,
                message TEXT NOT NULL, fields TEXT);
            CREATE VIRTUAL TABLE logs_search USING fts5(text, fields, content='', detail=column);
            CREATE TABLE search_state (one INTEGER PRIMARY KEY CHECK (one = 1), indexed INTEGER NOT NULL);
            INSERT INTO search_state VALUES (1, 0);
            CREATE TRIGGER logs_search_delete AFTER DELETE ON logs
            WHEN old.id <= (SELECT indexed FROM search_state)
            BEGIN SELECT 1; END;
            PRAGMA user_version=2;
            """
        )
        path = store.path
        yield store.whenIndexed()
        check = connect(path, readonly=True)
        self.addCleanup(check.close)
        self.assertEqual(
            check.execute("SELECT name FROM sqlite_master WHERE name LIKE '%search%'").fetchall(), []
        )
        self.assertEqual(self.indexedMark(path), len(CORPUS))
        yield store.callInWriter(lambda conn: conn.execute("DELETE FROM logs WHERE id = 1"))
        hits = yield store.read(
            lambda conn: conn.execute("SELECT rowid FROM logs_search WHERE logs_search MATCH 'upstream'").fetchall()
        )
        self.assertEqual(hits, [])

    @inlineCallbacks
    def test_index_ahead_of_records(self) -> Any:
        """
        A search file that indexes ids the records file lacks (the records
        file was replaced) is emptied and rebuilt, so no hit names another record.
        """
        path = self.mktemp()
        store = self.start(path)
        yield store.append(CORPUS)
        yield store.whenIndexed()
        yield store.stopService()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        store = self.start(path)
        self.addCleanup(store.stopService)
        yield store.append([record("fresh start")])
        yield store.whenIndexed()
        self.assertEqual(self.indexedMark(path), 1)
        rows = yield store.query(Query(q="refused"))
        self.assertEqual(rows, [])
        rows = yield store.query(Query(q="fresh"))
        self.assertEqual([r[6] for r in rows], ["fresh start"])

    @inlineCallbacks
    def test_bounded_lag(self) -> Any:
        """Past maxIndexLag un-indexed records, the writer waits for the indexer before committing more."""
        path = self.mktemp()
        store = self.start(path, maxIndexLag=5)
        self.addCleanup(store.stopService)
        for n in range(6):
            yield store.append([record(f"r{n}-{i}") for i in range(3)])
        indexed = yield store.callInWriter(
            lambda conn: (conn.execute("SELECT indexed FROM search_state").fetchone()[0], store._top)
        )
        self.assertLess(indexed[1] - indexed[0], 5 + 3)

    @inlineCallbacks
    def test_strategies_agree(self) -> Any:
        """Pages read from index hits, filtered in time order, or scanned are the same."""
        from logsvc.store.sqlite import plan as module

        path = self.mktemp()
        store = self.start(path)
        self.addCleanup(store.stopService)
        yield store.append([record(f"common {n} {'x' if n % 3 else 'y'}", ts=T0 + n % 11) for n in range(60)])
        yield store.whenIndexed()
        answers = []
        for sparse, dense in ((1000, 2000), (5, 1000), (1, 2)):
            self.patch(module, "SPARSE_HITS", sparse)
            self.patch(module, "DENSE_HITS", dense)
            pages = []
            for q in ("common -7", "common x", '"common 1"', "common"):
                for order in ("asc", "desc"):
                    rows = yield store.query(Query(q=q, limit=7, order=order))
                    pages.append([r[0] for r in rows])
            answers.append(pages)
        self.assertEqual(answers[0], answers[1])
        self.assertEqual(answers[0], answers[2])
