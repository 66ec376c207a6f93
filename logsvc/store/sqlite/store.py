"""
The embedded store: SQLite in WAL mode, one writer thread, a small pool of
reader threads.

The reactor thread never touches a connection.  Appends queue to the writer
thread, which takes everything queued at once and commits it in one
transaction (group commit), then fires the appends' Deferreds on the reactor
thread.  Queries run on reader threads with their own connections, which WAL
lets proceed while the writer commits, on two lanes within the search budget
(L{ReadLanes}).
"""

import os
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from logsvc.health import DEGRADED, OK, ComponentHealth
from logsvc.query import Query
from logsvc.record import Record
from logsvc.startup import RETRY_DELAYS, StartupError
from logsvc.store.base import IStore, Row, StoreError, StoreUnavailable
from logsvc.store.sqlite.checkpointer import FALLBACK_PAGES, WalCheckpointer
from logsvc.store.sqlite.connection import (
    FSYNC_MODES,
    connect,
    createSchema,
    insertRecords,
    withWorkLimit,
)
from logsvc.store.sqlite.paths import describeOpenError, unusablePath
from logsvc.store.sqlite.plan import (
    selectAfterId,
    selectNDJSON,
    selectPage,
    selectTimeRange,
)
from logsvc.store.sqlite.readlanes import DEFAULT_SEARCH_TIMEOUT, ReadLanes
from logsvc.store.sqlite.retention import deleteChunk, usedBytes
from logsvc.store.sqlite.rollup import addToRollup, readHistogram, readTop
from logsvc.store.sqlite.searchindex import MAX_INDEX_LAG, SearchIndexer, attachSearch, searchPath
from logsvc.store.writequeue import WriteQueue

#: Most records one transaction takes; more waits for the next.
MAX_TRANSACTION_RECORDS = 50_000

#: Free bytes below which a disk I/O error while opening is taken for a
#: full disk (SQLite says "disk I/O error", not "disk is full", when it
#: cannot create the C{-wal} or C{-shm} file).
NEARLY_FULL = 16 * 1024 * 1024


def outOfSpace(error: BaseException, path: str, *, statvfs: Any = os.statvfs) -> bool:
    """
    @return: whether C{error}, raised opening the database C{path}, comes
        from a full disk (a condition that heals by itself).
    """
    if not isinstance(error, sqlite3.Error):
        return False
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL:
        return True
    if code != sqlite3.SQLITE_IOERR:
        return False
    try:
        st = statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return bool(st.f_bavail * st.f_frsize < NEARLY_FULL)



