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
from logsvc.query import Query
from logsvc.record import LEVEL_NAMES, parseTimestamp
from logsvc.search_syntax import (
    EVERYTHING,
    And,
    Column,
    Field,
    Node,
    Not,
    Or,
    Text,
    conjunction,
    fieldNumber,
    words,
)
from logsvc.store.base import Row

_COLUMNS = "id, ts, received, level, source, service, message, fields"

#: The row as logsvc_match takes it.
_MATCH_CALL = "logsvc_match(?, id, ts, received, level, source, service, message, fields)"

#: Field keys SQLite's JSON path syntax takes as a quoted label.
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_.@:/ -]+$")

#: Most terms translated into SQL; a bigger query is narrowed by its
#: indexed terms and decided by the matcher (SQLite caps expression depth).
MAX_SQL_TERMS = 200

_SQL_OPS = {"=": "=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


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


#: A translation: SQL (C{"1"} when it narrows nothing), its parameters, and
#: whether it decides the node exactly (else it is a superset, which the
#: matcher confirms).
Translation = tuple[str, list[Any], bool]

_ANYTHING: Translation = ("1", [], False)


def _translateField(node: Field) -> Translation:
    key = node.key
    if node.op == "=":
        sql, params = _fieldCondition(key, node.value)
        return sql, params, True
    if _PLAIN_KEY.match(key) is None:
        return _ANYTHING
    path = '$."' + key + '"'
    if node.op == "exists":
        return "json_type(fields, ?) IS NOT NULL", [path], True
    if node.op == "prefix":
        return (
            "(json_type(fields, ?) IS 'text' AND substr(json_extract(fields, ?), 1, ?) = ?)",
            [path, path, len(node.value), node.value],
            True,
        )
    op = _SQL_OPS[node.op]
    if node.kind == "number":
        # Numbers are decided here; a string may read as a number, which
        # the matcher decides.
        return (
            f"(CASE json_type(fields, ?) WHEN 'integer' THEN json_extract(fields, ?) {op} ?"
            f" WHEN 'real' THEN json_extract(fields, ?) {op} ? WHEN 'text' THEN 1 ELSE 0 END)",
            [path, path, node.operand, path, node.operand],
            False,
        )
    if node.kind == "time":
        return "json_type(fields, ?) IS 'text'", [path], False
    # SQLite compares text by bytes: UTF-8 keeps code point order.
    return f"(json_type(fields, ?) IS 'text' AND json_extract(fields, ?) {op} ?)", [path, path, node.operand], True


def _translateColumn(node: Column) -> Translation:
    if node.op == "exists":
        return f"{node.name} != ''", [], True
    if node.op == "prefix":
        value = str(node.value)
        return f"substr({node.name}, 1, ?) = ?", [len(value), value], True
    return f"{node.name} {_SQL_OPS[node.op]} ?", [node.value], True


def translate(node: Node, budget: list[int] | None = None) -> Translation:
    """
    Translate a query tree into a SQL condition over C{logs}: exact where
    SQL can decide (columns, field terms by C{json_extract}), a superset
    where it can only narrow (comparisons of strings that may read as
    numbers or times), C{"1"} for what only the matcher or the index
    decides (text, regular expressions).  A negated superset narrows
    nothing, so it becomes C{"1"} too.

    @param budget: C{[terms]} left to translate (L{MAX_SQL_TERMS}); past
        it, the rest narrows nothing.
    """
    if budget is None:
        budget = [MAX_SQL_TERMS]
    if isinstance(node, And):
        parts: list[str] = []
        params: list[Any] = []
        exact = True
        for child in node.children:
            sql, p, childExact = translate(child, budget)
            exact = exact and childExact
            if sql != "1":
                parts.append(sql)
                params.extend(p)
        if not parts:
            return "1", [], exact
        return "(" + " AND ".join(parts) + ")", params, exact
    if isinstance(node, Or):
        parts, params, exact = [], [], True
        for child in node.children:
            sql, p, childExact = translate(child, budget)
            if sql == "1":
                return _ANYTHING
            parts.append(sql)
            params.extend(p)
            exact = exact and childExact
        return "(" + " OR ".join(parts) + ")", params, exact
    if isinstance(node, Not):
        sql, params, exact = translate(node.child, budget)
        if not exact or sql == "1":
            return _ANYTHING
        return f"NOT {sql}", params, True
    budget[0] -= 1
    if budget[0] < 0:
        return _ANYTHING
    if isinstance(node, Column):
        return _translateColumn(node)
    if isinstance(node, Field):
        sql, params, exact = _translateField(node)
        # A comparison with NULL (a number that is not one, a missing
        # key) is NULL, which NOT would keep NULL: make it false.
        return f"ifnull({sql}, 0)", params, exact
    return _ANYTHING  # Text, Regex


def _ftsWord(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def _ftsText(node: Text) -> str:
    parts = [_ftsWord(token) for token in node.tokens]
    if node.prefix:
        parts[-1] += " *"
    return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"


def _textExact(node: Node) -> bool:
    # A term the message index decides alone: one word (or prefix) over the
    # message and service; longer terms are phrases (the index, with
    # detail=none, has no positions).
    return isinstance(node, Text) and len(node.tokens) == 1 and not node.messageOnly


def _fieldFTS(node: Field) -> str | None:
    """
    @return: an FTS5 expression over the C{fields} column (the record's
        fields as JSON text) true for every record where the field term
        holds, or L{None} when the key has no word to look up.
    """
    keyWords = words(node.key)
    if not keyWords:
        return None
    parts = [" AND ".join(_ftsWord(w) for w in keyWords)]
    alternatives = []
    if node.op == "=":
        for text in {node.value, _canonicalNumber(node.value)}:
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


def ftsExpression(node: Node, table: str, budget: list[int] | None = None) -> str | None:
    """
    @param table: C{"logs_search"} (message and service words: text terms)
        or C{"logs_fields"} (field words: field terms).
    @return: an FTS5 query over C{table} true for every record C{node}
        matches (a superset), or L{None} when that index cannot narrow it.
        Every word is quoted, so no user text is ever FTS5 syntax.
    """
    if budget is None:
        budget = [MAX_SQL_TERMS]
    budget[0] -= 1
    if budget[0] < 0:
        return None
    if isinstance(node, Text):
        return _ftsText(node) if table == "logs_search" else None
    if isinstance(node, Field):
        return _fieldFTS(node) if table == "logs_fields" else None
    if isinstance(node, Or):
        alternatives = []
        for child in node.children:
            found = ftsExpression(child, table, budget)
            if found is None:
                return None
            alternatives.append(found)
        return "(" + " OR ".join(alternatives) + ")"
    if isinstance(node, And):
        positive = []
        negative = []
        for child in node.children:
            if isinstance(child, Not):
                if table == "logs_search" and _textExact(child.child):
                    assert isinstance(child.child, Text)
                    negative.append(_ftsText(child.child))
                continue
            found = ftsExpression(child, table, budget)
            if found is not None:
                positive.append(found)
        if not positive:
            return None
        # Exclusions ride on a positive term in FTS5 (NOT is binary).
        expression = "(" + " AND ".join(positive) + ")" if len(positive) > 1 else positive[0]
        for excluded in negative:
            expression += " NOT " + excluded
        return expression
    return None


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


def _indexDecides(node: Node) -> bool:
    """
    True when, as a conjunct of a query, the message index's FTS5 query
    (L{ftsExpression}) decides C{node} exactly: one word or prefix,
    an exclusion of one, or an OR of them.
    """
    if isinstance(node, Not):
        return _textExact(node.child)
    if isinstance(node, Or):
        return all(_textExact(c) for c in node.children)
    return _textExact(node)


def _searchNode(query: Query) -> Node:
    """
    @return: the part of C{query} that L{buildWhere} leaves out: its field
        filters and C{q}.
    """
    return conjunction([*(Field(k, "=", v) for k, v in query.fields), query.search])


def buildWhere(query: Query) -> tuple[list[str], list[Any]]:
    """
    Translate a query's plain filters (not C{q}, fields, cursor or order) to
    SQL conditions.

    @return: the conditions (to be joined with AND) and their parameters.
    """
    where: list[str] = []
    params: list[Any] = []
    for column, operator, values in query.columnTerms():
        if len(values) == 1:
            where.append(f"{column} {operator} ?")
        else:
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
    node = _searchNode(query)
    return ftsExpression(node, "logs_search"), ftsExpression(node, "logs_fields")


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

    The plain arguments become conditions on columns (L{buildWhere}); the
    field filters and C{q} are translated (L{translate}) into what SQL can
    decide or narrow, narrowed further by the search index
    (L{ftsExpression}), and what neither decides is confirmed row by row by
    the compiled matcher (C{logsvc_match}, bounded by L{WORK_LIMIT}).

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
    node = _searchNode(query)
    if node == EVERYTHING:
        return Plan([(_fromWhere("logs", where), params)], False)
    sql, sqlParams, exact = translate(node)
    check = [] if sql == "1" else [sql]
    verify = [] if exact else [_MATCH_CALL]
    verifyParams: list[Any] = [] if exact else [query.q]
    match = hitsSelect(query) if useIndex else None
    if match is None:
        return Plan([(_fromWhere("logs", where + check + verify), params + sqlParams + verifyParams)], False)
    # In the index's part, the terms its FTS5 query decides need no check.
    conjuncts = node.children if isinstance(node, And) else (node,)
    if ftsExpression(node, "logs_search") is not None:
        conjuncts = tuple(c for c in conjuncts if not _indexDecides(c))
    hitsSQL, hitsSQLParams, hitsExact = translate(conjunction(conjuncts)) if conjuncts else ("1", [], True)
    hitsCheck = ([] if hitsSQL == "1" else [hitsSQL]) + ([] if hitsExact else [_MATCH_CALL])
    hitsCheckParams = hitsSQLParams + ([] if hitsExact else [query.q])
    matchSQL, matchParams = match
    if filterHits:
        # "+id" keeps SQLite from driving the scan by the hits' ids.
        hits = (
            _fromWhere("logs", [f"+id IN ({matchSQL})"] + where + hitsCheck),
            matchParams + params + hitsCheckParams,
        )
    else:
        hits = (
            _fromWhere(f"({matchSQL}) CROSS JOIN logs ON logs.id = hit", where + hitsCheck),
            matchParams + params + hitsCheckParams,
        )
    tail = (
        _fromWhere(
            # The un-indexed tail is a range of ids: NOT INDEXED keeps the
            # planner on that range instead of scanning a time index.
            "logs NOT INDEXED",
            ["id > (SELECT indexed FROM search_state)"] + where + check + verify,
        ),
        params + sqlParams + verifyParams,
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
    record (for a word in a good share of all records, or field terms with
    more than L{SPARSE_HITS} hits).
    """
    match = hitsSelect(query) if query.limit is not None else None
    if match is None:
        return "hits"
    counted = 0
    sql, params = match
    # Field terms and comparisons are decided (or narrowed) in SQL, in C,
    # record by record: past a few thousand hits a scan in time order finds
    # a page sooner than collecting the hits.  Text needs the index longer.
    fieldsOnly = ftsExpression(_searchNode(query), "logs_search") is None
    for bound, strategy in ((SPARSE_HITS, "hits"), (DENSE_HITS, "filter")):
        (counted,) = conn.execute(f"SELECT count(*) FROM ({sql} LIMIT ?)", [*params, bound]).fetchone()
        if counted < bound:
            return strategy
        if fieldsOnly:
            break
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
        # Only the slots the range touches (an edge of a long histogram is
        # one slot, however far from the origin).
        firstSlot = (query.since - origin) // width
        slots = -(-(query.until - origin) // width)
        if (slots - firstSlot) * len(levels) <= HISTOGRAM_RANGES:
            # One index range per (level, slot), counted without sorting:
            # a GROUP BY of every row through a temporary B-tree is far slower.
            # The slot's bounds (clipped to since/until) must be the only ones
            # on ts, or SQLite ranges over since..until for every slot.
            part, params = buildPlan(replace(query, since=None, until=None), useIndex=useIndex).parts[0]
            joiner = " AND " if " WHERE " in part else " WHERE "
            sql = f"SELECT count(*) {part}{joiner}level = ? AND ts >= ? AND ts < ?"
            for level in levels:
                for slot in range(firstSlot, slots):
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

