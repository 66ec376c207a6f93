"""
The SQLite database itself: opening connections with logsvc's settings, the
schema and its version, the multi-row INSERT, and the SQL functions queries
call.  A leaf: every other module of the SQLite store imports it, it imports
none of them.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Callable
from itertools import chain
from typing import Any
from urllib.parse import quote

from logsvc.matcher import Predicate, compileMatcher, decodeFields, fieldMatches
from logsvc.record import Record
from logsvc.search_syntax import parseSearch
from logsvc.store import base
from logsvc.store.base import StoreError, WorkLimitExceeded
from logsvc.store.rollup import ROLLUPS, rollupKey

SCHEMA_VERSION = 7

#: Counts per day (SQLite's own, besides the shared tables of
#: L{logsvc.store.rollup}), for top values over days: the column each
#: counts by and the hour table they are summed from.  C{minute} is the
#: first minute of the (UTC) day.
DAY_ROLLUPS: dict[str, tuple[str, str]] = {
    "rollup_service_day": ("service", "rollup_service_hour"),
    "rollup_source_day": ("source", "rollup_source_hour"),
}

#: Minutes in a day.
DAY_MINUTES = 1440

#: C{floor(ts / MINUTE)} in SQL (SQLite's division truncates toward zero).
MINUTE_SQL = "(CASE WHEN {ts} >= 0 THEN {ts} / 60000000 ELSE -((59999999 - {ts}) / 60000000) END)"


def _bucketSQL(ts: str, minutes: int) -> str:
    minute = MINUTE_SQL.format(ts=ts)
    return minute if minutes == 1 else f"({minute} - (({minute} % {minutes}) + {minutes}) % {minutes})"


#: Every count table: the column it counts by and its bucket in minutes.
_ALL_ROLLUPS: dict[str, tuple[str | None, int]] = {
    **ROLLUPS, **{table: (column, DAY_MINUTES) for table, (column, _) in DAY_ROLLUPS.items()}
}

ROLLUP_SCHEMA = [
    *(
        f"CREATE TABLE IF NOT EXISTS {table} (minute INTEGER NOT NULL, level INTEGER NOT NULL,"
        + ("" if column is None else f" {column} TEXT NOT NULL,")
        + f" n INTEGER NOT NULL, PRIMARY KEY ({rollupKey(column)})) WITHOUT ROWID"
        for table, (column, _) in _ALL_ROLLUPS.items()
    ),
    "DROP TRIGGER IF EXISTS logs_rollup_delete",
    "CREATE TRIGGER logs_rollup_delete AFTER DELETE ON logs BEGIN"
    + "".join(
        f" UPDATE {table} SET n = n - 1 WHERE minute = {_bucketSQL('old.ts', minutes)} AND level = old.level"
        + ("" if column is None else f" AND {column} = old.{column}")
        + ";"
        for table, (column, minutes) in _ALL_ROLLUPS.items()
    )
    + " END",
]

#: Fill the counts per day from the counts per hour (a database of schema
#: version 6, and after L{BACKFILL}).
DAY_FILL = [
    *(f"DELETE FROM {table}" for table in DAY_ROLLUPS),
    *(
        f"INSERT INTO {table} SELECT minute - ((minute % {DAY_MINUTES}) + {DAY_MINUTES}) % {DAY_MINUTES}, level,"
        f" {column}, sum(n) FROM {hours} GROUP BY 1, 2, 3"
        for table, (column, hours) in DAY_ROLLUPS.items()
    ),
]

#: Fill the rollup from the records already stored (a database made before
#: it existed).
BACKFILL = [
    *(f"DELETE FROM {table}" for table in ROLLUPS),
    *(
        f"INSERT INTO {table} SELECT {_bucketSQL('ts', minutes)}, level,"
        + ("" if column is None else f" {column},")
        + f" count(*) FROM logs GROUP BY {'1, 2' if column is None else '1, 2, 3'}"
        for table, (column, minutes) in ROLLUPS.items()
    ),
]


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
    # (ts, level) covers histograms over a time range without row lookups.
    "CREATE INDEX IF NOT EXISTS logs_ts_level ON logs (ts, level)",
    "DROP INDEX IF EXISTS logs_ts",
    "CREATE INDEX IF NOT EXISTS logs_service_level_ts ON logs (service, level, ts)",
    # Histograms count each (level, time slot) as one range of this index.
    "CREATE INDEX IF NOT EXISTS logs_level_ts ON logs (level, ts)",
    # Version 3: the search index moved to a file of its own
    # (logsvc.store.sqlite.searchindex); version 2 kept it here.
    "DROP TRIGGER IF EXISTS logs_search_delete",
    "DROP TABLE IF EXISTS logs_search",
    "DROP TABLE IF EXISTS search_state",
    # Version 4: counts per minute (logsvc.store.sqlite.rollup); versions 5
    # and 6 added tables, so each fills the counts from the records again;
    # version 7 added the counts per day, summed from those per hour.
    *ROLLUP_SCHEMA,
]

INSERT_SQL = (
    "INSERT INTO logs (ts, received, level, source, service, message, fields)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


#: Most rows one INSERT statement carries: 4,096 rows of 7 parameters stay
#: within SQLite's default limit of 32,766 variables.
MAX_STATEMENT_ROWS = 4096

#: Fewest rows an INSERT statement is compiled for.
MIN_STATEMENT_ROWS = 16

#: The parameters of a row SQLite skips (C{OR IGNORE}: its C{ts} is NULL).
#: Only C{ts} is None: binding None (or bytes) makes Python's sqlite3 look
#: for an adapter, raising and formatting an AttributeError on the way,
#: about 0.3 us a parameter against 0.06 for an int and 0.1 for a str.
_PADDING_ROW = (None, 0, 0, "", "", "", "")

#: Most statements one chunk of records is split into (see
#: L{statementSizes}).
MAX_CHUNK_STATEMENTS = 3


@functools.cache
def _insertRowsSQL(rows: int) -> str:
    return "INSERT OR IGNORE" + INSERT_SQL[len("INSERT") :] + ", (?, ?, ?, ?, ?, ?, ?)" * (rows - 1)


def statementSizes(count: int, limit: int = MAX_STATEMENT_ROWS) -> list[int]:
    """
    The rows of each INSERT statement that stores C{count} records: full
    statements of C{limit} rows, then the rest in at most
    L{MAX_CHUNK_STATEMENTS} powers of two, largest first, the last padded
    up (to at least L{MIN_STATEMENT_ROWS}).

    So a connection compiles a few dozen statements at most, and pads
    little: 2,150 records take 2,048 + 128 rows, not one statement of 4,096
    (1,946 rows of padding, which cost the writer about 2 us per record
    stored, measured in the UDP benchmark's server).
    """
    sizes = [limit] * (count // limit)
    rest = count % limit
    for _ in range(MAX_CHUNK_STATEMENTS - 1):
        if rest <= MIN_STATEMENT_ROWS:
            break
        size = 1 << (rest.bit_length() - 1)
        sizes.append(size)
        rest -= size
    if rest:
        sizes.append(max(MIN_STATEMENT_ROWS, 1 << (rest - 1).bit_length()))
    return sizes


def insertRecords(conn: sqlite3.Connection, records: list[Record]) -> int:
    """
    Insert C{records} in order, in the current transaction, up to 4,096 rows
    to one multi-row C{INSERT ... VALUES} statement.

    Few statements matter more than their speed alone: every statement
    gives the GIL away while SQLite runs it and must win it back from the
    reactor thread, which under load keeps it for up to the switch interval.
    Row by row (C{executemany}) that wait dominates: measured, 184,000 rows/s
    alone and 249 rows/s beside a thread parsing lines (C{bench/bench_insert.py}).
    So each statement holds a power of two of rows (L{statementSizes}), the
    records and then padding rows whose C{ts} is NULL, which C{OR IGNORE}
    skips (ts is NOT NULL): the writer's connection compiles at most a few
    dozen statements and reuses them, and a transaction of up to 4,096
    records takes at most three (split into every power of two, a batch of
    3,960 took eight: 43,600 rows/s beside a parsing thread against 99,700
    padded).

    @return: the id of the last record inserted (ids are consecutive).
    @raise sqlite3.IntegrityError: when SQLite skipped a record (a NULL
        where the schema forbids one); roll the transaction back.
    """
    limit = min(MAX_STATEMENT_ROWS, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 7)
    limit = 1 << (limit.bit_length() - 1)
    cursor = conn.cursor()
    start = 0
    for size in statementSizes(len(records), limit):
        chunk = records[start : start + size]
        start += size
        params = list(chain.from_iterable(chunk))
        if size > len(chunk):
            params.extend(_PADDING_ROW * (size - len(chunk)))
        cursor.execute(_insertRowsSQL(size), params)
        if cursor.rowcount != len(chunk):
            raise sqlite3.IntegrityError(f"{len(chunk) - cursor.rowcount} records have a NULL the schema forbids")
    last = cursor.lastrowid
    assert last is not None
    return last


#: fsync policies: "normal" survives a process crash, "full" survives power loss.
FSYNC_MODES = {"normal": "NORMAL", "full": "FULL", "off": "OFF"}

#: C{sqlite3_config} verb that turns memory statistics on or off (sqlite3.h).
_SQLITE_CONFIG_MEMSTATUS = 9


def stopMemoryStatistics() -> bool:
    """
    Turn off SQLite's memory statistics in this process.

    With them on, as most builds ship, every allocation SQLite makes takes
    one process-wide mutex, so threads running statements at the same time
    (the writer, the search indexer, the readers) queue on it.  Measured
    (C{bench/bench_sqlite_threads.py}, export pages): two threads did less
    together than one alone (131,000 against 173,700 records/s); with
    statistics off, 500,500.  logsvc reads no SQLite memory statistics.

    SQLite is shut down and initialized again around the change, which is
    only allowed while no connection is open: call this at process start,
    before any store opens (C{twistd logsvc} does).

    @return: whether statistics are now off (False when the SQLite library
        cannot be reached or refused the change; SQLite works either way).
    """
    try:
        import _sqlite3
        import ctypes

        # The extension's own handle: dlsym finds the library it uses,
        # linked in or loaded beside it.
        library = ctypes.CDLL(_sqlite3.__file__)
        if library.sqlite3_shutdown() != 0:
            return False
        changed = library.sqlite3_config(_SQLITE_CONFIG_MEMSTATUS, ctypes.c_int(0)) == 0
        return library.sqlite3_initialize() == 0 and changed
    except (ImportError, OSError, AttributeError):
        return False


def uriFor(path: str, *, readonly: bool = False, immutable: bool = False) -> str:
    """
    @param immutable: read-only, and promise SQLite that nothing changes
        the file while it is open, so it needs no C{-shm} file (which a
        full disk cannot hold).
    @return: the C{file:} URI of C{path} (quoted: a "#", "?" or "%" in it
        would otherwise end or alter it), read-only or read-write-create.
    """
    if immutable:
        return f"file:{quote(path)}?mode=ro&immutable=1"
    return f"file:{quote(path)}" + ("?mode=ro" if readonly else "")


def connect(
    path: str, *, fsync: str = "normal", readonly: bool = False, immutable: bool = False
) -> sqlite3.Connection:
    """
    Open a connection with logsvc's settings (WAL, the fsync policy, autocommit
    mode so transactions are explicit, URIs in C{ATTACH}).  Blocking: call it
    off the reactor.

    @param immutable: see L{uriFor}; implies C{readonly}.
    """
    readonly = readonly or immutable
    conn = sqlite3.connect(
        uriFor(path, readonly=readonly, immutable=immutable), uri=True, isolation_level=None, check_same_thread=False
    )
    if not readonly:
        # Takes effect only on a new file, and only before WAL is set: lets
        # retention return freed pages (logsvc.retention).
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={FSYNC_MODES[fsync]}")
    # The writer's cache holds the hot index pages; readers lean on the OS cache.
    conn.execute("PRAGMA cache_size=-16384" if readonly else "PRAGMA cache_size=-65536")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA busy_timeout=10000")
    registerFunctions(conn)
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
    if 0 < version < 6:
        # Records stored before the rollup existed: count them once.
        for statement in BACKFILL:
            conn.execute(statement)
    if 0 < version < 7:
        # Version 7 added the counts per day, summed from those per hour.
        for statement in DAY_FILL:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    conn.execute("COMMIT")


_work = threading.local()


@functools.lru_cache(maxsize=256)
def _matcherOf(q: str) -> Predicate:
    # Keyed by the text (hashed once), not the tree (hashed whole per call):
    # SQLite calls logsvc_match once per row.
    return compileMatcher(parseSearch(q))


def _matchFunction(q: str, *row: Any) -> bool:
    remaining = getattr(_work, "remaining", None)
    if remaining is not None:
        if remaining <= 0:
            _work.exceeded = True
            raise WorkLimitExceeded(_work.limit)
        _work.remaining = remaining - 1
    return _matcherOf(q)(row)


def _fieldFunction(fields: str | None, key: str, expected: str) -> bool:
    return fieldMatches(decodeFields(fields), key, expected)


def registerFunctions(conn: sqlite3.Connection) -> None:
    """
    Give C{conn} the SQL functions logsvc's queries use:
    C{logsvc_match(q, id, ts, received, level, source, service, message,
    fields)} (the compiled matcher of C{q}, L{logsvc.matcher}; it counts
    against L{logsvc.store.base.WORK_LIMIT} inside L{withWorkLimit}) and
    C{logsvc_field(fields, key, value)} (L{fieldMatches}).
    """
    conn.create_function("logsvc_match", 9, _matchFunction, deterministic=True)
    conn.create_function("logsvc_field", 3, _fieldFunction, deterministic=True)


def withWorkLimit(conn: sqlite3.Connection, run: Callable[[], Any], limit: int | None = None) -> Any:
    """
    Run C{run()} (statements on C{conn}, on this thread) allowing the
    Python matcher C{limit} records (by default L{logsvc.store.base.WORK_LIMIT}).

    @raise WorkLimitExceeded: when the statements needed more.
    """
    if limit is None:
        limit = base.WORK_LIMIT
    _work.remaining = _work.limit = limit
    _work.exceeded = False
    try:
        return run()
    except sqlite3.OperationalError:
        if getattr(_work, "exceeded", False):
            raise WorkLimitExceeded(limit) from None
        raise
    finally:
        _work.remaining = None