@implementer(IStore)
class SqliteStore(Service):
    """
    An L{IStore} in one SQLite file.

    Start it (C{startService}) before use; C{stopService} returns a Deferred
    that fires once every queued append is committed and the file is closed.

    The search index (see L{buildPlan}) lives in a file of its own beside
    C{path}, filled by a L{SearchIndexer} thread that trails the writer by at
    most C{maxIndexLag} records; with C{searchIndex=False} it is not kept at
    all and searches read every record (for comparison in benchmarks).

    @ivar path: the database file.
    """

    log = Logger()

    def __init__(
        self,
        path: str,
        *,
        reactor: Any = None,
        fsync: str = "normal",
        readers: tuple[int, int] | None = None,
        searchIndex: bool = True,
        maxIndexLag: int = MAX_INDEX_LAG,
        searchTimeout: float | None = DEFAULT_SEARCH_TIMEOUT,
    ) -> None:
        """
        @param readers: the threads of the quick and the slow read lane
            (L{ReadLanes}); by default sized for the machine.
        @param searchTimeout: seconds a read may take (L{None}: no limit);
            past it, it fails with L{QueryTimeout}.
        """
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {sorted(FSYNC_MODES)}")
        self.path = path
        self._reactor: IReactorFromThreads = reactor
        self._fsync = fsync
        self._jobs: WriteQueue[sqlite3.Connection] = WriteQueue(self._reactor, MAX_TRANSACTION_RECORDS)
        self._writer: threading.Thread | None = None
        self._writerDone: Deferred[None] | None = None
        self._lanes = ReadLanes(self._openReader, reactor, searchTimeout=searchTimeout, threads=readers)
        self._opened = threading.Event()
        self._helpersStarted = threading.Event()
        self._attachSearch = False
        self._openError: BaseException | None = None
        self.searchIndex = searchIndex
        self._indexer = (
            SearchIndexer(path, reactor=self._reactor, fsync=fsync, maxLag=maxIndexLag) if searchIndex else None
        )
        self._checkpointer = WalCheckpointer(path, reactor=self._reactor, fsync=fsync)
        #: Highest committed id, owned by the writer.
        self._top = 0
        self._vacuumChecked = False
        self._waitingForSpace: str | None = None
        self._retryCall: Any = None
        #: Fires once a writer open in progress after a full disk has ended.
        self._reopening: Deferred[Any] | None = None
        #: Degraded while the writer cannot open (a full disk).
        self.writerHealth = ComponentHealth("store_writer")

    def components(self) -> list[ComponentHealth]:
        """
        @return: the health of the store's helper threads (the search
            indexer, when kept, and the WAL checkpointer).
        """
        found = [self.writerHealth, self._checkpointer.health]
        if self._indexer is not None:
            found.insert(0, self._indexer.health)
        return found

    @property
    def indexing(self) -> bool:
        """
        False pauses filling the search index (queries still use what it holds).
        """
        return self._indexer is not None and self._indexer.indexing

    @indexing.setter
    def indexing(self, value: bool) -> None:
        if self._indexer is not None:
            self._indexer.indexing = value

    # Lifetime

    def startService(self) -> None:
        """
        Open the database (creating the schema) on the writer thread and the
        search file on the indexer's; raises L{StartupError} here, at
        start, when a file cannot be used (saying why, in one line).

        On a full disk the store starts for reading only: queries and tails
        work, L{waitingForSpace} says why nothing can be written (the
        free-disk floor then refuses ingest), C{/health} reports the writer
        degraded, and the writer tries to open again (L{RETRY_DELAYS})
        until it can; then ingest resumes by itself.
        """
        problem = unusablePath(self.path)
        if problem is not None:
            raise StartupError(problem)
        Service.startService(self)
        error = self._openWriter()
        if error is not None:
            if not outOfSpace(error, self.path):
                self.running = 0
                raise StartupError(describeOpenError(error))
            self._waitForSpace(error, 0)
            self._lanes.start()
            return
        self._startHelpers()
        self._lanes.start()

    @property
    def waitingForSpace(self) -> str | None:
        """
        Why nothing can be written (the disk was full when the writer
        tried to open), or L{None} once the writer is open.
        """
        return self._waitingForSpace

    def _openWriter(self) -> BaseException | None:
        """
        Start the writer thread and wait until it opened the database
        (blocking for that open, as at start).

        @return: why it could not, or L{None} once it is running.
        """
        self._opened.clear()
        self._helpersStarted.clear()
        self._attachSearch = False
        self._openError = None
        self._writerDone = Deferred()
        self._writer = threading.Thread(target=self._writeLoop, name="logsvc-sqlite-write", daemon=True)
        self._writer.start()
        self._opened.wait()
        if self._openError is not None:
            self._writerDone = None  # the writer thread has already ended
            return self._openError
        return None

    def _startHelpers(self) -> None:
        try:
            if self._indexer is not None:
                try:
                    self._indexer.start(self._top)
                except BaseException as e:
                    self.running = 0
                    self._jobs.stop()
                    raise StartupError(f"cannot open {searchPath(self.path)}: {describeOpenError(e)}") from e
                self._attachSearch = True
        finally:
            # The writer attaches the search file before its first job (it
            # takes indexed records out of the index when it deletes
            # them), so also before what queued while waiting for space.
            self._helpersStarted.set()
        # Last: a start that failed above leaves no thread behind.
        self._checkpointer.start()

    def _waitForSpace(self, error: BaseException, attempt: int) -> None:
        reason = f"disk full, reading only: {describeOpenError(error)}"
        delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
        if self._waitingForSpace is None:
            self.log.error("{path}: {reason}; the writer tries again until space returns", path=self.path, reason=reason)
        self._waitingForSpace = reason
        self.writerHealth.set(DEGRADED, reason)
        self._retryCall = self._reactor.callLater(delay, self._retryWriter, attempt + 1)  # type: ignore[attr-defined]

    def _retryWriter(self, attempt: int) -> None:
        self._retryCall = None
        if not self.running:
            return
        # Opening waits for the writer's and the indexer's first open, on a
        # disk that was full a moment ago: wait on a thread of its own, not
        # on the reactor (reads, tails and /health go on meanwhile).
        reopened: Deferred[BaseException | None] = Deferred()
        self._reopening = reopened

        def reopen() -> None:
            error = self._openWriter()
            if error is None:
                try:
                    self._startHelpers()
                except StartupError as e:
                    error = e
            self._reactor.callFromThread(reopened.callback, error)

        threading.Thread(target=reopen, name="logsvc-sqlite-reopen", daemon=True).start()
        reopened.addCallback(self._writerReopened, attempt)

    def _writerReopened(self, error: BaseException | None, attempt: int) -> None:
        self._reopening = None
        if isinstance(error, StartupError):
            # The writer was stopped with it; reads go on, writes stay off.
            self.running = 1
            self._waitingForSpace = str(error)
            self.writerHealth.set(DEGRADED, str(error))
            self.log.error("{path}: {error}; restart logsvc once it is fixed", path=self.path, error=error)
            return
        if error is not None:
            if self.running:
                self._waitForSpace(error, attempt)
            return
        self._waitingForSpace = None
        self._lanes.reconnect()
        self.writerHealth.set(OK)
        self.log.info("{path}: the writer is open again: ingest resumes", path=self.path)

    def stopService(self) -> Deferred[None]:
        """
        @return: a Deferred firing once every queued append is committed and
            the connections are closed.
        """
        Service.stopService(self)
        if self._retryCall is not None:
            self._retryCall.cancel()
            self._retryCall = None
        if self._reopening is not None:
            # Stop once the open in progress has ended, whichever way.
            return self._reopening.addCallback(lambda _: self._stopOpened())
        return self._stopOpened()

    def _stopOpened(self) -> Deferred[None]:
        if self._writerDone is None:
            # Never opened (the disk stayed full): nothing was queued.
            if self._waitingForSpace is not None:
                self._lanes.stop()
            return succeed(None)
        self._jobs.stop()
        done = self._writerDone

        def stopHelpers(_: None) -> Deferred[None]:
            helpers = [self._checkpointer.stop()]
            if self._indexer is not None:
                helpers.append(self._indexer.stop())
            return gatherResults(helpers).addCallback(lambda _: self._lanes.stop())

        return done.addCallback(stopHelpers)

    # Writing

    def append(self, records: list[Record]) -> Deferred[int]:
        """
        See L{IStore.append}; fails at once with L{StoreUnavailable} while
        the writer waits for space (L{waitingForSpace}).
        """
        d: Deferred[int] = Deferred()
        if not records:
            d.callback(0)
        elif self._waitingForSpace is not None:
            # Nothing queues for a writer that may never open: the pipeline's
            # stop and retention's sweep would wait for it.
            d.errback(StoreUnavailable(self._waitingForSpace))
        else:
            self._jobs.append(records, d)
        return d

    def callInWriter(self, f: Callable[[sqlite3.Connection], Any]) -> Deferred[Any]:
        """
        Run C{f(connection)} on the writer thread, between transactions
        (failing at once with L{StoreUnavailable} while the writer waits
        for space; see L{waitingForSpace}).  The search file is attached to the connection (as C{search}), so
        records C{f} deletes leave the search index too.

        @return: a Deferred firing with its result.
        """
        d: Deferred[Any] = Deferred()
        if self._waitingForSpace is not None:
            d.errback(StoreUnavailable(self._waitingForSpace))
        else:
            self._jobs.call(f, d)
        return d

    def _writeLoop(self) -> None:
        try:
            conn = connect(self.path, fsync=self._fsync)
            # Checkpoints run on their own thread (WalCheckpointer); this
            # connection's own is the fallback.
            conn.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")
            createSchema(conn)
            self._top = conn.execute("SELECT ifnull(max(id), 0) FROM logs").fetchone()[0]
        except BaseException as e:
            self._openError = e
            self._opened.set()
            return
        self._opened.set()
        self._helpersStarted.wait()
        if self._attachSearch:
            try:
                attachSearch(conn, self.path, readonly=False)
            except sqlite3.Error as e:
                # As a failed job would: deletes then leave the index alone.
                self.log.error("cannot attach the search file to the writer: {error}", error=e)
        jobs = self._jobs
        indexer = self._indexer
        stopping = False
        while not stopping:
            if indexer is not None:
                indexer.waitForLag()
            turn = jobs.take()
            assert turn is not None
            stopping = turn.stopping
            if turn.appends:
                self._commit(conn, turn.appends)
            jobs.runCalls(conn, turn)
        leftovers = jobs.leftovers()
        if leftovers:
            self._commit(conn, leftovers)
        conn.close()
        assert self._writerDone is not None
        self._reactor.callFromThread(self._writerDone.callback, None)

    def _commit(
        self, conn: sqlite3.Connection, batch: list[tuple[list[Record], Deferred[int]]]
    ) -> None:
        try:
            # Not IMMEDIATE: that would lock the attached search file too.
            # This thread is the records file's only writer, so the
            # deferred lock is never refused.
            conn.execute("BEGIN")
            records = batch[0][0] if len(batch) == 1 else [r for rs, _ in batch for r in rs]
            last = insertRecords(conn, records)
            addToRollup(conn, records)
            conn.execute("COMMIT")
            self._checkpointer.committed(len(records))
            firsts = []
            first = last - len(records) + 1
            for rs, _ in batch:
                firsts.append(first)
                first += len(rs)
            self._top = max(self._top, last)
            if self._indexer is not None:
                self._indexer.committed(self._top)
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
                for one in batch:
                    self._commit(conn, [one])
                return
            self.log.error("append failed, nothing of it stored: {error}", error=e)
            failure = Failure(StoreError(str(e)))
            for _, d in batch:
                self._reactor.callFromThread(d.errback, failure)
            return
        self._reactor.callFromThread(_fireAll, [(d, first) for (_, d), first in zip(batch, firsts, strict=True)])

    def whenIndexed(self) -> Deferred[None]:
        """
        @return: a Deferred firing once every record committed so far is in
            the search index (or at once when the index is off).
        """
        indexer = self._indexer
        if indexer is None:
            return succeed(None)

        def afterQueued(_: object) -> Deferred[None]:
            return indexer.whenIndexed()

        # Through the writer: appends queued before this call commit first.
        d: Deferred[None] = self.callInWriter(lambda conn: None).addCallback(afterQueued)
        return d

    # Reading

    def _openReader(self) -> sqlite3.Connection:
        # While the writer cannot open (a full disk) nothing changes the
        # file, and a read-only connection to a WAL database could not
        # create its -shm file: open it immutable, unless a -wal file left
        # by a crash holds records that would then be missed.
        waiting = self._waitingForSpace is not None
        immutable = waiting and _emptyOrMissing(self.path + "-wal")
        conn = connect(self.path, fsync=self._fsync, readonly=True, immutable=immutable)
        if self._indexer is not None:
            immutable = waiting and _emptyOrMissing(searchPath(self.path) + "-wal")
            attachSearch(conn, self.path, readonly=True, immutable=immutable)
        return conn

    def read(self, f: Callable[[sqlite3.Connection], Any], *, long: bool = False) -> Deferred[Any]:
        """
        Run C{f(connection)} on a reader thread, within the matcher's
        work limit (L{withWorkLimit}) and the search budget (see
        L{ReadLanes}; C{f} must only read: it may run twice).

        @param long: the read is known to take long (an export page).
        @return: a Deferred firing with its result, or failing with
            L{QueryTimeout}.
        """
        return self._lanes.read(lambda conn: withWorkLimit(conn, lambda: f(conn)), long=long)

    def query(self, query: Query) -> Deferred[list[Row]]:
        """
        See L{IStore.query}.
        """
        return self.read(lambda conn: selectPage(conn, query, useIndex=self.searchIndex))

    def exportPage(self, query: Query) -> Deferred[tuple[bytes, int, tuple[int, int] | None]]:
        """
        See L{IStore.exportPage}.
        """
        return self.read(lambda conn: selectNDJSON(conn, query, useIndex=self.searchIndex), long=True)

    def afterId(self, query: Query, lastId: int, limit: int) -> Deferred[list[Row]]:
        """
        See L{IStore.afterId}.
        """
        return self.read(lambda conn: selectAfterId(conn, query, lastId, limit, useIndex=self.searchIndex))

    def histogram(self, query: Query, origin: int, width: int) -> Deferred[dict[tuple[int, int], int]]:
        """
        See L{IStore.histogram}.
        """
        return self.read(lambda conn: readHistogram(conn, query, origin, width, useIndex=self.searchIndex))

    def top(self, query: Query, column: str) -> Deferred[dict[Any, int]]:
        """
        See L{IStore.top}.
        """
        return self.read(lambda conn: readTop(conn, query, column, useIndex=self.searchIndex))

    def timeRange(self, query: Query) -> Deferred[tuple[int, int] | None]:
        """
        See L{IStore.timeRange}.
        """
        return self.read(lambda conn: selectTimeRange(conn, query, useIndex=self.searchIndex))

    def count(self) -> Deferred[int]:
        """
        See L{IStore.count}.
        """
        return self.read(lambda conn: conn.execute("SELECT count(*) FROM logs").fetchone()[0])

    # Retention

    @property
    def dataPath(self) -> str:
        """
        See L{IStore.dataPath}: the records file.
        """
        return self.path

    @property
    def available(self) -> bool:
        """
        See L{IStore.available}: false while the writer waits for space.
        """
        return self._waitingForSpace is None

    def deleteOld(self, *, cutoff: int | None, maxBytes: int | None, chunk: int) -> Deferred[int]:
        """
        See L{IStore.deleteOld}: one transaction on the writer thread, so
        ingest commits between chunks.  The first call warns once when the
        file cannot give freed space back (made without incremental vacuum).
        """
        if not self._vacuumChecked:
            self._vacuumChecked = True
            self.callInWriter(lambda conn: conn.execute("PRAGMA auto_vacuum").fetchone()[0]).addCallback(
                self._checkVacuum
            )
        return self.callInWriter(lambda conn: deleteChunk(conn, cutoff=cutoff, maxBytes=maxBytes, chunk=chunk))

    def _checkVacuum(self, mode: int) -> None:
        if mode != 2:
            self.log.warn(
                "{path} was created without auto_vacuum=INCREMENTAL: space freed by retention is"
                " reused for new records but not returned to the file system; to convert it, stop"
                " logsvc and run: sqlite3 {path} 'PRAGMA auto_vacuum=INCREMENTAL; VACUUM;'",
                path=self.path,
            )

    def dataSize(self) -> Deferred[int]:
        """
        See L{IStore.dataSize}: pages holding data in the records file and
        the search file.
        """
        return self.callInWriter(usedBytes)


def _emptyOrMissing(path: str) -> bool:
    try:
        return os.path.getsize(path) == 0
    except FileNotFoundError:
        return True


def _fireAll(results: list[tuple[Deferred[int], int]]) -> None:
    for d, first in results:
        d.callback(first)
