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

import functools
import queue
import re
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import chain
from typing import Any
from urllib.parse import quote

import orjson
from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorFromThreads, IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from logsvc.health import ComponentHealth
from logsvc.query import Query, fieldMatches, fieldNumber
from logsvc.record import LEVEL_NAMES, Record, parseTimestamp
from logsvc.search_syntax import parseSearch, words
from logsvc.store.base import IStore, Row, StoreError
from logsvc.store.checkpointer import FALLBACK_PAGES, WalCheckpointer
from logsvc.store.searchindex import MAX_INDEX_LAG, SearchIndexer, attachSearch, searchPath

SCHEMA_VERSION = 3

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
    # (logsvc.store.searchindex); version 2 kept it here.
    "DROP TRIGGER IF EXISTS logs_search_delete",
    "DROP TABLE IF EXISTS logs_search",
    "DROP TABLE IF EXISTS search_state",
]

INSERT_SQL = (
    "INSERT INTO logs (ts, received, level, source, service, message, fields)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)

_COLUMNS = "id, ts, received, level, source, service, message, fields"

#: Most rows one INSERT statement carries: 4,096 rows of 7 parameters stay
#: within SQLite's default limit of 32,766 variables.
MAX_STATEMENT_ROWS = 4096

#: Fewest rows an INSERT statement is compiled for.
MIN_STATEMENT_ROWS = 16

#: The parameters of a row SQLite skips (C{OR IGNORE}: its C{ts} is NULL).
_PADDING_ROW = (None,) * 7


@functools.cache
def _insertRowsSQL(rows: int) -> str:
    return "INSERT OR IGNORE" + INSERT_SQL[len("INSERT") :] + ", (?, ?, ?, ?, ?, ?, ?)" * (rows - 1)


def insertRecords(conn: sqlite3.Connection, records: list[Record]) -> int:
    """
    Insert C{records} in order, in the current transaction, up to 4,096 rows
    to one multi-row C{INSERT ... VALUES} statement.

    Few statements matter more than their speed alone: every statement
    gives the GIL away while SQLite runs it and must win it back from the
    reactor thread, which under load keeps it for up to the switch interval.
    Row by row (C{executemany}) that wait dominates: measured, 184,000 rows/s
    alone and 249 rows/s beside a thread parsing lines (C{bench/bench_insert.py}).
    So each statement holds a power of two of rows, the records and then
    padding rows of NULLs, which C{OR IGNORE} skips (ts is NOT NULL): the
    writer's connection compiles at most a dozen statements and reuses them,
    and a transaction of up to 4,096 records is one statement (split into
    powers of two, a batch of 3,960 took eight: 43,600 rows/s beside a
    parsing thread against 99,700 padded).

    @return: the id of the last record inserted (ids are consecutive).
    @raise sqlite3.IntegrityError: when SQLite skipped a record (a NULL
        where the schema forbids one); roll the transaction back.
    """
    limit = min(MAX_STATEMENT_ROWS, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 7)
    limit = 1 << (limit.bit_length() - 1)
    cursor = conn.cursor()
    for start in range(0, len(records), limit):
        chunk = records[start : start + limit]
        size = min(limit, max(MIN_STATEMENT_ROWS, 1 << (len(chunk) - 1).bit_length()))
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

#: Most records one transaction takes; more waits for the next.
MAX_TRANSACTION_RECORDS = 50_000

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


def uriFor(path: str, *, readonly: bool = False) -> str:
    """
    @return: the C{file:} URI of C{path} (quoted: a "#", "?" or "%" in it
        would otherwise end or alter it), read-only or read-write-create.
    """
    return f"file:{quote(path)}" + ("?mode=ro" if readonly else "")


def connect(path: str, *, fsync: str = "normal", readonly: bool = False) -> sqlite3.Connection:
    """
    Open a connection with logsvc's settings (WAL, the fsync policy, autocommit
    mode so transactions are explicit, URIs in C{ATTACH}).  Blocking: call it
    off the reactor.
    """
    conn = sqlite3.connect(
        uriFor(path, readonly=readonly), uri=True, isolation_level=None, check_same_thread=False
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
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    conn.execute("COMMIT")


def _escapeLike(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _matchFunction(q: str, message: str, service: str) -> bool:
    return parseSearch(q).matches(message, service)


def _fieldFunction(fields: str | None, key: str, expected: str) -> bool:
    if not fields:
        return False
    try:
        decoded = orjson.loads(fields)
    except orjson.JSONDecodeError:
        return False
    return isinstance(decoded, dict) and fieldMatches(decoded, key, expected)


def registerFunctions(conn: sqlite3.Connection) -> None:
    """
    Give C{conn} the SQL functions logsvc's queries use:
    C{logsvc_match(q, message, service)} (L{Search.matches}) and
    C{logsvc_field(fields, key, value)} (L{fieldMatches}).
    """
    conn.create_function("logsvc_match", 3, _matchFunction, deterministic=True)
    conn.create_function("logsvc_field", 3, _fieldFunction, deterministic=True)


#: Field keys SQLite's JSON path syntax takes as a quoted label.
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_.@:/ -]+$")


def _fieldCondition(key: str, expected: str) -> tuple[str, list[Any]]:
    """
    @return: SQL (and parameters) true exactly when L{fieldMatches}.
    """
    if _PLAIN_KEY.match(key) is None:
        # SQLite's JSON paths cannot quote every character; decode in Python.
        return "logsvc_field(fields, ?, ?)", [key, expected]
    path = '$."' + key + '"'
    number = fieldNumber(expected)
    sql = (
        "(CASE json_type(fields, ?) WHEN 'text' THEN json_extract(fields, ?) = ?"
        " WHEN 'integer' THEN json_extract(fields, ?) = ?"
        " WHEN 'real' THEN json_extract(fields, ?) = ?"
        " WHEN 'true' THEN ? = 'true' WHEN 'false' THEN ? = 'false'"
        " WHEN 'null' THEN ? = 'null' ELSE 0 END)"
    )
    return sql, [path, path, expected, path, number, path, number, expected, expected, expected]


def _fieldFTS(key: str, expected: str) -> str | None:
    """
    @return: an FTS5 expression over the C{fields} column (the record's
        fields as JSON text) true for every record where L{fieldMatches},
        or L{None} when the key has no word to look up.
    """
    keyWords = words(key)
    if not keyWords:
        return None
    parts = [" AND ".join(_ftsWord(w) for w in keyWords)]
    alternatives = []
    for text in {expected, _canonicalNumber(expected)}:
        if text is None:
            continue
        valueWords = words(text)
        if valueWords:
            alternatives.append("(" + " AND ".join(_ftsWord(w) for w in valueWords) + ")")
        else:
            alternatives = []
            break
    if alternatives:
        parts.append("(" + " OR ".join(alternatives) + ")")
    return "(" + " AND ".join(parts) + ")"


def _canonicalNumber(expected: str) -> str | None:
    # How orjson writes the number a field holds when it equals expected;
    # None when that spelling is not certain (non-integral floats).
    number = fieldNumber(expected)
    if number is None:
        return None
    if isinstance(number, int):
        return str(number)
    if number.is_integer() and abs(number) < 1e16:
        return None if str(int(number)) == expected else str(int(number))
    return None


def _ftsWord(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def buildWhere(query: Query) -> tuple[list[str], list[Any]]:
    """
    Translate a query's plain filters (not C{q}, fields, cursor or order) to
    SQL conditions.

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
    return where, params


def _cursorCondition(query: Query) -> tuple[list[str], list[Any]]:
    if query.cursor is None:
        return [], []
    ts, rowid = query.cursor
    # The plain bound on ts lets SQLite start the index range at the cursor;
    # the row value alone makes it scan from the start of the range.
    if query.order == "desc":
        return (["ts <= ?", "(ts, id) < (?, ?)"], [ts, ts, rowid])
    return (["ts >= ?", "(ts, id) > (?, ?)"], [ts, ts, rowid])


@dataclass
class Plan:
    """
    How to find a query's records: one or two C{FROM ... WHERE ...} parts,
    whose rows together are the matches (no row in both).

    @ivar parts: C{(sql, params)}; C{sql} starts with C{FROM}.
    @ivar indexed: True when the first part looks matches up in the FTS5
        index (the second then scans the records not yet indexed).
    """

    parts: list[tuple[str, list[Any]]]
    indexed: bool


def ftsMatch(query: Query) -> tuple[str | None, str | None]:
    """
    @return: the FTS5 queries over the message index (C{logs_search}) and
        the fields index (C{logs_fields}) narrowing C{query}'s C{q} and field
        filters to a superset of its matches; L{None} for an index that
        cannot narrow it.
    """
    expressions = [e for e in (_fieldFTS(key, expected) for key, expected in query.fields) if e is not None]
    return query.search.ftsQuery(), " AND ".join(expressions) if expressions else None


def hitsSelect(query: Query) -> tuple[str, list[Any]] | None:
    """
    @return: a SELECT of the ids (as C{hit}) the search index names for
        C{query} (a superset of its indexed matches) and its parameters, or
        L{None} when the index cannot narrow C{query}.
    """
    text, fields = ftsMatch(query)
    if fields is None:
        if text is None:
            return None
        return "SELECT rowid AS hit FROM logs_search WHERE logs_search MATCH ?", [text]
    if text is None:
        return "SELECT rowid AS hit FROM logs_fields WHERE logs_fields MATCH ?", [fields]
    return (
        "SELECT rowid AS hit FROM logs_search WHERE logs_search MATCH ?"
        " AND rowid IN (SELECT rowid FROM logs_fields WHERE logs_fields MATCH ?)",
        [text, fields],
    )


def buildPlan(
    query: Query,
    extra: tuple[list[str], list[Any]] = ([], []),
    *,
    useIndex: bool = True,
    filterHits: bool = False,
) -> Plan:
    """
    Plan C{query}'s filters (with C{extra} conditions, e.g. a cursor).

    Without C{q} or field filters, one part over C{logs}.  Otherwise, when
    C{useIndex} and the FTS5 index can narrow the search, two parts: the
    records the index names (C{id <= indexed}) and the un-indexed tail
    (C{id > indexed}) checked row by row, so queries see the newest records
    while the index trails ingest; else one part checked row by row.

    @param filterHits: read the indexed part in the planner's order (a time
        index, for a page) and keep the records among the index's hits,
        rather than starting from the hits: faster when they are many.
    """
    where, params = buildWhere(query)
    where += extra[0]
    params += extra[1]
    search = query.search
    check: list[str] = []
    checkParams: list[Any] = []
    for key, expected in query.fields:
        sql, p = _fieldCondition(key, expected)
        check.append(sql)
        checkParams.extend(p)
    if search.empty and not query.fields:
        return Plan([(_fromWhere("logs", where), params)], False)
    match = hitsSelect(query) if useIndex else None
    exact = [] if search.empty else ["logsvc_match(?, message, service)"]
    exactParams: list[Any] = [] if search.empty else [query.q]
    if match is None:
        return Plan([(_fromWhere("logs", where + check + exact), params + checkParams + exactParams)], False)
    # The index decides q alone when q's terms are single words and at least
    # one is positive (exclusions ride on a positive term in FTS5).
    decided = search.exactInIndex and search.ftsQuery() is not None
    verify = [] if decided else exact
    verifyParams = [] if decided else exactParams
    hitsSQL, hitsParams = match
    if filterHits:
        # "+id" keeps SQLite from driving the scan by the hits' ids.
        hits = (
            _fromWhere("logs", [f"+id IN ({hitsSQL})"] + where + check + verify),
            hitsParams + params + checkParams + verifyParams,
        )
    else:
        hits = (
            _fromWhere(f"({hitsSQL}) CROSS JOIN logs ON logs.id = hit", where + check + verify),
            hitsParams + params + checkParams + verifyParams,
        )
    tail = (
        _fromWhere(
            # The un-indexed tail is a range of ids: NOT INDEXED keeps the
            # planner on that range instead of scanning a time index.
            "logs NOT INDEXED",
            ["id > (SELECT indexed FROM search_state)"] + where + check + exact,
        ),
        params + checkParams + exactParams,
    )
    return Plan([hits, tail], True)


def _fromWhere(source: str, where: list[str]) -> str:
    sql = "FROM " + source
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql


#: A page query probes the index for hits: fewer than SPARSE_HITS are read
#: from the index; up to DENSE_HITS, records are read in time order keeping
#: the hits; more (a word in a good share of all records) scan in time order
#: checking each record, which finds a page sooner than collecting the hits.
SPARSE_HITS = 3_000
DENSE_HITS = 200_000


def buildSelect(
    query: Query,
    *,
    useIndex: bool = True,
    filterHits: bool = False,
    columns: str = _COLUMNS,
    idsFirst: bool = True,
) -> tuple[str, list[Any]]:
    """
    @param columns: the SELECT list; it must name C{ts} and C{id}.
    @param idsFirst: pick a limited page's ids before reading its rows
        (best for small pages); else read rows in order up to the limit
        (best for export's large pages, which the extra sort would slow).
    @return: the SELECT for one page of C{query} (C{limit + 1} rows, or all
        when it has no limit) and its parameters.
    """
    plan = buildPlan(query, _cursorCondition(query), useIndex=useIndex, filterHits=filterHits)
    direction = "DESC" if query.order == "desc" else "ASC"
    order = f" ORDER BY ts {direction}, id {direction}"
    if idsFirst and len(plan.parts) == 1 and query.limit is not None:
        # Pick a page's ids first: when an index covers the filters the sort
        # runs on index entries alone, and only the page's rows are read.
        part, params = plan.parts[0]
        inner = f"SELECT id {part}{order} LIMIT ?"
        sql = f"SELECT {columns} FROM logs WHERE id IN ({inner}){order}"
        return sql, [*params, query.limit + 1]
    sql = " UNION ALL ".join(f"SELECT {columns} {part}" for part, _ in plan.parts)
    params = [p for _, ps in plan.parts for p in ps]
    sql += order
    if query.limit is not None:
        sql += " LIMIT ?"
        params.append(query.limit + 1)
    return sql, params


def _rfc3339(column: str) -> str:
    # The same text as logsvc.record.formatMicros, for ts in its range.
    return (
        f"strftime('%Y-%m-%dT%H:%M:%S', {column} / 1000000, 'unixepoch')"
        f" || printf('.%06dZ', {column} % 1000000)"
    )


#: A record rendered by SQLite as the API's JSON object: the same keys and
#: values as L{logsvc.record.renderRow}, on one line.
EXPORT_LINE = (
    "'{\"id\":' || id || ',\"ts\":\"' || " + _rfc3339("ts") + " || '\",\"received\":\"' || " + _rfc3339("received")
    + " || '\",\"level\":\"' || CASE level "
    + " ".join(f"WHEN {n} THEN '{name}'" for n, name in enumerate(LEVEL_NAMES))
    + " END || '\",\"source\":' || json_quote(source) || ',\"service\":' || json_quote(service)"
    " || ',\"message\":' || json_quote(message) || ',\"fields\":' || ifnull(fields, '{}') || '}'"
)


def selectPage(conn: sqlite3.Connection, query: Query, *, useIndex: bool = True) -> list[Row]:
    """
    Run one page of C{query} on C{conn} (a reader thread).  A page of a
    common word scans in time order instead of collecting every index hit.
    """
    return conn.execute(*pageSelect(conn, query, useIndex=useIndex)).fetchall()


def pageSelect(
    conn: sqlite3.Connection,
    query: Query,
    *,
    useIndex: bool = True,
    columns: str = _COLUMNS,
    idsFirst: bool = True,
) -> tuple[str, list[Any]]:
    """
    @return: L{buildSelect}'s SELECT for one page of C{query}, with the
        strategy L{_strategy} picks on C{conn}.
    """
    strategy = _strategy(conn, query) if useIndex else "scan"
    return buildSelect(
        query, useIndex=strategy != "scan", filterHits=strategy == "filter", columns=columns, idsFirst=idsFirst
    )


def _strategy(conn: sqlite3.Connection, query: Query) -> str:
    """
    How to read one page: C{"hits"} from few index hits, C{"filter"} in
    time order keeping index hits, or C{"scan"} in time order checking each
    record (for a word in a good share of all records).
    """
    match = hitsSelect(query) if query.limit is not None else None
    if match is None:
        return "hits"
    counted = 0
    sql, params = match
    for bound, strategy in ((SPARSE_HITS, "hits"), (DENSE_HITS, "filter")):
        (counted,) = conn.execute(f"SELECT count(*) FROM ({sql} LIMIT ?)", [*params, bound]).fetchone()
        if counted < bound:
            return strategy
    return "scan"


def selectNDJSON(conn: sqlite3.Connection, query: Query, *, useIndex: bool = True) -> tuple[bytes, int, tuple[int, int] | None]:
    """
    One page of an export: C{query}'s records (C{query.limit} of them at
    most, plus one to tell whether more follow) rendered and joined by
    SQLite in one statement.

    The page never exists as Python objects: SQLite reads, renders and
    joins it without the GIL, so two reader threads export on two cores
    and the reactor thread only writes the bytes.  (A row at a time, the
    Python side alone cost about as much as SQLite's.)

    @return: the NDJSON bytes of up to C{query.limit} records, their count,
        and the C{(ts, id)} of the last one when more may follow (else
        L{None}).
    """
    sql, params = pageSelect(conn, query, useIndex=useIndex, columns=f"ts, id, {EXPORT_LINE} AS line", idsFirst=False)
    # SQLite never flattens an ordered subquery into an aggregate query
    # (the flattener's rule 16), so group_concat sees the rows in order.
    body, count = conn.execute(
        f"SELECT CAST(group_concat(line, char(10)) || char(10) AS BLOB), count(*) FROM ({sql})", params
    ).fetchone()
    if not count:
        return b"", 0, None
    if query.limit is None or count <= query.limit:
        return body, count, None
    # One record more than the page: drop it, and resume after the last kept.
    end = body.rindex(b"\n", 0, len(body) - 1) + 1
    start = body.rfind(b"\n", 0, end - 1) + 1
    return body[:end], count - 1, _exportedKey(body[start:end])


def _exportedKey(line: bytes) -> tuple[int, int]:
    """
    @return: the C{(ts, id)} of a record from its L{EXPORT_LINE} text.
    """
    head, _, rest = line.partition(b',"ts":"')
    return parseTimestamp(rest[:27].decode("ascii")), int(head[len(b'{"id":') :])


def selectAfterId(conn: sqlite3.Connection, query: Query, lastId: int, limit: int, *, useIndex: bool = True) -> list[Row]:
    """
    @return: up to C{limit} of C{query}'s records with an id above
        C{lastId}, in id order (a tail's replay), ignoring its cursor.
    """
    plan = buildPlan(replace(query, cursor=None), (["id > ?"], [lastId]), useIndex=useIndex)
    sql = " UNION ALL ".join(f"SELECT {_COLUMNS} {part}" for part, _ in plan.parts)
    params = [p for _, ps in plan.parts for p in ps]
    return conn.execute(sql + " ORDER BY id LIMIT ?", params + [limit]).fetchall()


#: Most (level, slot) ranges a histogram counts one by one.
HISTOGRAM_RANGES = 4000


def selectHistogram(
    conn: sqlite3.Connection, query: Query, origin: int, width: int, *, useIndex: bool = True
) -> dict[tuple[int, int], int]:
    """
    Count C{query}'s records by slot and level; slot C{n} holds times in
    C{[origin + n * width, origin + (n + 1) * width)}.  C{query.since} must
    not be before C{origin}.

    @return: C{{(slot, level): count}}.
    """
    counts: dict[tuple[int, int], int] = {}
    plan = buildPlan(query, useIndex=useIndex)
    if not plan.indexed and len(plan.parts) == 1 and query.since is not None and query.until is not None:
        levels = range(0, (7 if query.level is None else query.level) + 1)
        slots = -(-(query.until - origin) // width)
        if slots * len(levels) <= HISTOGRAM_RANGES:
            # One index range per (level, slot), counted without sorting:
            # a GROUP BY of every row through a temporary B-tree is far slower.
            # The slot's bounds (clipped to since/until) must be the only ones
            # on ts, or SQLite ranges over since..until for every slot.
            part, params = buildPlan(replace(query, since=None, until=None), useIndex=useIndex).parts[0]
            joiner = " AND " if " WHERE " in part else " WHERE "
            sql = f"SELECT count(*) {part}{joiner}level = ? AND ts >= ? AND ts < ?"
            for level in levels:
                for slot in range(slots):
                    start = max(origin + slot * width, query.since)
                    end = min(origin + (slot + 1) * width, query.until)
                    (n,) = conn.execute(sql, [*params, level, start, end]).fetchone()
                    if n:
                        counts[slot, level] = n
            return counts
    for part, params in plan.parts:
        sql = f"SELECT (ts - ?) / ?, level, count(*) {part} GROUP BY 1, 2"
        for slot, level, n in conn.execute(sql, [origin, width, *params]):
            counts[slot, level] = counts.get((slot, level), 0) + n
    return counts


def selectTop(conn: sqlite3.Connection, query: Query, column: str, *, useIndex: bool = True) -> dict[Any, int]:
    """
    @param column: C{"service"}, C{"source"} or C{"level"}.
    @return: C{{value: count}} over C{query}'s records.
    """
    if column not in ("service", "source", "level"):
        raise ValueError(column)
    counts: dict[Any, int] = {}
    for part, params in buildPlan(query, useIndex=useIndex).parts:
        for value, n in conn.execute(f"SELECT {column}, count(*) {part} GROUP BY 1", params):
            counts[value] = counts.get(value, 0) + n
    return counts


def selectTimeRange(conn: sqlite3.Connection, query: Query, *, useIndex: bool = True) -> tuple[int, int] | None:
    """
    @return: the earliest and latest C{ts} of C{query}'s records, or L{None}
        when none match.
    """
    low: int | None = None
    high: int | None = None
    for part, params in buildPlan(query, useIndex=useIndex).parts:
        a, b = conn.execute(f"SELECT min(ts), max(ts) {part}", params).fetchone()
        if a is not None:
            low = a if low is None else min(low, a)
            high = b if high is None else max(high, b)
    return None if low is None or high is None else (low, high)


_STOP = object()


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
        readers: int = 3,
        searchIndex: bool = True,
        maxIndexLag: int = MAX_INDEX_LAG,
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
        self.searchIndex = searchIndex
        self._indexer = (
            SearchIndexer(path, reactor=self._reactor, fsync=fsync, maxLag=maxIndexLag) if searchIndex else None
        )
        self._checkpointer = WalCheckpointer(path, reactor=self._reactor, fsync=fsync)
        #: Highest committed id, owned by the writer.
        self._top = 0

    def components(self) -> list[ComponentHealth]:
        """
        @return: the health of the store's helper threads (the search
            indexer, when kept, and the WAL checkpointer).
        """
        found = [self._checkpointer.health]
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
        search file on the indexer's; raises L{StoreError} here, at start,
        when a file cannot be used.
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
        if self._indexer is not None:
            try:
                self._indexer.start(self._top)
            except BaseException as e:
                self.running = 0
                self._jobs.put(_STOP)
                raise StoreError(f"cannot open {searchPath(self.path)}: {e}") from e
            # The first job, before any append: the writer takes indexed
            # records out of the index when it deletes them (retention).
            self.callInWriter(lambda conn: attachSearch(conn, self.path, readonly=False))
        # Last: a start that failed above leaves no thread behind.
        self._checkpointer.start()
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

        def stopHelpers(_: None) -> Deferred[None]:
            helpers = [self._checkpointer.stop()]
            if self._indexer is not None:
                helpers.append(self._indexer.stop())
            return gatherResults(helpers).addCallback(lambda _: self._pool.stop())

        return done.addCallback(stopHelpers)

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
        The search file is attached to the connection (as C{search}), so
        records C{f} deletes leave the search index too.

        @return: a Deferred firing with its result.
        """
        d: Deferred[Any] = Deferred()
        self._jobs.put((f, d))
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
        jobs = self._jobs
        indexer = self._indexer
        stopping = False
        while not stopping:
            if indexer is not None:
                indexer.waitForLag()
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
            # Not IMMEDIATE: that would lock the attached search file too.
            # This thread is the records file's only writer, so the
            # deferred lock is never refused.
            conn.execute("BEGIN")
            records = batch[0][0] if len(batch) == 1 else [r for rs, _ in batch for r in rs]
            last = insertRecords(conn, records)
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

    def _readConnection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, fsync=self._fsync, readonly=True)
            if self._indexer is not None:
                attachSearch(conn, self.path, readonly=True)
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
        return self.read(lambda conn: selectPage(conn, query, useIndex=self.searchIndex))

    def exportPage(self, query: Query) -> Deferred[tuple[bytes, int, tuple[int, int] | None]]:
        """
        See L{IStore.exportPage}.
        """
        return self.read(lambda conn: selectNDJSON(conn, query, useIndex=self.searchIndex))

    def afterId(self, query: Query, lastId: int, limit: int) -> Deferred[list[Row]]:
        """
        See L{IStore.afterId}.
        """
        return self.read(lambda conn: selectAfterId(conn, query, lastId, limit, useIndex=self.searchIndex))

    def histogram(self, query: Query, origin: int, width: int) -> Deferred[dict[tuple[int, int], int]]:
        """
        See L{IStore.histogram}.
        """
        return self.read(lambda conn: selectHistogram(conn, query, origin, width, useIndex=self.searchIndex))

    def top(self, query: Query, column: str) -> Deferred[dict[Any, int]]:
        """
        See L{IStore.top}.
        """
        return self.read(lambda conn: selectTop(conn, query, column, useIndex=self.searchIndex))

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


def _fireAll(results: list[tuple[Deferred[int], int]]) -> None:
    for d, first in results:
        d.callback(first)
