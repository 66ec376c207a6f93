"""
Tests for L{logsvc.store.postgres}: the store contract of
L{tests.storetests} against a real PostgreSQL server (C{LOGSVC_TEST_POSTGRESQL}),
and what only the shared store promises: exact search semantics for records
without a vector, schema made safely by nodes starting together, ids in
commit order across nodes, the feed of every node's commits, retention by
partitions, and surviving a lost connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks, succeed
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from logsvc.query import Query
from logsvc.store.base import ICommitFeed, IStore, StoreUnavailable
from tests.pgtests import makeDatabase
from tests.storetests import SECOND, T0, StoreTestsMixin, record
from tests.test_store_search import StoreSearchMixin


class PostgresTestCase(TestCase):
    timeout = 60

    def startStore(self, url: str | None = None) -> Any:
        """
        @return: a started store on C{url} (a new database by default),
            stopped at cleanup.
        """
        from logsvc.store.postgres.store import PostgresStore

        if url is None:
            url = makeDatabase(self)
        store = PostgresStore(url)
        store.startService()
        self.addCleanup(lambda: store.stopService() if store.running else None)
        return store


class PostgresContractTests(StoreTestsMixin, PostgresTestCase):
    def makeStore(self) -> IStore:
        store: IStore = self.startStore()
        return store

    def test_interface(self) -> None:
        """PostgresStore provides IStore and ICommitFeed."""
        self.assertTrue(verifyObject(IStore, self.store))
        self.assertTrue(verifyObject(ICommitFeed, self.store))

    @inlineCallbacks
    def test_nulCharacter(self) -> Generator[Deferred[Any], Any, None]:
        """A NUL character (PostgreSQL text holds none) is stored as U+FFFD, not refused."""
        yield self.add(record("a\x00b"))
        found = yield self.messages()
        self.assertEqual(found, ["a\ufffdb"])


class PostgresSearchTests(StoreSearchMixin, PostgresTestCase):
    """The shared store gives the search answers the in-memory store gives."""

    def makeStore(self) -> Any:
        return self.startStore()

    def settle(self, indexed: bool = True) -> Deferred[None]:
        return succeed(None)


class PostgresUnvectoredSearchTests(PostgresSearchTests):
    """
    The same answers for records stored without a search vector (words that
    do not fit a tsvector), which L{Search.matches} decides.
    """

    def makeStore(self) -> Any:
        from logsvc.store.postgres import store as module

        self.patch(module, "vectorText", lambda message, service: None)
        return self.startStore()


class PostgresMixedVectorTests(PostgresTestCase):
    """
    A page of a search merges, in order, the records SQL decides (those
    with a search vector) with those the matcher decides (without one),
    whether the page is read in one statement or through cursors.
    """

    def setUp(self) -> None:
        from logsvc.store.postgres import search as searchModule
        from logsvc.store.postgres import store as storeModule

        vectorText = searchModule.vectorText
        # Every third record is stored as one whose words do not fit a vector.
        self.patch(storeModule, "vectorText",
                   lambda message, service: None if message.endswith("0") else vectorText(message, service))
        self.store = self.startStore()
        messages = [f"disk full {n}{n % 3}" for n in range(30)]
        messages += [f"all fine {n}" for n in range(10)]
        self.records = [record(m, ts=T0 + n * SECOND) for n, m in enumerate(messages)]
        self.expected = [m for m in messages if m.startswith("disk")]

    @inlineCallbacks
    def pages(self, q: str, order: str, limit: int) -> Generator[Deferred[Any], Any, list[list[str]]]:
        """
        @return: the messages of every page of C{q}, walked by cursor.
        """
        yield self.store.append(self.records)
        pages: list[list[str]] = []
        cursor = None
        for _ in range(50):
            rows = yield self.store.query(Query(q=q, order=order, limit=limit, cursor=cursor))
            pages.append([row[6] for row in rows[:limit]])
            if len(rows) <= limit:
                return pages
            cursor = (rows[limit - 1][1], rows[limit - 1][0])
        raise AssertionError("paging did not end")

    @inlineCallbacks
    def test_onePerPage(self) -> Generator[Deferred[Any], Any, None]:
        """Pages read in one statement hold both kinds, in order, each once."""
        pages = yield self.pages("disk", "desc", 4)
        self.assertEqual([m for page in pages for m in page], self.expected[::-1])
        self.assertTrue(any(m.endswith("0") for m in pages[0]) and any(not m.endswith("0") for m in pages[0]))

    @inlineCallbacks
    def test_manyCandidates(self) -> Generator[Deferred[Any], Any, None]:
        """With more unvectored candidates than one statement takes, cursors read the page, the same."""
        from logsvc.store.postgres import plan

        self.patch(plan, "FETCH", 5)
        pages = yield self.pages("disk", "asc", 3)
        self.assertEqual([m for page in pages for m in page], self.expected)

    @inlineCallbacks
    def test_sparseInTransaction(self) -> Generator[Deferred[Any], Any, None]:
        """The hit count's planner settings end with it, in or out of a transaction."""
        from logsvc.store.postgres.plan import Plan, _sparse

        yield self.store.append(self.records)

        def count(conn: Any) -> list[Any]:
            found = [_sparse(conn, Plan(Query(q="disk")).vectored)]
            with conn.transaction():
                found.append(_sparse(conn, Plan(Query(q="disk")).vectored))
                found.append(conn.execute("SHOW enable_indexscan").fetchone()[0])
            found.append(conn.execute("SHOW enable_seqscan").fetchone()[0])
            return found

        found = yield self.store.read(count)
        self.assertEqual(found, [True, True, "on", "on"])


