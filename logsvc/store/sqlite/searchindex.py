"""
The full-text search index: two FTS5 tables in a SQLite file of its own,
filled by a thread of its own, trailing the store's writer.

The index lives beside the records file (C{<db>-search}) so that filling it
never holds the records file's write lock: the writer commits records while
this thread tokenizes earlier ones, on the machine's other core.  It is
derived data: losing the file costs a rebuild, never a record.

Who owns what: L{SearchIndexer} owns the search file's one writing
connection and the C{indexed} mark (the highest record id in the index, kept
in the same file, so the mark and the index always agree).  The store's
writer owns the records and reports each commit with L{SearchIndexer.committed};
it waits (L{SearchIndexer.waitForLag}) rather than run more than C{maxLag}
records ahead, which bounds what queries scan past the mark.  The store's
writer connection attaches the search file only to take deleted records out
of the index (L{attachSearch}); readers attach it read-only to query it.
"""

from __future__ import annotations

import sqlite3
import threading
import time

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger

from logsvc.health import ComponentHealth
from logsvc.store.sqlite.connection import connect, uriFor
from logsvc.store.sqlite.helper import HelperThread

#: The search file's schema version (its C{PRAGMA user_version}).
SEARCH_SCHEMA_VERSION = 3

#: Tables of every version, dropped when the version changes (the index is
#: rebuilt from the records).
_SEARCH_TABLES = ("logs_search", "logs_fields", "search_state")

SEARCH_SCHEMA = [
    # Two contentless tables (the text lives in the records file) with
    # detail=none (no word positions or columns: phrases are confirmed row by
    # row) and columnsize=0 (no per-row sizes: nothing is ranked): message
    # words and field words apart, at about half the time and size of one
    # two-column detail=column table (field values such as request ids are
    # mostly unique words, the dearest kind to index).
    "CREATE VIRTUAL TABLE IF NOT EXISTS {db}.logs_search USING fts5("
    "text, content='', detail=none, columnsize=0, tokenize='unicode61 remove_diacritics 0')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS {db}.logs_fields USING fts5("
    "fields, content='', detail=none, columnsize=0, tokenize='unicode61 remove_diacritics 0')",
    # Merge segments 16 at a time, not 4: merging is most of the cost of a
    # growing index (measured over 800,000 records: 6.8 against 13.6 us per
    # record), at the price of up to 15 segments per level for a query.
    "INSERT INTO {db}.logs_search (logs_search, rank) VALUES ('automerge', 16)",
    "INSERT INTO {db}.logs_fields (logs_fields, rank) VALUES ('automerge', 16)",
    "CREATE TABLE IF NOT EXISTS {db}.search_state (one INTEGER PRIMARY KEY CHECK (one = 1), indexed INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO {db}.search_state (one, indexed) VALUES (1, 0)",
]

def searchText(row: str = "") -> str:
    """
    @return: the text of a record the search index holds, as SQL over logs'
        columns (of the row named C{row}, as C{"old."} in a trigger).
    """
    return f"{row}message || ' ' || {row}service"


#: Page cache of the indexer's connection and of the search file where
#: others attach it, in KiB (negative, as PRAGMA cache_size takes it):
#: enough for the index's hot pages, bounded so RSS stays flat under load.
INDEXER_CACHE_KIB = -16384
ATTACHED_CACHE_KIB = -4096

#: Most records one index transaction takes.
INDEX_CHUNK = 20_000

#: Most committed records the index may trail by before the store's writer
#: waits for it.
MAX_INDEX_LAG = 200_000

#: Records the indexer gathers before a transaction while records keep
#: coming, for at most L{INDEX_GATHER_SECONDS} after the first: FTS5 writes a
#: segment per transaction and merges them later, so larger transactions
#: cost less per record (measured, RFC 5424 records: 2.6 us each in
#: transactions of 2,000, 2.1 in transactions of 20,000).  Queries scan the
#: records not yet indexed row by row, so they still see them.
INDEX_GATHER = 16_384
INDEX_GATHER_SECONDS = 0.1

#: Seconds the indexer waits before retrying a failed index transaction; the
#: wait doubles with each failure in a row, up to L{MAX_RETRY_DELAY}.
RETRY_DELAY = 1.0
MAX_RETRY_DELAY = 60.0


def searchPath(path: str) -> str:
    """
    @return: the search file kept beside the records file C{path}.
    """
    return path + "-search"


