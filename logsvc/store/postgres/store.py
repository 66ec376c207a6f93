# -*- test-case-name: tests.test_store_postgres -*-
"""
The shared store: records in PostgreSQL, for several C{twistd logsvc} nodes
on one database.

Threads (the reactor thread never touches a connection):
  - the writer, with a connection of its own: it takes every queued append
    at once and stores them in one transaction with C{COPY}, then fires the
    appends' Deferreds on the reactor thread, after C{COMMIT};
  - the readers, a small pool, a connection each: queries;
  - the feed: one C{LISTEN}ing connection per node that wakes on every
    commit (any node's), reads the new records in id order and hands them
    to this node's tails (L{subscribe}).

Order across nodes: a transaction takes its ids from the one-row counter
C{logsvc_position} (C{UPDATE ... RETURNING}) as its first statement, and
holds that row's lock until it commits.  So ids are handed out in commit
order: a transaction holding ids below another's commits first, and a
reader that sees id C{n} committed sees every id below it committed too (the
counter's value is itself the highest committed id).  Writes of all nodes
take turns at the counter; the work before it (parsing, the COPY data) is
each node's own.  See docs/postgresql.rst.

Failures: a lost connection fails the appends in flight with
L{StoreUnavailable} (nothing of them is acknowledged), marks the store
unavailable (HTTP ingest answers 503, TCP ingest stops reading, C{/health}
says so) and the writer reconnects with backoff until the server is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import psycopg.errors
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorFromThreads, IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from logsvc.health import DOWN, ComponentHealth
from logsvc.limits import FlowControl
from logsvc.query import Query
from logsvc.record import Record
from logsvc.startup import NotReady, StartupError
from logsvc.store.base import ICommitFeed, IStore, QueryTimeout, Row, StoreError, StoreUnavailable
from logsvc.store.postgres.connection import (
    COMMIT_CHANNEL,
    SchemaError,
    connect,
    createSchema,
    displayURL,
    ensurePartitions,
    scrub,
)
from logsvc.store.postgres.plan import (
    selectAfterId,
    selectCommitted,
    selectCount,
    selectNDJSON,
    selectPage,
    selectTimeRange,
)
from logsvc.store.postgres.retention import dataSize, deleteOld
from logsvc.store.postgres.rollup import addCounts, readHistogram, readTop
from logsvc.store.postgres.search import vectorText
from logsvc.store.rollup import countRecords
from logsvc.store.writequeue import Turn, WriteQueue
from logsvc.times import nowMicros

#: Most records one transaction takes; more waits for the next.
MAX_TRANSACTION_RECORDS = 50_000

#: Seconds between reconnection attempts: doubling from the first to the last.
RECONNECT_FIRST = 0.1
RECONNECT_MAX = 5.0

#: Seconds between checks that tomorrow's partitions exist.
PARTITION_CHECK = 3600.0

#: Seconds the feed waits for a notification before reading anyway.
FEED_POLL = 1.0

#: Records the feed reads per statement.
FEED_PAGE = 5000

_COPY = "COPY logs (id, ts, received, level, source, service, message, fields, words) FROM STDIN"

Subscriber = Callable[[int, list[Record]], None]


def _text(value: str) -> str:
    # PostgreSQL text holds no NUL character.
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def copyRows(cursor: psycopg.Cursor[Any], first: int, records: list[Record]) -> None:
    """
    C{COPY} C{records} into C{logs} with ids from C{first}, each with its
    search vector (see L{logsvc.store.postgres.search}).
    """
    with cursor.copy(_COPY) as copy:
        for offset, (ts, received, level, source, service, message, fields) in enumerate(records):
            message = _text(message)
            service = _text(service)
            copy.write_row(
                (first + offset, ts, received, level, _text(source), service, message,
                 fields, vectorText(message, service))
            )


def reserveIds(conn: psycopg.Connection[Any], count: int) -> int:
    """
    Take C{count} ids in the current transaction, holding the counter's
    lock until it ends.

    @return: the first id taken.
    """
    row = conn.execute(
        "UPDATE logsvc_position SET last_id = last_id + %s WHERE one = 1 RETURNING last_id", [count]
    ).fetchone()
    assert row is not None
    return int(row[0]) - count + 1


#: What libpq says when the server is not there (yet): start later, not a mistake.
UNREACHABLE = (
    "connection refused",
    "timeout expired",
    "could not connect",
    "no such file or directory",
    "network is unreachable",
    "no route to host",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "too many clients",
    "server closed the connection unexpectedly",
)


def unreachable(error: BaseException) -> bool:
    """
    @return: whether a failure to open the database heals by itself (the
        server is down, starting or full of clients) rather than being a
        mistake in C{--db} (user, password, database, URL, schema).
    """
    if not isinstance(error, psycopg.OperationalError):
        return False
    text = str(error).lower()
    return any(phrase in text for phrase in UNREACHABLE)


@implementer(IStore, ICommitFeed)
class PostgresStore(Service):
    """
    An L{IStore} in a PostgreSQL database shared by any number of nodes.

    Start it (C{startService}) before use: it connects and makes the schema
    then: L{NotReady} while the server cannot be reached (the service retries
    the start), L{StartupError} for a mistake in the URL.  C{stopService} returns a
    Deferred that fires once every queued append is committed (or failed)
    and the connections are closed.

    @ivar url: the libpq URL given (with its password, if any: never log it;
        L{displayName} is the loggable form).
    @ivar beforeCommit: a test hook called on the writer thread with the
        first id of a transaction, inside it, just before C{COMMIT}.
    @ivar flow: on while the database cannot be reached: pauses TCP ingest.
    """

    log = Logger()
    dataPath = None

    def __init__(
        self, url: str, *, reactor: Any = None, readers: int = 3, searchTimeout: float | None = None
    ) -> None:
        """
        @param searchTimeout: seconds one read statement may run (the
            server's C{statement_timeout}, C{--search-timeout}); past it the
            read fails with L{QueryTimeout}.  L{None}: no limit.
        """
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.url = url
        self.searchTimeout = searchTimeout
        self.displayName = displayURL(url)
        self._reactor: IReactorFromThreads = reactor
        self._jobs: WriteQueue[psycopg.Connection[Any]] = WriteQueue(self._reactor, MAX_TRANSACTION_RECORDS)
        self._pool = ThreadPool(minthreads=1, maxthreads=readers, name="logsvc-postgres-read")
        self._local = threading.local()
        self._opened = threading.Event()
        self._openError: BaseException | None = None
        self._writerDone: Deferred[None] | None = None
        self._feedDone: Deferred[None] | None = None
        self._stopping = threading.Event()
        self._subscribers: list[Subscriber] = []
        self._feedLock = threading.Lock()
        self.available = True
        self.flow = FlowControl()
        self.health = ComponentHealth("store", whenFailing=DOWN)
        self.beforeCommit: Callable[[int], None] | None = None
        #: The highest id the feed has handed to subscribers (or passed over).
        self.fedId = 0

    def components(self) -> list[ComponentHealth]:
        """
        @return: the store's health: down while the database cannot be
            reached.
        """
        return [self.health]

    # Lifetime

    def startService(self) -> None:
        """
        Connect and make or check the schema (on the writer thread; this
        waits for it), then start the readers and the feed.

        @raise NotReady: while the server cannot be reached (retried).
        @raise StartupError: when the database cannot be used as configured
            (user, password, database name, URL, schema).
        """
        Service.startService(self)
        self._writerDone = Deferred()
        # A start may be a retry after NotReady: wait for this attempt's open.
        self._opened.clear()
        self._openError = None
        threading.Thread(target=self._writeLoop, name="logsvc-postgres-write", daemon=True).start()
        self._opened.wait()
        if self._openError is not None:
            self.running = 0
            self._writerDone = None
            reason = self._error(self._openError)
            if unreachable(self._openError):
                # Heals by itself (the server is starting, restarting or not
                # up yet): the service runs without the store, ingest is
                # refused (503, TCP paused) and the start is retried.
                self.health.failed(reason)
                self._setAvailable(False, reason)
                raise NotReady(f"PostgreSQL not reachable yet: {reason}")
            # A wrong user, password, database name, URL or schema: a mistake.
            raise StartupError(reason)
        if not self.available:
            # A retried start that worked: the failures in a row are over.
            self.health.succeeded()
            self._setAvailable(True)
        self.log.info("store: PostgreSQL {db}, ids from {top}", db=self.displayName, top=self.fedId + 1)
        self._pool.start()
        self._feedDone = Deferred()
        threading.Thread(target=self._feedLoop, name="logsvc-postgres-feed", daemon=True).start()

    def stopService(self) -> Deferred[None]:
        """
        @return: a Deferred firing once every queued append is committed or
            failed and the connections are closed.
        """
        Service.stopService(self)
        if self._writerDone is None:
            return succeed(None)
        self._jobs.stop()
        writer, feed = self._writerDone, self._feedDone

        def stopRest(_: None) -> Deferred[None] | None:
            self._stopping.set()
            self._pool.stop()
            return feed

        d: Deferred[None] = writer.addCallback(stopRest)
        return d

    def _error(self, error: BaseException) -> str:
        return scrub(str(error).strip().splitlines()[0] if str(error).strip() else repr(error), self.url)

    # Writing

    def append(self, records: list[Record]) -> Deferred[int]:
        """
        See L{IStore.append}.  Fails at once with L{StoreUnavailable} while
        the database cannot be reached.
        """
        d: Deferred[int] = Deferred()
        if not records:
            d.callback(0)
        elif not self.available:
            d.errback(StoreUnavailable(f"database unreachable: {self.health.lastError}"))
        else:
            self._jobs.append(records, d)
        return d

    def callInWriter(self, f: Callable[[psycopg.Connection[Any]], Any]) -> Deferred[Any]:
        """
        Run C{f(connection)} on the writer thread, between transactions.

        @return: a Deferred firing with its result.
        """
        d: Deferred[Any] = Deferred()
        self._jobs.call(f, d)
        return d

    def _setAvailable(self, available: bool, error: str | None = None) -> None:
        # On the reactor thread.
        if available == self.available:
            return
        self.available = available
        self.flow.set(not available)
        if available:
            self.log.info("database {db} reachable again: ingest resumes", db=self.displayName)
        else:
            self.log.error("database {db} unreachable ({error}): refusing ingest", db=self.displayName, error=error)

    def _writeLoop(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        try:
            conn = connect(self.url)
            createSchema(conn, now=nowMicros())
            row = conn.execute("SELECT last_id FROM logsvc_position").fetchone()
            self.fedId = int(row[0]) if row else 0
            conn.commit()
        except BaseException as e:
            self._openError = e
            if conn is not None:
                conn.close()
            self._opened.set()
            return
        self._opened.set()
        jobs = self._jobs
        stopping = False
        backoff = RECONNECT_FIRST
        nextPartitions = time.monotonic() + PARTITION_CHECK
        while not stopping:
            if conn is None:
                try:
                    conn = connect(self.url)
                except psycopg.Error as e:
                    self._down(e)
                    # Wait for the next try; what arrives meanwhile fails at once.
                    waited = jobs.take(timeout=backoff)
                    backoff = min(RECONNECT_MAX, backoff * 2)
                    if waited is not None:
                        stopping = waited.stopping
                        jobs.failAll(waited, Failure(StoreUnavailable(self._error(e))))
                    continue
                backoff = RECONNECT_FIRST
                self._up()
            if time.monotonic() >= nextPartitions:
                nextPartitions = time.monotonic() + PARTITION_CHECK
                try:
                    ensurePartitions(conn, now=nowMicros())
                except psycopg.Error as e:
                    self.log.error("cannot make partitions: {error}", error=self._error(e))
            turn = jobs.take()
            assert turn is not None
            stopping = turn.stopping
            if turn.appends and not self._commit(conn, turn.appends):
                self._drop(conn)
                conn = None
                jobs.failAll(Turn(calls=turn.calls), Failure(StoreUnavailable("database connection lost")))
                continue
            jobs.runCalls(conn, turn)
        leftovers = jobs.leftovers()
        if leftovers:
            if conn is None:
                self._failAll(leftovers, StoreUnavailable("store stopped while the database was unreachable"))
            else:
                self._commit(conn, leftovers)
        if conn is not None:
            conn.close()
        assert self._writerDone is not None
        self._reactor.callFromThread(self._writerDone.callback, None)

    def _down(self, error: BaseException) -> None:
        message = self._error(error)
        self.health.failed(message)
        self._reactor.callFromThread(self._setAvailable, False, message)

    def _up(self) -> None:
        self.health.succeeded()
        self._reactor.callFromThread(self._setAvailable, True)

    def _drop(self, conn: psycopg.Connection[Any]) -> None:
        try:
            conn.close()
        except psycopg.Error:
            pass

    def _failAll(self, batch: list[tuple[list[Record], Deferred[int]]], error: StoreError) -> None:
        failure = Failure(error)
        for _, d in batch:
            self._reactor.callFromThread(d.errback, failure)

    def _commit(self, conn: psycopg.Connection[Any], batch: list[tuple[list[Record], Deferred[int]]]) -> bool:
        """
        Store C{batch} in one transaction and fire its Deferreds.

        @return: False when the connection was lost (the batch failed with
            L{StoreUnavailable}; reconnect), else True.
        """
        records = batch[0][0] if len(batch) == 1 else [r for rs, _ in batch for r in rs]
        try:
            with conn.transaction():
                first = reserveIds(conn, len(records))
                with conn.cursor() as cursor:
                    copyRows(cursor, first, records)
                # In the same transaction: the counts agree with the records.
                addCounts(conn, countRecords(records))
                conn.execute("SELECT pg_notify(%s, %s)", [COMMIT_CHANNEL, str(first + len(records) - 1)])
                if self.beforeCommit is not None:
                    self.beforeCommit(first)
        except psycopg.OperationalError as e:
            if not conn.broken and not conn.closed:
                return self._rejected(conn, batch, e)
            # The outcome of a COMMIT cut off is unknown: not acknowledged.
            self.log.error("database connection lost: {error}", error=self._error(e))
            self._down(e)
            self._failAll(batch, StoreUnavailable(f"database connection lost: {self._error(e)}"))
            return False
        except Exception as e:
            if conn.broken or conn.closed:
                self._down(e)
                self._failAll(batch, StoreUnavailable(f"database connection lost: {self._error(e)}"))
                return False
            return self._rejected(conn, batch, e)
        firsts = []
        for rs, d in batch:
            firsts.append((d, first))
            first += len(rs)
        self._reactor.callFromThread(_fireAll, firsts)
        return True

    def _rejected(self, conn: psycopg.Connection[Any], batch: list[tuple[list[Record], Deferred[int]]], error: Exception) -> bool:
        if len(batch) > 1:
            # Appends share a transaction only for speed: one that cannot be
            # stored must not cost the others.
            for one in batch:
                if not self._commit(conn, [one]):
                    return False
            return True
        self.log.error("append failed, nothing of it stored: {error}", error=self._error(error))
        self._failAll(batch, StoreError(self._error(error)))
        return True

    # Reading

    def _readConnection(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = connect(self.url, autocommit=True)
            if self.searchTimeout:
                # The server stops a statement past the budget (each page of
                # an export is a statement of its own, so exports go on).
                conn.execute(f"SET statement_timeout = {max(1, round(self.searchTimeout * 1000))}")
            self._local.conn = conn
        return conn

    def read(self, f: Callable[[psycopg.Connection[Any]], Any]) -> Deferred[Any]:
        """
        Run C{f(connection)} on a reader thread.

        @return: a Deferred firing with its result, or failing with
            L{StoreUnavailable} when the database cannot be reached, with
            L{QueryTimeout} past the search budget.
        """

        def run() -> Any:
            try:
                return f(self._readConnection())
            except psycopg.errors.QueryCanceled:
                raise QueryTimeout(self.searchTimeout) from None
            except psycopg.OperationalError as e:
                conn = getattr(self._local, "conn", None)
                if conn is not None and (conn.closed or conn.broken):
                    self._local.conn = None
                raise StoreUnavailable(self._error(e)) from None

        if not self.running:
            # Not started yet (the server was unreachable at start): answer
            # now rather than queue on a pool that has not started.
            return fail(StoreUnavailable(f"database unreachable: {self.health.lastError}"))
        reactor: IReactorThreads = self._reactor  # type: ignore[assignment]
        return deferToThreadPool(reactor, self._pool, run)

    def query(self, query: Query) -> Deferred[list[Row]]:
        """
        See L{IStore.query}.
        """
        return self.read(lambda conn: selectPage(conn, query))

    def exportPage(self, query: Query) -> Deferred[tuple[bytes, int, tuple[int, int] | None]]:
        """
        See L{IStore.exportPage}.
        """
        return self.read(lambda conn: selectNDJSON(conn, query))

    def afterId(self, query: Query, lastId: int, limit: int) -> Deferred[list[Row]]:
        """
        See L{IStore.afterId}.
        """
        return self.read(lambda conn: selectAfterId(conn, query, lastId, limit))

    def histogram(self, query: Query, origin: int, width: int) -> Deferred[dict[tuple[int, int], int]]:
        """
        See L{IStore.histogram}.
        """
        return self.read(lambda conn: readHistogram(conn, query, origin, width))

    def top(self, query: Query, column: str) -> Deferred[dict[Any, int]]:
        """
        See L{IStore.top}.
        """
        return self.read(lambda conn: readTop(conn, query, column))

    def timeRange(self, query: Query) -> Deferred[tuple[int, int] | None]:
        """
        See L{IStore.timeRange}.
        """
        return self.read(lambda conn: selectTimeRange(conn, query))

    def count(self) -> Deferred[int]:
        """
        See L{IStore.count}.
        """
        return self.read(selectCount)

    # Retention

    def deleteOld(self, *, cutoff: int | None, maxBytes: int | None, chunk: int) -> Deferred[int]:
        """
        See L{IStore.deleteOld}: drops whole daily partitions before
        C{cutoff} and trims the one that straddles it, on a reader thread,
        by one node at a time (the others' calls delete nothing).
        """
        return self.read(lambda conn: deleteOld(conn, cutoff=cutoff, maxBytes=maxBytes, chunk=chunk))

    def dataSize(self) -> Deferred[int]:
        """
        See L{IStore.dataSize}: the records' partitions with their indexes.
        """
        return self.read(dataSize)

    # The feed

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """
        See L{ICommitFeed.subscribe}: every node's commits, in id order.
        """
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def _deliver(self, rows: list[Row], top: int, delivered: threading.Event) -> None:
        # On the reactor thread: hand contiguous runs of ids to subscribers.
        try:
            start = 0
            for end in range(1, len(rows) + 1):
                if end == len(rows) or rows[end][0] != rows[end - 1][0] + 1:
                    first = rows[start][0]
                    records = [Record(*row[1:]) for row in rows[start:end]]
                    for subscriber in list(self._subscribers):
                        try:
                            subscriber(first, records)
                        except Exception:
                            self.log.failure("tail subscriber failed")
                    start = end
            self.fedId = max(self.fedId, top)
        finally:
            delivered.set()

    def _feedLoop(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        # From the highest id at start: a subscriber gets every record
        # committed after it subscribed.
        fed = self.fedId
        backoff = RECONNECT_FIRST
        try:
            while not self._stopping.is_set():
                try:
                    if conn is None:
                        conn = connect(self.url, autocommit=True)
                        conn.execute(f"LISTEN {COMMIT_CHANNEL}")
                        backoff = RECONNECT_FIRST
                    row = conn.execute("SELECT last_id FROM logsvc_position").fetchone()
                    top = int(row[0]) if row else 0
                    if not self._subscribers:
                        # Read after top: whatever is at or below it was
                        # committed before anyone subscribed.
                        fed = top
                    while fed < top and not self._stopping.is_set():
                        # Bounded by top: ids above it may commit meanwhile,
                        # and are read on the next turn.
                        rows = selectCommitted(conn, fed, top, FEED_PAGE)
                        high = rows[-1][0] if rows else top
                        self._handOver(rows, high)
                        fed = high
                    if fed >= top:
                        self._reactor.callFromThread(self._passed, top)
                    for _ in conn.notifies(timeout=FEED_POLL, stop_after=1):
                        pass
                except psycopg.Error as e:
                    if conn is not None:
                        self._drop(conn)
                    conn = None
                    self.log.warn("tail feed lost the database ({error}); reconnecting", error=self._error(e))
                    self._stopping.wait(backoff)
                    backoff = min(RECONNECT_MAX, backoff * 2)
        finally:
            if conn is not None:
                conn.close()
            assert self._feedDone is not None
            self._reactor.callFromThread(self._feedDone.callback, None)

    def _passed(self, top: int) -> None:
        self.fedId = max(self.fedId, top)

    def _handOver(self, rows: list[Row], top: int) -> None:
        # Wait until the reactor has taken the rows: the feed reads no
        # further ahead than the tails are served.
        delivered = threading.Event()
        self._reactor.callFromThread(self._deliver, rows, top, delivered)
        while not delivered.wait(0.5):
            if self._stopping.is_set():
                return


def _fireAll(results: list[tuple[Deferred[int], int]]) -> None:
    for d, first in results:
        d.callback(first)


__all__ = ["PostgresStore", "SchemaError"]