def _wait(condition: Any, timeout: float = 20.0) -> Deferred[None]:
    """
    @return: a Deferred firing once C{condition()} is true (polled on the
        reactor), failing after C{timeout} seconds.
    """
    from twisted.internet import reactor, task

    deadline = time.monotonic() + timeout

    @inlineCallbacks
    def poll() -> Generator[Deferred[Any], Any, None]:
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            yield task.deferLater(reactor, 0.02, lambda: None)

    return poll()


class OrderAcrossNodesTests(PostgresTestCase):
    """
    Ids are handed out in commit order across several stores (nodes) on one
    database, so paging and a tail's replay by id miss and repeat nothing.
    """

    @inlineCallbacks
    def test_firstIdCommitsLast(self) -> Generator[Deferred[Any], Any, None]:
        """
        Node A takes its ids and is held open before COMMIT while node B
        appends and a reader on node C pages by (ts, id) and replays by id
        and its feed runs: B cannot commit ahead of A (it waits at the
        counter), nothing of either is visible early, and once A commits
        every reader sees each record exactly once, in id order.
        """
        url = makeDatabase(self)
        a, b, c = self.startStore(url), self.startStore(url), self.startStore(url)
        yield a.append([record("before")])
        fed: list[int] = []
        c.subscribe(lambda first, records: fed.extend(range(first, first + len(records))))
        held, release = threading.Event(), threading.Event()

        def hold(first: int) -> None:
            held.set()
            release.wait(30)

        a.beforeCommit = hold
        first = a.append([record(f"a{i}", ts=T0 + 10) for i in range(5)])
        yield deferToThread(held.wait, 30)
        a.beforeCommit = None
        second = b.append([record(f"b{i}", ts=T0 + 5) for i in range(5)])
        replayed: list[int] = []
        paged: list[int] = []
        lastId = 0
        cursor = None
        for _ in range(10):
            rows = yield c.afterId(Query(limit=None), lastId, 1000)
            replayed.extend(row[0] for row in rows)
            lastId = max([lastId, *[row[0] for row in rows]])
            page = yield c.query(Query(order="asc", limit=1000, cursor=cursor))
            paged.extend(row[0] for row in page)
            if page:
                cursor = (page[-1][1], page[-1][0])
        self.assertFalse(second.called, "B committed while A held ids below its own")
        self.assertEqual(replayed, [1])
        release.set()
        firstA = yield first
        firstB = yield second
        self.assertEqual((firstA, firstB), (2, 7))
        rows = yield c.afterId(Query(limit=None), lastId, 1000)
        replayed.extend(row[0] for row in rows)
        self.assertEqual(replayed, list(range(1, 12)))
        yield _wait(lambda: fed and fed[-1] >= 11)
        # From "before" or just after it (it committed before the subscription).
        self.assertIn(fed[0], (1, 2))
        self.assertEqual(fed, list(range(fed[0], 12)))
        # Paging on by (ts, id) from the last cursor visits the rest once.
        page = yield c.query(Query(order="asc", limit=1000, cursor=cursor))
        paged.extend(row[0] for row in page)
        self.assertEqual(len(paged), len(set(paged)))
        self.assertEqual(set(paged), set(range(1, 12)))

    @inlineCallbacks
    def test_feedCarriesOtherNodes(self) -> Generator[Deferred[Any], Any, None]:
        """A node's feed hands its subscribers the records every node commits, in id order, once each."""
        url = makeDatabase(self)
        a, b = self.startStore(url), self.startStore(url)
        seen: list[tuple[int, str]] = []
        b.subscribe(lambda first, records: seen.extend((first + i, r.message) for i, r in enumerate(records)))
        for n in range(5):
            yield gatherResults([a.append([record(f"a{n}")]), b.append([record(f"b{n}")])])
        yield _wait(lambda: len(seen) >= 10)
        self.assertEqual([i for i, _ in seen], list(range(1, 11)))
        self.assertEqual(sorted(m for _, m in seen), sorted([f"a{n}" for n in range(5)] + [f"b{n}" for n in range(5)]))

    def test_schemaRace(self) -> None:
        """Several nodes making the schema at once on an empty database all succeed, and agree."""
        from logsvc.store.postgres.connection import SCHEMA_VERSION, connect, createSchema

        url = makeDatabase(self)
        errors: list[BaseException] = []

        def make() -> None:
            try:
                with connect(url) as conn:
                    createSchema(conn, now=T0)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=make) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        with connect(url) as conn:
            self.assertEqual(conn.execute("SELECT version FROM logsvc_meta").fetchall(), [(SCHEMA_VERSION,)])
            self.assertEqual(conn.execute("SELECT last_id FROM logsvc_position").fetchall(), [(0,)])