def attachSearch(conn: sqlite3.Connection, path: str, *, readonly: bool, immutable: bool = False) -> None:
    """
    Attach the search file of the records file C{path} to C{conn} (a
    connection to the records file) as C{search}, so queries name
    C{logs_search}, C{logs_fields} and C{search_state} unqualified.  A writing connection
    also gets a trigger that takes deleted records out of the index (a
    contentless FTS5 table needs the indexed text back to do that).
    """
    conn.execute(
        "ATTACH DATABASE ? AS search", (uriFor(searchPath(path), readonly=readonly, immutable=immutable),)
    )
    # Each attachment has a page cache of its own; these connections only
    # look pages up (queries) or delete now and then (retention).
    conn.execute(f"PRAGMA search.cache_size={ATTACHED_CACHE_KIB}")
    if not readonly:
        conn.execute(
            f"""
            CREATE TEMP TRIGGER IF NOT EXISTS logs_search_delete AFTER DELETE ON main.logs
            WHEN old.id <= (SELECT indexed FROM search.search_state)
            BEGIN
                INSERT INTO logs_search (logs_search, rowid, text)
                VALUES ('delete', old.id, {searchText("old.")});
                INSERT INTO logs_fields (logs_fields, rowid, fields)
                SELECT 'delete', old.id, old.fields WHERE old.fields IS NOT NULL;
            END
            """
        )


