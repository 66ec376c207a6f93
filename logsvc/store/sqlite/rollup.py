# -*- test-case-name: tests.test_store_rollup -*-
"""
Counts per minute, kept as batches commit, so the default view's
histogram and top values cost what the minutes cost, not what the records
in them cost.

Three tables in the records file (made by
L{logsvc.store.sqlite.connection.createSchema}): C{rollup_level (minute,
level, n)}, C{rollup_service (minute, level, service, n)} and
C{rollup_source (minute, level, source, n)}, C{minute} being
C{floor(ts / 60 s)}; a query reads the narrowest that holds its terms.  The writer adds each batch's counts in the batch's
own transaction (L{addToRollup}); a trigger takes deleted records out
(retention), so a rollup always agrees with the records in the same
snapshot.  Rows whose count fell to 0 stay (they add nothing).

A histogram or a top of a query whose filters are only the time range and
terms on C{level}, C{service} or C{source} (plain arguments or the same
terms in C{q}, but not C{service} and C{source} together) is answered from
the rollup for the whole minutes of its range and from the records for the
range's partial minutes at its edges (L{rollupHistogram},
L{rollupTop}); any other query reads the records (they return L{None}).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import replace
from typing import Any

from logsvc.query import Query
from logsvc.record import Record
from logsvc.search_syntax import And, Column, Node, Not, Or, conjunction
from logsvc.store.sqlite.connection import MINUTE, ROLLUPS, rollupKey
from logsvc.store.sqlite.plan import selectHistogram, selectTop, translate

_UPSERT = {
    table: f"INSERT INTO {table} ({rollupKey(column)}, n) VALUES (?, ?{'' if column is None else ', ?'}, ?)"
    f" ON CONFLICT ({rollupKey(column)}) DO UPDATE SET n = n + excluded.n"
    for table, (column, _) in ROLLUPS.items()
}


def addToRollup(conn: sqlite3.Connection, records: list[Record]) -> None:
    """
    Count C{records} into the rollup, in the current transaction (the one
    that inserts them).
    """
    counts: dict[str, Counter[tuple[Any, ...]]] = {table: Counter() for table in ROLLUPS}
    level, service, source = counts["rollup_level"], counts["rollup_service"], counts["rollup_source"]
    levelHour, serviceHour = counts["rollup_level_hour"], counts["rollup_service_hour"]
    sourceHour = counts["rollup_source_hour"]
    for record in records:
        minute = record.ts // MINUTE
        hour = minute - minute % 60
        level[minute, record.level] += 1
        service[minute, record.level, record.service] += 1
        source[minute, record.level, record.source] += 1
        levelHour[hour, record.level] += 1
        serviceHour[hour, record.level, record.service] += 1
        sourceHour[hour, record.level, record.source] += 1
    for table, counted in counts.items():
        conn.executemany(_UPSERT[table], [(*key, n) for key, n in counted.items()])


def _columns(node: Node) -> set[str] | None:
    """
    @return: the columns C{node} tests when it tests only C{level},
        C{service} and C{source} (what the rollup holds), else L{None}.
    """
    if isinstance(node, Column):
        return {node.name} if node.name in ("level", "service", "source") else None
    if isinstance(node, Not):
        return _columns(node.child)
    if isinstance(node, (And, Or)):
        found: set[str] = set()
        for child in node.children:
            names = _columns(child)
            if names is None:
                return None
            found |= names
        return found
    return None


def _rollupWhere(query: Query, column: str | None) -> tuple[str, str, list[Any]] | None:
    """
    @param column: the column a top counts by, or L{None} for a histogram.
    @return: the rollup table answering C{query}'s filters (but its time
        range), the condition (over C{level}, C{service}, C{source}) and its
        parameters; L{None} when the rollup cannot answer.
    """
    if query.fields:
        return None
    plain = [n for n in query.plainFilters() if not (isinstance(n, Column) and n.name == "ts")]
    node = conjunction([*plain, query.search])
    names = _columns(node)
    if names is None:
        return None
    if column in ("service", "source"):
        names.add(column)
    if {"service", "source"} <= names:
        return None
    table = "rollup_source" if "source" in names else "rollup_service" if "service" in names else "rollup_level"
    sql, params, exact = translate(node)
    if not exact:
        return None
    return table, sql, params


def _wholeMinutes(query: Query) -> tuple[int | None, int | None]:
    """
    @return: the first minute wholly in C{query}'s time range and the first
        after it (L{None} for an open end).
    """
    first = None if query.since is None else -(-query.since // MINUTE)
    end = None if query.until is None else query.until // MINUTE
    return first, end


def _minuteRange(first: int | None, end: int | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if first is not None:
        where.append("minute >= ?")
        params.append(first)
    if end is not None:
        where.append("minute < ?")
        params.append(end)
    return where, params


def _parts(table: str, first: int, end: int, *, hours: bool) -> list[tuple[str, int, int]]:
    """
    @return: C{(table, first, end)} minute ranges covering C{[first, end)}:
        whole hours from the hour table when C{hours}, the rest by minute.
    """
    low = -(-first // 60) * 60
    high = end // 60 * 60
    if not hours or low >= high:
        return [(table, first, end)]
    parts = [(table + "_hour", low, high)]
    if first < low:
        parts.append((table, first, low))
    if high < end:
        parts.append((table, high, end))
    return parts


def _edges(query: Query, first: int | None, end: int | None) -> list[Query]:
    """
    @return: queries for the partial minutes at the range's edges.
    """
    edges = []
    if first is not None and query.since is not None and query.since < first * MINUTE:
        edges.append(replace(query, until=first * MINUTE, cursor=None))
    if end is not None and query.until is not None and end * MINUTE < query.until:
        edges.append(replace(query, since=end * MINUTE, cursor=None))
    return edges


def rollupHistogram(
    conn: sqlite3.Connection, query: Query, origin: int, width: int, *, useIndex: bool = True
) -> dict[tuple[int, int], int] | None:
    """
    L{selectHistogram} from the rollup, when it can answer (see the module
    docstring) and the slots are whole minutes.

    @return: C{{(slot, level): count}}, or L{None}.
    """
    if query.since is None or query.until is None or width % MINUTE or origin % MINUTE:
        return None
    found = _rollupWhere(query, None)
    first, end = _wholeMinutes(query)
    if found is None or first is None or end is None or first >= end:
        return None
    table, sql, params = found
    perSlot = width // MINUTE
    counts: dict[tuple[int, int], int] = {}
    hours = perSlot % 60 == 0 and (origin // MINUTE) % 60 == 0
    for part, low, high in _parts(table, first, end, hours=hours):
        where, rangeParams = _minuteRange(low, high)
        if sql != "1":
            where.append(sql)
        for slot, level, n in conn.execute(
            f"SELECT (minute - ?) / ?, level, sum(n) FROM {part} WHERE {' AND '.join(where)} GROUP BY 1, 2",
            [origin // MINUTE, perSlot, *rangeParams, *params],
        ):
            if n:
                counts[slot, level] = counts.get((slot, level), 0) + n
    for edge in _edges(query, first, end):
        for key, n in selectHistogram(conn, edge, origin, width, useIndex=useIndex).items():
            counts[key] = counts.get(key, 0) + n
    return counts


def rollupTop(conn: sqlite3.Connection, query: Query, column: str, *, useIndex: bool = True) -> dict[Any, int] | None:
    """
    L{selectTop} from the rollup, when it can answer.

    @return: C{{value: count}}, or L{None}.
    """
    found = _rollupWhere(query, column)
    if found is None:
        return None
    first, end = _wholeMinutes(query)
    if first is not None and end is not None and first >= end:
        return None
    table, sql, params = found
    counts: dict[Any, int] = {}
    if first is None or end is None:
        parts: list[tuple[str, int | None, int | None]] = [(table + "_hour", None, None)] if (
            first is None and end is None
        ) else [(table, first, end)]
    else:
        parts = list(_parts(table, first, end, hours=True))
    for part, low, high in parts:
        where, rangeParams = _minuteRange(low, high)
        if sql != "1":
            where.append(sql)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        for value, n in conn.execute(f"SELECT {column}, sum(n) FROM {part}{clause} GROUP BY 1", [*rangeParams, *params]):
            if n:
                counts[value] = counts.get(value, 0) + n
    for edge in _edges(query, first, end):
        for value, n in selectTop(conn, edge, column, useIndex=useIndex).items():
            counts[value] = counts.get(value, 0) + n
    return counts


def _inSnapshot(conn: sqlite3.Connection, read: Any) -> Any:
    # The rollup and the records' edges from one snapshot.
    conn.execute("BEGIN")
    try:
        return read()
    finally:
        conn.execute("COMMIT")


def readHistogram(
    conn: sqlite3.Connection, query: Query, origin: int, width: int, *, useIndex: bool = True
) -> dict[tuple[int, int], int]:
    """
    L{selectHistogram}'s answer, from the rollup where it can answer.
    """

    def read() -> dict[tuple[int, int], int]:
        counts = rollupHistogram(conn, query, origin, width, useIndex=useIndex)
        return selectHistogram(conn, query, origin, width, useIndex=useIndex) if counts is None else counts

    return _inSnapshot(conn, read)  # type: ignore[no-any-return]


def readTop(conn: sqlite3.Connection, query: Query, column: str, *, useIndex: bool = True) -> dict[Any, int]:
    """
    L{selectTop}'s answer, from the rollup where it can answer.
    """

    def read() -> dict[Any, int]:
        counts = rollupTop(conn, query, column, useIndex=useIndex)
        return selectTop(conn, query, column, useIndex=useIndex) if counts is None else counts

    return _inSnapshot(conn, read)  # type: ignore[no-any-return]
