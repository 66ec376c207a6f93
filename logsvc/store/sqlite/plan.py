"""
Queries translated to SQLite: the plan (records table, FTS5 index, the
un-indexed tail), pages, export rendered by SQLite, replay after an id,
histograms, top values and time ranges.  Every function runs on a reader
thread with a connection from L{logsvc.store.sqlite.connection}.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, replace
from typing import Any

from logsvc.pagesize import PAGE_BYTES, takeRows
from logsvc.query import Query, fieldNumber
from logsvc.record import LEVEL_NAMES, parseTimestamp
from logsvc.search_syntax import words
from logsvc.store.base import Row

_COLUMNS = "id, ts, received, level, source, service, message, fields"

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
    Rows are read one by one and the page ends by bytes too (L{takeRows}).
    """
    return takeRows(conn.execute(*pageSelect(conn, query, useIndex=useIndex)), query.limit)


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


def selectNDJSON(
    conn: sqlite3.Connection, query: Query, *, useIndex: bool = True, maxBytes: int = PAGE_BYTES
) -> tuple[bytes, int, tuple[int, int] | None]:
    """
    One page of an export: C{query}'s records (C{query.limit} of them at
    most, plus one to tell whether more follow) rendered and joined by
    SQLite in one statement.

    The page never exists as Python objects: SQLite reads, renders and
    joins it without the GIL, so two reader threads export on two cores
    and the reactor thread only writes the bytes.  (A row at a time, the
    Python side alone cost about as much as SQLite's.)

    The page is bounded in bytes too (L{PAGE_BYTES}): SQLite's length
    limit is lowered to it for the statement, so a page that would be
    larger fails at once and is read again a row at a time, cut by
    L{takeRows}'s rule.

    @return: the NDJSON bytes of up to C{query.limit} records, their count,
        and the C{(ts, id)} of the last one when more may follow (else
        L{None}).
    """
    sql, params = pageSelect(conn, query, useIndex=useIndex, columns=f"ts, id, {EXPORT_LINE} AS line", idsFirst=False)
    length = conn.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, min(length, maxBytes))
    try:
        # SQLite never flattens an ordered subquery into an aggregate query
        # (the flattener's rule 16), so group_concat sees the rows in order.
        body, count = conn.execute(
            f"SELECT CAST(group_concat(line, char(10)) || char(10) AS BLOB), count(*) FROM ({sql})", params
        ).fetchone()
    except sqlite3.DataError:
        # Larger than the budget ("string or blob too big").
        body = None
    finally:
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, length)
    if body is None:
        return _exportRows(conn, query, sql, params, maxBytes)
    if not count:
        return b"", 0, None
    if query.limit is None or count <= query.limit:
        return body, count, None
    # One record more than the page: drop it, and resume after the last kept.
    end = body.rindex(b"\n", 0, len(body) - 1) + 1
    start = body.rfind(b"\n", 0, end - 1) + 1
    return body[:end], count - 1, _exportedKey(body[start:end])


def _exportRows(
    conn: sqlite3.Connection, query: Query, sql: str, params: list[Any], maxBytes: int
) -> tuple[bytes, int, tuple[int, int] | None]:
    """
    L{selectNDJSON}'s page read a row at a time and cut by bytes: the rows
    before the one that would take the page past C{maxBytes} (a record
    bigger than the budget is exported alone).
    """
    lines: list[bytes] = []
    total = 0
    last: tuple[int, int] | None = None
    cursor = conn.execute(f"SELECT ts, id, CAST(line AS BLOB) FROM ({sql})", params)
    for ts, rowid, line in cursor:
        total += len(line) + 1
        if lines and (total > maxBytes or (query.limit is not None and len(lines) >= query.limit)):
            cursor.close()
            return b"".join(lines), len(lines), last
        lines.append(line + b"\n")
        last = (ts, rowid)
    return b"".join(lines), len(lines), None


def _exportedKey(line: bytes) -> tuple[int, int]:
    """
    @return: the C{(ts, id)} of a record from its L{EXPORT_LINE} text.
    """
    head, _, rest = line.partition(b',"ts":"')
    return parseTimestamp(rest[:27].decode("ascii")), int(head[len(b'{"id":') :])


def selectAfterId(conn: sqlite3.Connection, query: Query, lastId: int, limit: int, *, useIndex: bool = True) -> list[Row]:
    """
    @return: up to C{limit} of C{query}'s records with an id above
        C{lastId}, in id order (a tail's replay), ignoring its cursor; fewer
        when they pass L{PAGE_BYTES} (L{takeRows}).
    """
    plan = buildPlan(replace(query, cursor=None), (["id > ?"], [lastId]), useIndex=useIndex)
    sql = " UNION ALL ".join(f"SELECT {_COLUMNS} {part}" for part, _ in plan.parts)
    params = [p for _, ps in plan.parts for p in ps]
    return takeRows(conn.execute(sql + " ORDER BY id LIMIT ?", params + [limit]), limit - 1)


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

