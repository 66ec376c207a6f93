# -*- test-case-name: tests.test_store_postgres -*-
"""
Queries translated to PostgreSQL: pages (keyset on C{(ts, id)}), replay
after an id, export, histograms, top values and time ranges.  Every function
runs on a reader thread with a connection of its own; rows are read through
server-side cursors a bounded number at a time, so no result is ever held
whole.

Records with a search vector are decided by SQL alone when C{q} is text
only (words, phrases, prefixes, AND, OR, exclusions); the rare record
without one (see L{logsvc.store.postgres.search}) is read as a candidate and
decided by the matcher (L{Query.matches}).  A C{q} with other terms (field
terms, comparisons, regular expressions) is decided by the matcher over the
records the other filters select, narrowed in SQL by the terms C{q} ANDs at
its top that an index or a column can test (L{narrowing}).  Either way the matcher
checks at most L{logsvc.store.base.WORK_LIMIT} candidates per read, as on
SQLite; past it the read fails with L{WorkLimitExceeded}.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import orjson
import psycopg

from logsvc.matcher import cachedMatcher
from logsvc.pagesize import pageCut, takeRows
from logsvc.query import Query, fieldNumber
from logsvc.record import renderRow
from logsvc.search_syntax import EVERYTHING, And, Column, Field, Node
from logsvc.store import base
from logsvc.store.base import Row, WorkLimitExceeded
from logsvc.store.postgres.search import isTextOnly, queryText

COLUMNS = "id, ts, received, level, source, service, message, fields"

#: Rows fetched from a server-side cursor at a time (with L{PAGE_BYTES},
#: what bounds a read's memory).
FETCH = 256


def buildWhere(query: Query) -> tuple[list[str], list[Any]]:
    """
    Translate a query's filters other than C{q} (time, level, source,
    service, fields) to SQL conditions.

    @return: the conditions (to be joined with AND) and their parameters.
    """
    where: list[str] = []
    params: list[Any] = []
    for column, operator, values in query.columnTerms():
        if len(values) == 1:
            where.append(f"{column} {operator} %s")
            params.append(values[0])
        else:
            where.append(f"{column} = ANY(%s)")
            params.append(list(values))
    for key, expected in query.fields:
        _fieldCondition(key, expected, where, params)
    return where, params


def _fieldCondition(key: str, expected: str, where: list[str], params: list[Any]) -> None:
    """
    Add to C{where} and C{params} the conditions true exactly when
    L{logsvc.query.fieldMatches} (C{field.KEY=value}, a field term
    C{KEY:value}).
    """
    number = fieldNumber(expected)
    # The fields index narrows (containment of each value the filter can
    # mean); logsvc_field decides.
    looks = [orjson.dumps({key: expected}).decode()]
    if number is not None:
        looks.append(orjson.dumps({key: number}).decode())
    if expected in _JSON_WORDS:
        looks.append(orjson.dumps({key: _JSON_WORDS[expected]}).decode())
    where.append("(" + " OR ".join(["logsvc_jsonb(fields) @> %s::jsonb"] * len(looks)) + ")")
    params.extend(looks)
    where.append("logsvc_field(fields, %s, %s, %s::numeric)")
    params.extend([key, expected, None if number is None else repr(number)])


_JSON_WORDS = {"true": True, "false": False, "null": None}

_COLUMN_OPS = {"=": "=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def narrowing(search: Node) -> tuple[list[str], list[Any], bool]:
    """
    SQL conditions true for every record C{search} matches (a superset, for
    a C{q} the matcher decides): one for each term that C{q} ANDs at its
    top and that SQL can test through an index or a column, so the matcher
    reads those records only rather than every record the other filters
    select.  Field terms C{KEY:value} become the fields index's lookup (as
    C{field.KEY=value} does), column terms (C{service:billing},
    C{level>=error}) the column's test, text terms the search vector's
    (or no vector); other terms (comparisons of fields, regular
    expressions, OR, NOT) narrow nothing.

    @return: the conditions (to be joined with AND), their parameters, and
        whether some are field or text terms (how common their values are,
        the planner cannot tell).
    """
    where: list[str] = []
    params: list[Any] = []
    blind = False
    for term in search.children if isinstance(search, And) else (search,):
        if any(isinstance(text, str) and "\x00" in text for text in (getattr(term, "key", ""), getattr(term, "value", ""))):
            # No stored text holds NUL (see logsvc.store.postgres.store),
            # and PostgreSQL takes none in a parameter: the matcher decides.
            continue
        if isinstance(term, Field) and term.op == "=":
            _fieldCondition(term.key, term.value, where, params)
            blind = True
        elif isinstance(term, Column) and term.name in _COLUMNS_NARROWED:
            if term.op in _COLUMN_OPS:
                # Strings compare by code point, as the matcher compares
                # them: the C collation's byte order of UTF-8.
                collate = ' COLLATE "C"' if isinstance(term.value, str) else ""
                where.append(f"{term.name}{collate} {_COLUMN_OPS[term.op]} %s")
                params.append(term.value)
            elif term.op == "prefix":
                value = str(term.value)
                where.append(f"left({term.name}, %s) = %s")
                params.extend([len(value), value])
            elif term.op == "exists":
                where.append(f"{term.name} <> ''")
        elif isTextOnly(term):
            where.append("(words @@ %s::tsquery OR words IS NULL)")
            params.append(queryText(term))
            blind = True
    return where, params, blind


#: The columns a column term may name, as SQL.
_COLUMNS_NARROWED = ("id", "ts", "received", "level", "source", "service")


def cursorCondition(query: Query) -> tuple[list[str], list[Any]]:
    """
    @return: the keyset condition of C{query}'s cursor, if any.
    """
    if query.cursor is None:
        return [], []
    ts, rowid = query.cursor
    if query.order == "desc":
        return ["(ts, id) < (%s, %s)"], [ts, rowid]
    return ["(ts, id) > (%s, %s)"], [ts, rowid]


class Plan:
    """
    How to find a query's records, as C{WHERE} clauses with their
    parameters: C{vectored} is exact for every record with a search vector;
    C{unvectored} selects the records without one as candidates
    the matcher decides, or is L{None} when C{q} is empty (then
    C{vectored} covers every record).

    @ivar checkAll: every candidate needs the matcher (C{q} is not text
        only), not only the unvectored ones.
    @ivar narrowed: the conditions (and their parameters) by which C{q}'s
        own terms narrow the candidates (L{narrowing}), or L{None}.
    @ivar narrowedBlind: some of them are field or text terms, how common
        which the planner cannot tell: a page decides how to read them
        (L{_dense}).
    @ivar plain: the C{WHERE} clause of the filters other than C{q}, and
        its parameters.
    """

    def __init__(self, query: Query, extra: tuple[list[str], list[Any]] = ([], [])) -> None:
        where, params = buildWhere(query)
        where += extra[0]
        params += extra[1]
        self.query = query
        search = query.search
        self.unvectored: tuple[str, list[Any]] | None = None
        self.checkAll = False
        self.narrowed: tuple[list[str], list[Any]] | None = None
        self.narrowedBlind = False
        self.plain: tuple[str, list[Any]] = (_where(where), params)
        self._matches = cachedMatcher(search)
        #: Candidates checked by the matcher so far, bounded like SQLite's.
        self.checked = 0
        self._workLimit = base.WORK_LIMIT
        if search == EVERYTHING:
            self.vectored = (_where(where), params)
            self.either = self.vectored
            return
        if isTextOnly(search):
            vectored = ["words @@ %s::tsquery", *where]
            vectoredParams: list[Any] = [queryText(search), *params]
            unvectored = ["words IS NULL", *where]
        else:
            self.checkAll = True
            vectored = ["false"]
            vectoredParams = []
            narrowed, narrowedParams, self.narrowedBlind = narrowing(search)
            if narrowed:
                self.narrowed = (narrowed, narrowedParams)
            unvectored = where + narrowed or ["true"]
            params = params + narrowedParams
        self.vectored = (_where(vectored), vectoredParams)
        self.unvectored = (_where(unvectored), params)
        #: Every candidate: the vectored matches and the unvectored ones.
        self.either = (
            f"WHERE ({' AND '.join(vectored)}) OR ({' AND '.join(unvectored)})",
            [*vectoredParams, *params],
        )

    def matches(self, row: Row) -> bool:
        """
        @return: whether a candidate C{row} matches C{q}.

        @raise WorkLimitExceeded: past L{logsvc.store.base.WORK_LIMIT}
            candidates checked by this plan (one read of one request).
        """
        self.checked += 1
        if self.checked > self._workLimit:
            raise WorkLimitExceeded(self._workLimit)
        return self._matches(row)


def _where(conditions: list[str]) -> str:
    return "WHERE " + " AND ".join(conditions) if conditions else ""


def _stream(conn: psycopg.Connection[Any], sql: str, params: list[Any], name: str = "read") -> Iterator[Any]:
    """
    Rows of C{sql} through a server-side cursor (C{name}: unique among
    those open at once), L{FETCH} at a time (call inside a transaction).
    """
    with conn.cursor(name=f"logsvc_{name}") as cursor:
        cursor.itersize = FETCH
        cursor.execute(sql, params)
        yield from cursor


def _read(conn: psycopg.Connection[Any], plan: Plan, order: Order, limit: int | None) -> list[Row]:
    """
    Matching rows in C{order}, read lazily and taken by L{takeRows}'s rule:
    C{limit + 1} rows at most, fewer past L{PAGE_BYTES}.

    A page that fits one fetch (L{_readPage}) is one statement; a longer
    one, or one the matcher decides, is read through server-side cursors.
    When SQL decides the vectored records (C{q} text only, or empty), they
    are one statement with the page's C{LIMIT} (so the planner knows how few
    are wanted), and the rare unvectored candidates another, checked here;
    the two are merged in order.
    """
    if limit is not None and limit < FETCH and not plan.checkAll:
        page = _readPage(conn, plan, order, limit)
        if page is not None:
            return page
    most = None if limit is None else f" LIMIT {int(limit) + 1}"
    with conn.transaction():
        if plan.checkAll:
            where, params = plan.either
            orderSQL = order.sql
            if plan.narrowedBlind and limit is not None:
                if _dense(conn, plan, order):
                    # Walking the records in order meets a page's worth
                    # soon: the matcher alone decides them, as SQL testing
                    # the terms on every record walked (parsing its fields
                    # as jsonb) would cost more than it saves.
                    where, params = plan.plain
                else:
                    # Few candidates: read them through the indexes and
                    # sort (the planner, which cannot tell how rare a
                    # field's value is, is told so).
                    conn.execute("SET LOCAL enable_seqscan = off")
                    conn.execute("SET LOCAL enable_indexscan = off")
                    orderSQL = order.unindexed
            rows = (
                tuple(row)
                for row in _stream(conn, f"SELECT {COLUMNS} FROM logs {where} ORDER BY {orderSQL}", params, "all")
                if plan.matches(row)
            )
            return takeRows(rows, limit)
        where, params = plan.vectored
        orderSQL = order.sql
        if plan.unvectored is not None and limit is not None and _sparse(conn, plan.vectored):
            # Few hits: read them all through the search index and sort,
            # rather than walk the time index hoping to meet them soon.
            orderSQL = order.unindexed
        sql = f"SELECT {COLUMNS} FROM logs {where} ORDER BY {orderSQL}{most or ''}"
        vectored = (tuple(row) for row in _stream(conn, sql, params, "vectored"))
        if plan.unvectored is None:
            return takeRows(vectored, limit)
        where, params = plan.unvectored
        # No LIMIT: the candidates are decided here, after SQL.
        sql = f"SELECT {COLUMNS} FROM logs {where} ORDER BY {order.sql}"
        unvectored = (tuple(row) for row in _stream(conn, sql, params, "unvectored") if plan.matches(row))
        # Both cursors are open in the transaction, read in step.
        return takeRows(heapq.merge(vectored, unvectored, key=order.key, reverse=order.descending), limit)


def _readPage(conn: psycopg.Connection[Any], plan: Plan, order: Order, limit: int) -> list[Row] | None:
    """
    A page of fewer than L{FETCH} records SQL decides, in one statement
    outside any transaction (a search's first counts its index hits,
    L{_sparse}): no server-side cursor, whose C{BEGIN}, C{DECLARE},
    C{FETCH}, C{CLOSE} and C{COMMIT} are a round trip each, and a wait for
    the scheduler each on a busy machine.  It holds no more rows than one
    C{FETCH} would.  The unvectored candidates come in the same statement
    (flagged), at most L{FETCH} of them.

    @return: the rows as L{takeRows} takes them, or L{None} when there may
        be more unvectored candidates than that (read them through a
        cursor).
    """
    most = f" LIMIT {int(limit) + 1}"
    where, params = plan.vectored
    if plan.unvectored is None:
        rows = [tuple(row) for row in conn.execute(f"SELECT {COLUMNS} FROM logs {where} ORDER BY {order.sql}{most}", params)]
        return takeRows(rows, limit)
    orderSQL = order.unindexed if _sparse(conn, plan.vectored) else order.sql
    candidatesWhere, candidatesParams = plan.unvectored
    sql = (
        f"(SELECT {COLUMNS}, true FROM logs {where} ORDER BY {orderSQL}{most})"
        f" UNION ALL (SELECT {COLUMNS}, false FROM logs {candidatesWhere} ORDER BY {order.sql} LIMIT {FETCH})"
    )
    vectored: list[Row] = []
    candidates: list[Row] = []
    for *row, exact in conn.execute(sql, [*params, *candidatesParams]):
        (vectored if exact else candidates).append(tuple(row))
    if len(candidates) >= FETCH:
        return None
    matched = [row for row in candidates if plan.matches(row)]
    vectored.sort(key=order.key, reverse=order.descending)
    matched.sort(key=order.key, reverse=order.descending)
    return takeRows(heapq.merge(vectored, matched, key=order.key, reverse=order.descending), limit)


#: A page search whose index hits are fewer is read from the hits and
#: sorted; with more, in time order (the first page's worth comes soon).
SPARSE_HITS = 3000

#: Records a narrowed page samples in its order (L{_dense}), and the share
#: of them its terms must select for the page to be read in that order.
SAMPLE = 500
DENSE_SHARE = 0.01


def _dense(conn: psycopg.Connection[Any], plan: Plan, order: Order) -> bool:
    """
    @return: whether C{plan}'s narrowing terms select at least
        L{DENSE_SHARE} of the first L{SAMPLE} records of its plain filters
        in C{order}: then walking them in that order meets a page's
        candidates soon (reading about C{limit / share} records), where
        reading every candidate and sorting would cost about the share of
        all records.  Sampled in order (a few milliseconds) rather than
        counted through the indexes, which for a common value would cost as
        much as reading it.
    """
    assert plan.narrowed is not None
    where, params = plan.plain
    narrowed, narrowedParams = plan.narrowed
    row = conn.execute(
        f"SELECT count(*) FROM (SELECT {COLUMNS}, words FROM logs {where} ORDER BY {order.sql} LIMIT {SAMPLE})"
        f" AS newest WHERE {' AND '.join(narrowed)}",
        [*params, *narrowedParams],
    ).fetchone()
    return bool(row is not None and row[0] >= SAMPLE * DENSE_SHARE)


def _sparse(conn: psycopg.Connection[Any], condition: tuple[str, list[Any]]) -> bool:
    """
    @param condition: a C{WHERE} clause and its parameters (a plan's
        C{vectored}, or its narrowed candidates).
    @return: whether the indexes name fewer than L{SPARSE_HITS} records
        for C{condition}, counted through them alone (a bitmap scan,
        whatever the planner guesses of the words' frequency).

    One round trip: the planner settings and the count go as one string
    (parameters bound by the client), which the server runs as one implicit
    transaction, so C{SET LOCAL} ends with it; in a transaction already
    open, the settings are put back after.
    """
    where, params = condition
    cursor = psycopg.ClientCursor(conn)
    inTransaction = conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    cursor.execute(
        "SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off;"
        f" SELECT count(*) FROM (SELECT 1 FROM logs {where} LIMIT {SPARSE_HITS}) AS hits"
        + ("; RESET enable_seqscan; RESET enable_indexscan" if inTransaction else ""),
        params,
    )
    while cursor.pgresult is not None and cursor.pgresult.status != psycopg.pq.ExecStatus.TUPLES_OK:
        if not cursor.nextset():
            break
    row = cursor.fetchone()
    return bool(row is not None and row[0] < SPARSE_HITS)


class Order:
    """
    An order of rows: its C{ORDER BY} list, the same list that no index can
    provide (so matches found otherwise are sorted), and the same as a
    Python sort key.
    """

    def __init__(self, sql: str, key: Callable[[Sequence[Any]], Any], descending: bool) -> None:
        self.sql = sql
        self.unindexed = ", ".join(f"{column} + 0 {direction}" for column, direction in (
            part.split() if " " in part else (part, "") for part in sql.split(", ")
        ))
        self.key = key
        self.descending = descending


_BY_ID = Order("id", lambda row: row[0], False)


def _direction(query: Query) -> Order:
    direction = "DESC" if query.order == "desc" else "ASC"
    return Order(f"ts {direction}, id {direction}", lambda row: (row[1], row[0]), query.order == "desc")


def selectPage(conn: psycopg.Connection[Any], query: Query) -> list[Row]:
    """
    @return: one page of C{query} in its order after its cursor: the rows
        L{takeRows} takes (C{limit + 1} at most, fewer past L{PAGE_BYTES}).
    """
    return _read(conn, Plan(query, cursorCondition(query)), _direction(query), query.limit)


def selectNDJSON(conn: psycopg.Connection[Any], query: Query) -> tuple[bytes, int, tuple[int, int] | None]:
    """
    One page of an export; see L{logsvc.store.base.IStore.exportPage}.
    """
    rows, more = pageCut(selectPage(conn, query), query.limit)
    body = b"".join(orjson.dumps(renderRow(row)) + b"\n" for row in rows)
    last = (rows[-1][1], rows[-1][0]) if rows and more else None
    return body, len(rows), last


def selectAfterId(conn: psycopg.Connection[Any], query: Query, lastId: int, limit: int) -> list[Row]:
    """
    @return: up to C{limit} of C{query}'s records with an id above
        C{lastId}, in id order, ignoring its cursor; fewer past
        L{PAGE_BYTES} (C{takeRows(rows, limit - 1)}).
    """
    plan = Plan(replace(query, cursor=None), (["id > %s"], [lastId]))
    return _read(conn, plan, _BY_ID, limit - 1)


def selectCommitted(conn: psycopg.Connection[Any], lastId: int, top: int, limit: int) -> list[Row]:
    """
    @return: the records with ids in C{(lastId, top]} in id order (the
        feed's read): C{limit} at most, fewer past L{PAGE_BYTES}.
    """
    with conn.transaction():
        rows = _stream(conn, f"SELECT {COLUMNS} FROM logs WHERE id > %s AND id <= %s ORDER BY id", [lastId, top])
        return takeRows((tuple(row) for row in rows), limit - 1)


def _counted(
    conn: psycopg.Connection[Any], plan: Plan, select: str, group: str, key: Any
) -> dict[Any, int]:
    """
    C{SELECT select, count(*) ... GROUP BY group} over the vectored
    matches, plus the unvectored candidates that match counted in Python
    by C{key(row)}.
    """
    counts: dict[Any, int] = {}
    where, params = plan.vectored
    for *values, n in conn.execute(f"SELECT {select}, count(*) FROM logs {where} GROUP BY {group}", params):
        k = tuple(values) if len(values) > 1 else values[0]
        counts[k] = counts.get(k, 0) + n
    if plan.unvectored is not None:
        where, params = plan.unvectored
        with conn.transaction():
            for row in _stream(conn, f"SELECT {COLUMNS} FROM logs {where}", params):
                if plan.matches(row):
                    k = key(row)
                    counts[k] = counts.get(k, 0) + 1
    return counts


def selectHistogram(conn: psycopg.Connection[Any], query: Query, origin: int, width: int) -> dict[tuple[int, int], int]:
    """
    @return: C{{(slot, level): count}} of C{query}'s records, slot C{n}
        holding C{ts} in C{[origin + n * width, origin + (n + 1) * width)}.
    """
    select = f"(ts - {int(origin)}) / {int(width)}, level"
    return _counted(conn, Plan(query), select, "1, 2", lambda row: ((row[1] - origin) // width, row[3]))


def selectTop(conn: psycopg.Connection[Any], query: Query, column: str) -> dict[Any, int]:
    """
    @param column: C{"service"}, C{"source"} or C{"level"}.
    @return: C{{value: count}} over C{query}'s records.
    """
    index = {"level": 3, "source": 4, "service": 5}[column]
    return _counted(conn, Plan(query), column, "1", lambda row: row[index])


def selectTimeRange(conn: psycopg.Connection[Any], query: Query) -> tuple[int, int] | None:
    """
    @return: the earliest and latest C{ts} of C{query}'s records, or L{None}.
    """
    plan = Plan(query)
    where, params = plan.vectored
    low, high = conn.execute(f"SELECT min(ts), max(ts) FROM logs {where}", params).fetchone() or (None, None)
    if plan.unvectored is not None:
        where, params = plan.unvectored
        with conn.transaction():
            for row in _stream(conn, f"SELECT {COLUMNS} FROM logs {where}", params):
                if plan.matches(row):
                    low = row[1] if low is None else min(low, row[1])
                    high = row[1] if high is None else max(high, row[1])
    return None if low is None or high is None else (low, high)


def selectCount(conn: psycopg.Connection[Any]) -> int:
    """
    @return: the number of stored records.
    """
    row = conn.execute("SELECT count(*) FROM logs").fetchone()
    return int(row[0]) if row else 0