class RetentionTests(PostgresTestCase):
    """Retention on PostgreSQL drops whole day partitions and trims the one straddling the cutoff."""

    @inlineCallbacks
    def test_dropsAndTrims(self) -> Generator[Deferred[Any], Any, None]:
        """Days before the cutoff go whole; the cutoff's own day loses only what is older."""
        from logsvc.store.postgres.connection import DAY, connect, ensurePartitions

        url = makeDatabase(self)
        store = self.startStore(url)
        today = (T0 // DAY) * DAY
        with connect(url) as conn:
            ensurePartitions(conn, now=today - 3 * DAY, ahead=4)
        days = [today - 3 * DAY, today - 2 * DAY, today - DAY, today]
        yield store.append([record(f"d{n}-{h}", ts=day + h * 3600 * SECOND) for n, day in enumerate(days) for h in (1, 12, 23)])
        cutoff = today - DAY + 13 * 3600 * SECOND
        total = 0
        while True:
            deleted = yield store.deleteOld(cutoff=cutoff, maxBytes=None, chunk=2)
            total += deleted
            if deleted < 2:
                break
        found = yield self.messages(store)
        self.assertEqual(sorted(found), ["d2-23", "d3-1", "d3-12", "d3-23"])
        self.assertEqual(total, 8)
        with connect(url) as conn:
            names = {row[0] for row in conn.execute("SELECT relname FROM pg_class WHERE relname LIKE 'logs\\_p%%'")}
        from logsvc.store.postgres.connection import partitionName

        self.assertNotIn(partitionName(days[0] // DAY), names)
        self.assertNotIn(partitionName(days[1] // DAY), names)
        self.assertIn(partitionName(days[2] // DAY), names)
        size = yield store.dataSize()
        self.assertGreater(size, 0)
        next = yield store.append([record("after")])
        self.assertEqual(next, 13)

    @inlineCallbacks
    def test_maxBytesDropsOldest(self) -> Generator[Deferred[Any], Any, None]:
        """Over the size bound, the oldest day goes first; the newest day stays."""
        from logsvc.store.postgres.connection import DAY, connect, ensurePartitions

        url = makeDatabase(self)
        store = self.startStore(url)
        today = (T0 // DAY) * DAY
        with connect(url) as conn:
            ensurePartitions(conn, now=today - 2 * DAY, ahead=3)
        yield store.append([record(f"d{n}", ts=today - n * DAY) for n in range(3)])
        deleted = yield store.deleteOld(cutoff=None, maxBytes=1, chunk=100)
        self.assertEqual(deleted, 1)
        found = yield self.messages(store)
        self.assertEqual(sorted(found), ["d0", "d1"])

    @inlineCallbacks
    def test_oneNodeAtATime(self) -> Generator[Deferred[Any], Any, None]:
        """While another node holds the retention lock, a node's retention step deletes nothing."""
        from logsvc.store.postgres.connection import RETENTION_LOCK, connect

        url = makeDatabase(self)
        store = self.startStore(url)
        yield store.append([record("old", ts=T0 - 100 * SECOND)])
        with connect(url) as other:
            other.execute("SELECT pg_advisory_lock(%s)", [RETENTION_LOCK])
            deleted = yield store.deleteOld(cutoff=T0, maxBytes=None, chunk=100)
            self.assertEqual(deleted, 0)
            other.execute("SELECT pg_advisory_unlock(%s)", [RETENTION_LOCK])
        deleted = yield store.deleteOld(cutoff=T0, maxBytes=None, chunk=100)
        self.assertEqual(deleted, 1)

    @inlineCallbacks
    def messages(self, store: Any) -> Generator[Deferred[Any], Any, list[str]]:
        rows = yield store.query(Query(limit=None))
        return [row[6] for row in rows]


class FailureTests(PostgresTestCase):
    """A lost connection: nothing acknowledged that was not committed, and the store comes back by itself."""

    @inlineCallbacks
    def test_connectionsKilled(self) -> Generator[Deferred[Any], Any, None]:
        """
        With every connection of the store killed, appends fail with
        StoreUnavailable (not acknowledged) or succeed, the store says it is
        unavailable while it is, reconnects, and every acknowledged record
        is there.
        """
        from logsvc.store.postgres.connection import connect

        url = makeDatabase(self)
        store = self.startStore(url)
        acked: list[int] = []
        yield store.append([record("first")])
        acked.append(1)
        with connect(url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        failures = 0
        for n in range(50):
            try:
                first = yield store.append([record(f"r{n}")])
            except StoreUnavailable:
                failures += 1
                yield _wait(lambda: True, 0)
                from twisted.internet import reactor, task

                yield task.deferLater(reactor, 0.05, lambda: None)
            else:
                acked.append(first)
        self.assertGreaterEqual(failures, 1)
        yield _wait(lambda: store.available)
        self.assertEqual(store.health.report()["state"], "ok")
        rows = yield store.query(Query(limit=None))
        self.assertTrue(set(acked) <= {row[0] for row in rows})
        self.assertFalse(store.flow.on)


class URLTests(TestCase):
    """The --db URL: recognised, and its password never shown."""

    def test_display(self) -> None:
        """displayURL leaves the password out, from the URL and its query string."""
        from logsvc.store.postgres.connection import displayURL, scrub

        shown = displayURL("postgresql://ann:s3cret@db.example:5433/logs?sslmode=require")
        self.assertEqual(shown, "postgresql://ann@db.example:5433/logs?sslmode=require")
        shown = displayURL("postgres://ann@127.0.0.1/logs?password=s3cret")
        self.assertNotIn("s3cret", shown)
        self.assertEqual(scrub("failed for s3cret", "postgresql://a:s3cret@h/d"), "failed for ***")

    def test_choose(self) -> None:
        """A postgresql:// or postgres:// URL selects PostgreSQL; a path keeps SQLite."""
        from logsvc.store.choose import isPostgresURL

        self.assertTrue(isPostgresURL("postgresql://u@h:5432/d"))
        self.assertTrue(isPostgresURL("postgres://u@h/d"))
        self.assertFalse(isPostgresURL("./logsvc.sqlite3"))
        self.assertFalse(isPostgresURL("/var/lib/postgres.sqlite3"))

    def test_missingDriver(self) -> None:
        """Without psycopg, --db postgresql://... is one line naming the install command."""
        import builtins

        from logsvc.store.choose import checkDatabase

        real = builtins.__import__

        def noPsycopg(name: str, *args: Any, **kwargs: Any) -> Any:
            if name == "psycopg" or name.startswith("psycopg."):
                raise ImportError(name)
            return real(name, *args, **kwargs)

        self.patch(builtins, "__import__", noPsycopg)
        problem = checkDatabase("postgresql://u@h/d")
        assert problem is not None
        self.assertIn("pip install 'logsvc[postgresql]'", problem)
        self.assertNotIn("\n", problem)
        self.assertIsNone(checkDatabase("./x.sqlite3"))

    @inlineCallbacks
    def test_unreachableNoPassword(self) -> Generator[Deferred[Any], Any, None]:
        """
        A server that cannot be reached (yet) is not a mistake: the start
        raises L{NotReady} (retried by the service) with one line without
        the password, and meanwhile appends and reads fail at once with
        L{StoreUnavailable} instead of waiting.
        """
        from logsvc.startup import NotReady
        from logsvc.store.postgres.store import PostgresStore
        from tests.ports import freePort

        store = PostgresStore(f"postgresql://ann:s3cret@127.0.0.1:{freePort()}/logs?connect_timeout=2")
        error = self.assertRaises(NotReady, store.startService)
        self.assertNotIn("s3cret", str(error))
        self.assertNotIn("\n", str(error))
        self.assertIn("refused", str(error).lower())
        self.assertFalse(store.running)
        self.assertFalse(store.available)
        yield self.assertFailure(store.append([record("x")]), StoreUnavailable)
        yield self.assertFailure(store.query(Query()), StoreUnavailable)


class StartTests(PostgresTestCase):
    """What a start against a real server tells apart: mistakes and retries."""

    def test_wrongRoleIsAMistake(self) -> None:
        """A user the server does not know is a mistake: one line, no password, no retry."""
        import urllib.parse

        from logsvc.startup import StartupError
        from logsvc.store.postgres.store import PostgresStore

        parts = urllib.parse.urlsplit(makeDatabase(self))
        host = parts.netloc.rpartition("@")[2]
        store = PostgresStore(urllib.parse.urlunsplit(parts._replace(netloc=f"nosuchrole:pw9@{host}")))
        error = self.assertRaises(StartupError, store.startService)
        self.assertIn("nosuchrole", str(error))
        self.assertNotIn("pw9", str(error))
        self.assertNotIn("\n", str(error))

    def test_missingDatabaseIsAMistake(self) -> None:
        """A database that does not exist is named, as a mistake."""
        import urllib.parse

        from logsvc.startup import StartupError
        from logsvc.store.postgres.store import PostgresStore

        parts = urllib.parse.urlsplit(makeDatabase(self))
        store = PostgresStore(urllib.parse.urlunsplit(parts._replace(path="/logsvc_no_such_db")))
        error = self.assertRaises(StartupError, store.startService)
        self.assertIn("logsvc_no_such_db", str(error))

    def test_retryAfterNotReady(self) -> None:
        """A start retried after the server became reachable opens the store."""
        from logsvc.startup import NotReady
        from logsvc.store.postgres.store import PostgresStore
        from tests.ports import freePort

        url = makeDatabase(self)
        store = PostgresStore(f"postgresql://u@127.0.0.1:{freePort()}/x?connect_timeout=2")
        self.assertRaises(NotReady, store.startService)
        store.url = url  # the server "came up" where the store looks
        self.assertEqual(store.health.state, "down")
        store.startService()
        self.addCleanup(store.stopService)
        self.assertTrue(store.running)
        self.assertTrue(store.available)
        self.assertEqual(store.health.state, "ok")


class SearchBudgetTests(PostgresTestCase):
    """--search-timeout holds on PostgreSQL as on SQLite."""

    @inlineCallbacks
    def test_readPastBudget(self) -> Generator[Deferred[Any], Any, None]:
        """A read statement past the budget is stopped by the server and fails with QueryTimeout; the next read works."""
        from logsvc.store.base import QueryTimeout
        from logsvc.store.postgres.store import PostgresStore

        store = PostgresStore(makeDatabase(self), searchTimeout=0.2)
        store.startService()
        self.addCleanup(store.stopService)
        started = time.monotonic()
        error = yield self.assertFailure(store.read(lambda conn: conn.execute("SELECT pg_sleep(5)").fetchall()), QueryTimeout)
        self.assertLess(time.monotonic() - started, 4)
        self.assertIn("--search-timeout", str(error))
        rows = yield store.query(Query())
        self.assertEqual(rows, [])


class WorkLimitTests(PostgresTestCase):
    """The matcher's work limit holds on PostgreSQL as on SQLite."""

    @inlineCallbacks
    def test_regexPastTheLimit(self) -> Generator[Deferred[Any], Any, None]:
        """A regular expression that must check more records than WORK_LIMIT fails with a clear error; narrowed by a service, it runs."""
        from logsvc.store import base

        self.patch(base, "WORK_LIMIT", 50)
        store = self.startStore()
        yield store.append(
            [record(f"line {n}", service="rare" if n % 40 == 0 else "common", ts=T0 + n) for n in range(200)]
        )
        # Nothing matches, so every record is checked.
        failure = yield self.assertFailure(store.query(Query(q='~"line 9\\d\\d"', limit=10)), base.WorkLimitExceeded)
        self.assertEqual(failure.param, "q")
        self.assertIn("more than 50 records", str(failure))
        rows = yield store.query(Query(q='~"line \\d+"', services=("rare",), limit=None))
        self.assertEqual(len(rows), 5)


    @inlineCallbacks
    def test_termsNarrow(self) -> Generator[Deferred[Any], Any, None]:
        """
        The field, column and text terms q ANDs at its top are looked up in
        SQL, so the matcher checks only the records they select: a field term
        or a comparison beside them runs where it alone would pass the limit.
        """
        from logsvc.store import base

        self.patch(base, "WORK_LIMIT", 50)
        store = self.startStore()
        yield store.append(
            [record(f"line {n}" + (" rare" if n % 40 == 0 else ""), service="api" if n % 10 == 0 else "web",
                    ts=T0 + n, fields={"user": "u7" if n % 40 == 0 else f"u{n + 1000}", "status": n})
             for n in range(200)]
        )
        for q, expected in (
            ("user:u7", [0, 40, 80, 120, 160]),
            ("user:u7 status>=100", [120, 160]),
            ("rare status<100", [0, 40, 80]),
            ('service:api ~"line 1\\d\\d$"', [100, 110, 130, 140, 150, 170, 180, 190]),
            ("service<b status>150", [160, 170, 180, 190]),
        ):
            rows = yield store.query(Query(q=q, limit=None, order="asc"))
            self.assertEqual([row[1] - T0 for row in rows], expected, q)
            counts = yield store.histogram(Query(q=q), T0, 1000)
            self.assertEqual(sum(counts.values()), len(expected), q)
        yield self.assertFailure(store.query(Query(q="status>=100", limit=None)), base.WorkLimitExceeded)

    @inlineCallbacks
    def test_narrowedPages(self) -> Generator[Deferred[Any], Any, None]:
        """
        Pages narrowed by field or text terms hold the same records whether
        the sample finds the terms common (the matcher walks the records in
        order) or rare (the candidates are read through the indexes and
        sorted).
        """
        from logsvc.store.postgres import plan

        store = self.startStore()
        yield store.append(
            [record(f"line {n}" + (" rare" if n % 40 == 0 else ""), ts=T0 + n,
                    fields={"user": "u7" if n % 40 == 0 else f"u{n + 1000}", "status": n}) for n in range(200)]
        )
        for share in (0.0, 2.0):
            self.patch(plan, "DENSE_SHARE", share)
            for q, expected in (("user:u7", [160, 120, 80, 40, 0]), ("rare status<100", [80, 40, 0])):
                seen: list[int] = []
                query = Query(q=q, limit=2)
                for _ in range(10):
                    rows = yield store.query(query)
                    seen.extend(row[1] - T0 for row in rows[:2])
                    if len(rows) <= 2:
                        break
                    query = query.after(rows[1][1], rows[1][0])
                self.assertEqual(seen, expected, (q, share))


class EnvironmentTests(PostgresTestCase):
    """libpq's environment variables apply to --db as to any libpq client."""

    def test_pgdatabase(self) -> None:
        """A URL without a database name uses PGDATABASE, as libpq does."""
        import os
        import urllib.parse

        from logsvc.store.postgres.connection import connect

        url = makeDatabase(self)
        parts = urllib.parse.urlsplit(url)
        # The real environment (libpq reads it with getenv), restored after.
        old = os.environ.get("PGDATABASE")
        os.environ["PGDATABASE"] = parts.path.lstrip("/")
        self.addCleanup(lambda: os.environ.pop("PGDATABASE") if old is None else os.environ.update(PGDATABASE=old))
        store = self.startStore(urllib.parse.urlunsplit(parts._replace(path="")))
        self.assertTrue(store.running)
        with connect(url) as conn:
            self.assertEqual(conn.execute("SELECT count(*) FROM logsvc_meta").fetchone(), (1,))
