"""
The embedded store: SQLite in WAL mode, one writer thread, a small pool of
reader threads.

The reactor thread never touches a connection.  Appends queue to the writer
thread, which takes everything queued at once and commits it in one
transaction (group commit), then fires the appends' Deferreds on the reactor
thread.  Queries run on reader threads with their own connections, which WAL
lets proceed while the writer commits.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorFromThreads, IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from logsvc.query import Query
from logsvc.record import Record
from logsvc.store.base import IStore, Row, StoreError

SCHEMA_VERSION = 1

_SCHEMA = [
    """
    CREATE TABLE IF NOT EXISTS logs (
        id INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        received INTEGER NOT NULL,
        level INTEGER NOT NULL,
        source TEXT NOT NULL,
        service TEXT NOT NULL,
        message TEXT NOT NULL,
        fields TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS logs_ts ON logs (ts)",
    "CREATE INDEX IF NOT EXISTS logs_service_level_ts ON logs (service, level, ts)",
]

INSERT_SQL = (
    "INSERT INTO logs (ts, received, level, source, service, message, fields)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)

_COLUMNS = "id, ts, received, level, source, service, message, fields"

#: fsync policies: "normal" survives a process crash, "full" survives power loss.
FSYNC_MODES = {"normal": "NORMAL", "full": "FULL", "off": "OFF"}

#: Most records one transaction takes; more waits for the next.
MAX_TRANSACTION_RECORDS = 50_000


def connect(path: str, *, fsync: str = "normal", readonly: bool = False) -> sqlite3.Connection:
    """
    Open a connection with logsvc's settings (WAL, the fsync policy, autocommit
    mode so transactions are explicit).  Blocking: call it off the reactor.
    """
    if readonly:
        # Quoted: a "#", "?" or "%" in the path would otherwise end or alter it.
        conn = sqlite3.connect(
            f"file:{quote(path)}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # Takes effect only on a new file, and only before WAL is set: lets
        # retention return freed pages (logsvc.retention).
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={FSYNC_MODES[fsync]}")
    # The writer's cache holds the hot index pages; readers lean on the OS cache.
    conn.execute("PRAGMA cache_size=-16384" if readonly else "PRAGMA cache_size=-65536")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def createSchema(conn: sqlite3.Connection) -> None:
    """
    Create or check the schema.

    @raise StoreError: when the database was made by a newer logsvc.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(f"database schema version {version} is newer than {SCHEMA_VERSION}")
    conn.execute("BEGIN")
    for statement in _SCHEMA:
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    conn.execute("COMMIT")


def _escapeLike(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def buildWhere(query: Query) -> tuple[list[str], list[Any]]:
    """
    Translate a query's filters (not its cursor or order) to SQL conditions.

    @return: the conditions (to be joined with AND) and their parameters.
    """
    where: list[str] = []
    params: list[Any] = []
    if query.since is not None:
        where.append("ts >= ?")
        params.append(query.since)
    if query.until is not None:
        where.append("ts < ?")
        params.append(query.until)
    if query.level is not None:
        where.append("level <= ?")
        params.append(query.level)
    for column, values in (("source", query.sources), ("service", query.services)):
        if len(values) == 1:
            where.append(f"{column} = ?")
            params.append(values[0])
        elif values:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    for word in query.words():
        where.append("message LIKE ? ESCAPE '\\'")
        params.append(f"%{_escapeLike(word)}%")
    for name, value in query.fields:
        where.append("json_extract(fields, ?) = ?")
        params.append('$."' + name.replace('"', '\\"') + '"')
        params.append(value)
    return where, params


def buildSelect(query: Query) -> tuple[str, list[Any]]:
    """
    @return: the SELECT for one page of C{query} (C{limit + 1} rows) and its
        parameters.
    """
    where, params = buildWhere(query)
    descending = query.order == "desc"
    if query.cursor is not None:
        ts, rowid = query.cursor
        where.append("(ts, id) < (?, ?)" if descending else "(ts, id) > (?, ?)")
        params.extend((ts, rowid))
    direction = "DESC" if descending else "ASC"
    sql = f"SELECT {_COLUMNS} FROM logs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY ts {direction}, id {direction}"
    if query.limit is not None:
        sql += " LIMIT ?"
        params.append(query.limit + 1)
    return sql, params


_STOP = object()


@implementer(IStore)
class SqliteStore(Service):
    """
    An L{IStore} in one SQLite file.

    Start it (C{startService}) before use; C{stopService} returns a Deferred
    that fires once every queued append is committed and the file is closed.

    @ivar path: the database file.
    """

    log = Logger()

    def __init__(
        self,
        path: str,
        *,
        reactor: Any = None,
        fsync: str = "normal",
        readers: int = 2,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {sorted(FSYNC_MODES)}")
        self.path = path
        self._reactor: IReactorFromThreads = reactor
        self._fsync = fsync
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writerDone: Deferred[None] | None = None
        self._pool = ThreadPool(minthreads=1, maxthreads=readers, name="logsvc-sqlite-read")
        self._local = threading.local()
        self._opened = threading.Event()
        self._openError: BaseException | None = None

    # Lifetime

    def startService(self) -> None:
        """
        Open the database (creating the schema) on the writer thread; raises
        L{StoreError} here, at start, when the file cannot be used.
        """
        Service.startService(self)
        self._writerDone = Deferred()
        self._writer = threading.Thread(target=self._writeLoop, name="logsvc-sqlite-write", daemon=True)
        self._writer.start()
        self._opened.wait()
        if self._openError is not None:
            self.running = 0
            self._writerDone = None  # the writer thread has already ended
            raise StoreError(f"cannot open {self.path}: {self._openError}")
        self._pool.start()

    def stopService(self) -> Deferred[None]:
        """
        @return: a Deferred firing once every queued append is committed and
            the connections are closed.
        """
        Service.stopService(self)
        if self._writerDone is None:
            return succeed(None)
        self._jobs.put(_STOP)
        done = self._writerDone

        def stopReaders(result: object) -> object:
            self._pool.stop()
            return result

        return done.addBoth(stopReaders)

    # Writing

    def append(self, records: list[Record]) -> Deferred[int]:
        """
        See L{IStore.append}.
        """
        d: Deferred[int] = Deferred()
        if not records:
            d.callback(0)
            return d
        self._jobs.put((records, d))
        return d

    def callInWriter(self, f: Callable[[sqlite3.Connection], Any]) -> Deferred[Any]:
        """
        Run C{f(connection)} on the writer thread, between transactions.

        @return: a Deferred firing with its result.
        """
        d: Deferred[Any] = Deferred()
        self._jobs.put((f, d))
        return d

    def _writeLoop(self) -> None:
        try:
            conn = connect(self.path, fsync=self._fsync)
            createSchema(conn)
        except BaseException as e:
            self._openError = e
            self._opened.set()
            return
        self._opened.set()
        jobs = self._jobs
        stopping = False
        while not stopping:
            first = jobs.get()
            batch: list[tuple[list[Record], Deferred[int]]] = []
            calls: list[tuple[Callable[[sqlite3.Connection], Any], Deferred[Any]]] = []
            pending = [first]
            size = 0
            while True:
                for job in pending:
                    if job is _STOP:
                        stopping = True
                    elif isinstance(job[0], list):
                        batch.append(job)
                        size += len(job[0])
                    else:
                        calls.append(job)
                pending = []
                if size >= MAX_TRANSACTION_RECORDS or calls or stopping:
                    break
                try:
                    pending.append(jobs.get_nowait())
                except queue.Empty:
                    break
            if batch:
                self._commit(conn, batch)
            for f, d in calls:
                try:
                    result = f(conn)
                except BaseException:
                    self._reactor.callFromThread(d.errback, Failure())
                else:
                    self._reactor.callFromThread(d.callback, result)
        # Drain whatever raced with the stop marker.
        leftovers = []
        while True:
            try:
                job = jobs.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP and isinstance(job[0], list):
                leftovers.append(job)
        if leftovers:
            self._commit(conn, leftovers)
        conn.close()
        assert self._writerDone is not None
        self._reactor.callFromThread(self._writerDone.callback, None)

    def _commit(
        self, conn: sqlite3.Connection, batch: list[tuple[list[Record], Deferred[int]]]
    ) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            cursor = conn.cursor()
            firsts = []
            for records, _ in batch:
                cursor.executemany(INSERT_SQL, records)
                last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
                firsts.append(last - len(records) + 1)
            conn.execute("COMMIT")
        except Exception as e:
            # Not only sqlite3.Error: a value SQLite cannot bind raises
            # OverflowError, which must fail this append, not the writer thread.
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if len(batch) > 1:
                # Appends share a transaction only for speed: one that cannot
                # be stored must not cost the others.
                for job in batch:
                    self._commit(conn, [job])
                return
            self.log.error("append failed, nothing of it stored: {error}", error=e)
            failure = Failure(StoreError(str(e)))
            for _, d in batch:
                self._reactor.callFromThread(d.errback, failure)
            return
        self._reactor.callFromThread(_fireAll, [(d, first) for (_, d), first in zip(batch, firsts, strict=True)])

    # Reading

    def _readConnection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, fsync=self._fsync, readonly=True)
            self._local.conn = conn
        return conn

    def read(self, f: Callable[[sqlite3.Connection], Any]) -> Deferred[Any]:
        """
        Run C{f(connection)} on a reader thread.

        @return: a Deferred firing with its result.
        """

        def run() -> Any:
            return f(self._readConnection())

        reactor: IReactorThreads = self._reactor  # type: ignore[assignment]
        return deferToThreadPool(reactor, self._pool, run)

    def query(self, query: Query) -> Deferred[list[Row]]:
        """
        See L{IStore.query}.
        """
        sql, params = buildSelect(query)
        return self.read(lambda conn: conn.execute(sql, params).fetchall())

    def count(self) -> Deferred[int]:
        """
        See L{IStore.count}.
        """
        return self.read(lambda conn: conn.execute("SELECT count(*) FROM logs").fetchone()[0])


def _fireAll(results: list[tuple[Deferred[int], int]]) -> None:
    for d, first in results:
        d.callback(first)