def createSearchSchema(conn: sqlite3.Connection, top: int, *, schema: str = "main") -> int:
    """
    Create or check the search file's schema on C{conn} (its writing
    connection, where it is C{schema}), emptying an index that holds ids above C{top}, the highest
    record id: such an index belongs to records that are gone (a replaced or
    restored records file) and would point at other records.

    @return: the C{indexed} mark.
    """
    db = schema
    version = conn.execute(f"PRAGMA {db}.user_version").fetchone()[0]
    conn.execute("BEGIN IMMEDIATE")
    try:
        if version != SEARCH_SCHEMA_VERSION:
            # Derived data of another version: rebuild rather than convert.
            for table in _SEARCH_TABLES:
                conn.execute(f"DROP TABLE IF EXISTS {db}.{table}")
        for statement in SEARCH_SCHEMA:
            conn.execute(statement.format(db=db))
        indexed: int = conn.execute(f"SELECT indexed FROM {db}.search_state").fetchone()[0]
        if indexed > top:
            for table in _SEARCH_TABLES[:2]:
                conn.execute(f"INSERT INTO {db}.{table} ({table}) VALUES ('delete-all')")
            conn.execute(f"UPDATE {db}.search_state SET indexed = 0")
            indexed = 0
        conn.execute(f"PRAGMA {db}.user_version={SEARCH_SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    if version not in (0, SEARCH_SCHEMA_VERSION):
        # Give the dropped index's pages back to the file system (the file
        # is created with auto_vacuum=INCREMENTAL); executescript steps the
        # pragma to its end.
        conn.executescript(f"PRAGMA {db}.incremental_vacuum;")
    return indexed


def indexRange(conn: sqlite3.Connection, indexed: int, high: int, *, records: str = "data") -> None:
    """
    Add the records with ids in C{(indexed, high]} to the index and record
    C{high} as indexed, in one transaction on the search file's writing
    connection (with the records file attached as C{records}).  C{indexed}
    must be the current mark.
    """
    # BEGIN IMMEDIATE would take a write lock on the attached records file
    # too; taking the search file's lock first (the UPDATE) means the records
    # are read in a snapshot no retention delete can interleave with.
    conn.execute("BEGIN")
    try:
        conn.execute("UPDATE search_state SET indexed = ?", (high,))
        conn.execute(
            f"INSERT INTO logs_search (rowid, text) SELECT id, {searchText()}"
            f" FROM {records}.logs WHERE id > ? AND id <= ?",
            (indexed, high),
        )
        conn.execute(
            "INSERT INTO logs_fields (rowid, fields) SELECT id, fields"
            f" FROM {records}.logs WHERE id > ? AND id <= ? AND fields IS NOT NULL",
            (indexed, high),
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SearchIndexer(HelperThread):
    """
    The thread that keeps the search file up with the records file.

    Thread-safe: L{committed} and L{waitForLag} are called on the store's
    writer thread, the rest on the reactor thread.  L{stop} stops it after
    the transaction in progress (what is not indexed yet is indexed at the
    next start).

    @ivar indexing: False pauses filling the index (queries still use what
        it holds, and the writer no longer waits for it).
    @ivar failed: True from a failed index transaction (a full disk, say)
        until one succeeds again: meanwhile the writer does not wait for the
        index and queries scan what it lacks.  The indexer retries by
        itself, after L{RETRY_DELAY} seconds doubling to L{MAX_RETRY_DELAY}.
    @ivar health: reports the failures (C{/health}, C{/metrics}).
    """

    log = Logger()

    def __init__(
        self,
        path: str,
        *,
        reactor: IReactorFromThreads,
        fsync: str = "normal",
        maxLag: int = MAX_INDEX_LAG,
        gather: int = INDEX_GATHER,
        gatherSeconds: float = INDEX_GATHER_SECONDS,
        retryDelay: float = RETRY_DELAY,
        maxRetryDelay: float = MAX_RETRY_DELAY,
    ) -> None:
        """
        @param path: the records file; the index lives in L{searchPath}C{(path)}.
        @param gather: see L{INDEX_GATHER} (at most half of C{maxLag}, so
            the writer never waits for a gathering indexer).
        @param gatherSeconds: see L{INDEX_GATHER_SECONDS}.
        """
        super().__init__(reactor)
        self.path = path
        self.maxLag = maxLag
        self.gather = min(gather, maxLag // 2)
        self.gatherSeconds = gatherSeconds
        self.failed = False
        self.health = ComponentHealth("search_indexer")
        self._retryDelay = retryDelay
        self._maxRetryDelay = maxRetryDelay
        self._fsync = fsync
        self._indexing = True
        self._top = 0
        self._indexed = 0
        # The writer does not wait while the index catches up with records
        # that were there before this start (a rebuild).
        self._catchUp = 0
        self._waiters: list[tuple[int, Deferred[None]]] = []
        self._opened = threading.Event()
        self._openError: BaseException | None = None

    @property
    def indexed(self) -> int:
        """
        The highest record id in the index.
        """
        return self._indexed

    @property
    def indexing(self) -> bool:
        return self._indexing

    @indexing.setter
    def indexing(self, value: bool) -> None:
        with self._cond:
            self._indexing = value
            self._cond.notify_all()

    def start(self, top: int) -> None:
        """
        Open (creating or checking) the search file and start filling it up
        to C{top}, the highest record id now.  Blocking: waits for the open.

        @raise sqlite3.Error: when the search file cannot be used.
        """
        self._top = self._catchUp = top
        self._startThread(self._run, "logsvc-sqlite-index")
        self._opened.wait()
        if self._openError is not None:
            self._done = None
            raise self._openError

    # On the writer thread

    def committed(self, top: int) -> None:
        """
        Records up to id C{top} are committed.
        """
        with self._cond:
            self._top = top
            self._cond.notify_all()

    def waitForLag(self) -> None:
        """
        Block while the index trails the committed records by C{maxLag} or
        more (unless indexing is paused, failed or stopping).
        """
        with self._cond:
            while (
                self._indexing
                and not self.failed
                and not self._stopping
                and self._indexed >= self._catchUp
                and self._top - self._indexed >= self.maxLag
            ):
                self._cond.wait()

    # On the reactor thread

    def whenIndexed(self) -> Deferred[None]:
        """
        @return: a Deferred firing once every record committed so far is in
            the index (at once when it failed).
        """
        d: Deferred[None] = Deferred()
        with self._cond:
            if self._indexed >= self._top or self.failed:
                d.callback(None)
            else:
                self._waiters.append((self._top, d))
                self._cond.notify_all()
        return d

    # The thread

    def _run(self) -> None:
        try:
            conn = connect(searchPath(self.path), fsync=self._fsync)
            conn.execute(f"PRAGMA cache_size={INDEXER_CACHE_KIB}")
            conn.execute("ATTACH DATABASE ? AS data", (uriFor(self.path, readonly=True),))
            self._indexed = createSearchSchema(conn, self._top)
        except BaseException as e:
            self._openError = e
            self._opened.set()
            return
        self._opened.set()
        self._serve(conn)

    def _loop(self, conn: sqlite3.Connection) -> None:
        cond = self._cond
        while True:
            with cond:
                self._fireWaiters()
                while not self._stopping and (not self._indexing or self._indexed >= self._top):
                    cond.wait()
                    self._fireWaiters()
                # Gather a larger transaction (INDEX_GATHER), unless someone
                # waits for the index (whenIndexed) or it is catching up.
                deadline = time.monotonic() + self.gatherSeconds
                while (
                    not self._stopping
                    and not self._waiters
                    and self._indexing
                    and self._indexed >= self._catchUp
                    and self._top - self._indexed < self.gather
                    and (left := deadline - time.monotonic()) > 0
                ):
                    cond.wait(left)
                if self._stopping:
                    return
                low = self._indexed
                high = min(self._top, low + INDEX_CHUNK)
            try:
                indexRange(conn, low, high)
            except sqlite3.Error as e:
                self.health.failed(e)
                delay = min(self._maxRetryDelay, self._retryDelay * 2 ** (self.health.consecutive - 1))
                self.log.error(
                    "search index update failed, retrying in {delay} s: {error}", error=e, delay=round(delay, 1)
                )
                with cond:
                    self.failed = True
                    cond.notify_all()
                    self._fireWaiters()
                    # Wait out the delay whatever commits notify meanwhile;
                    # a stop ends it.
                    deadline = time.monotonic() + delay
                    while not self._stopping and (left := deadline - time.monotonic()) > 0:
                        cond.wait(left)
                continue
            with cond:
                if self.failed:
                    self.log.info("search index updates work again")
                self.failed = False
                self._indexed = high
                cond.notify_all()
            self.health.succeeded()

    def _fireWaiters(self) -> None:
        # Called with the condition held.
        if not self._waiters:
            return
        ready = [d for target, d in self._waiters if target <= self._indexed or self.failed]
        if ready:
            self._waiters = [(t, d) for t, d in self._waiters if t > self._indexed and not self.failed]
            for d in ready:
                self._reactor.callFromThread(d.callback, None)
