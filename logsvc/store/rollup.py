# -*- test-case-name: tests.test_store_rollup -*-
"""
Counts per minute, whatever the backend: which tables there are, how a
batch of records is counted into them, and how a histogram or a top of a
query is answered from them, so the default view's histogram and top
values cost what the minutes cost, not what the records in them cost.

Six tables, by time bucket (a minute, or an hour) and level, and for two of
each, by service or by source besides: C{rollup_level}, C{rollup_service},
C{rollup_source} and the same with C{_hour}.  C{minute} is
C{floor(ts / MINUTE)} (in the hour tables, the first minute of the hour).
Each backend keeps them in its records' database, in the transaction that
stores or deletes the records, so the counts always agree with the records
in the same snapshot (L{logsvc.store.sqlite.rollup},
L{logsvc.store.postgres.rollup}).

A histogram or a top of a query whose filters are only the time range and
terms on C{level}, C{service} or C{source} (plain arguments or the same
terms in C{q}, but not C{service} and C{source} together) is answered from
the tables for the whole minutes of its range (whole hours from the hour
tables where the slots allow) and from the records for the range's partial
minutes at its edges, at most half a minute of records each (L{edgeParts},
L{rollupHistogram}, L{rollupTop}); any other query
reads the records (they return L{None}).  The SQL stays with each backend
(L{RollupSQL}); this module decides what to ask.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from operator import itemgetter
from typing import Any, Protocol

from logsvc.query import Query
from logsvc.record import Record
from logsvc.search_syntax import And, Column, Node, Not, Or, conjunction

#: Microseconds in a rollup minute.
MINUTE = 60_000_000

#: The tables: the column each counts by besides its time bucket and level,
#: and the bucket's length in minutes (the hour tables' C{minute} is the
#: first minute of the hour).  In this order, a writer touches them.
ROLLUPS: dict[str, tuple[str | None, int]] = {
    "rollup_level": (None, 1),
    "rollup_service": ("service", 1),
    "rollup_source": ("source", 1),
    "rollup_level_hour": (None, 60),
    "rollup_service_hour": ("service", 60),
    "rollup_source_hour": ("source", 60),
}


def rollupKey(column: str | None) -> str:
    """
    @return: the key columns of the rollup table counting by C{column}.
    """
    return "minute, level" + ("" if column is None else f", {column}")


#: Records counted by C{(minute, level, service, source)}.
Keys = Counter[tuple[int, int, str, str]]

#: One table's changes: C{(minute, level, n)} or C{(minute, level, value, n)}
#: rows, one per key.
Counts = dict[str, list[tuple[Any, ...]]]

#: C{(ts, level, service, source)} of a record.
_KEY = itemgetter(Record._fields.index("ts"), Record._fields.index("level"), Record._fields.index("service"),
                  Record._fields.index("source"))


def countKeys(rows: Iterable[tuple[int, int, str, str]]) -> Keys:
    """
    @param rows: C{(ts, level, service, source)} of each record.
    @return: how many records each C{(minute, level, service, source)}
        holds: every table's rows are sums of these.
    """
    return Counter((ts // MINUTE, level, service, source) for ts, level, service, source in rows)


def countRecords(records: Iterable[Record]) -> Keys:
    """
    L{countKeys} of records being stored.
    """
    return countKeys(map(_KEY, records))


def tableRows(keys: Keys, sign: int = 1) -> Counts:
    """
    @param sign: 1 for records stored, -1 for records deleted.
    @return: each table's rows (L{Counts}) summed from C{keys}.
    """
    tables: dict[str, Counter[tuple[Any, ...]]] = {table: Counter() for table in ROLLUPS}
    level, service, source = tables["rollup_level"], tables["rollup_service"], tables["rollup_source"]
    levelHour, serviceHour = tables["rollup_level_hour"], tables["rollup_service_hour"]
    sourceHour = tables["rollup_source_hour"]
    for (minute, lv, sv, so), n in keys.items():
        hour = minute - minute % 60
        level[minute, lv] += n
        service[minute, lv, sv] += n
        source[minute, lv, so] += n
        levelHour[hour, lv] += n
        serviceHour[hour, lv, sv] += n
        sourceHour[hour, lv, so] += n
    return {table: [(*key, sign * n) for key, n in counted.items()] for table, counted in tables.items()}


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


def rollupCondition(query: Query, column: str | None) -> tuple[str, Node] | None:
    """
    @param column: the column a top counts by, or L{None} for a histogram.
    @return: the minute table answering C{query} and its filters but the
        time range (over C{level}, C{service}, C{source}), or L{None} when
        the rollup cannot answer.
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
    return table, node


def wholeMinutes(query: Query) -> tuple[int | None, int | None]:
    """
    @return: the first minute wholly in C{query}'s time range and the first
        after it (L{None} for an open end).
    """
    first = None if query.since is None else -(-query.since // MINUTE)
    end = None if query.until is None else query.until // MINUTE
    return first, end


def minuteParts(table: str, first: int, end: int, *, hours: bool) -> list[tuple[str, int, int]]:
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


def edgeParts(
    query: Query, first: int | None, end: int | None, anyRecords: Callable[[int, int], bool] | None = None
) -> tuple[int | None, int | None, list[Query], list[Query]]:
    """
    How to count the partial minutes at the edges of C{query}'s range, whose
    whole minutes are C{[first, end)}, reading as few records as one can
    tell without counting them: the rest of an edge's minute, outside the
    range, when it holds no record at all (an edge at "now", nothing after
    it), costs nothing: the whole minute comes from the rollup.  Otherwise a
    partial minute is read from the records when it is at most half a
    minute long, and else its whole minute comes from the rollup less the
    records of the rest of that minute.  So an edge reads at most half a
    minute of records, however dense they are.

    @param anyRecords: whether any record (whatever C{query}'s filters) has
        C{ts} in C{[since, until)}: a lookup in the time index, in the
        snapshot the rollup is read in; L{None} to decide by the times alone.
    @return: the whole minutes to read from the rollup (C{first} and C{end},
        widened by a minute at such an edge), the queries whose records
        add, and those whose records subtract.
    """
    add: list[Query] = []
    subtract: list[Query] = []
    if first is not None and query.since is not None and query.since < first * MINUTE:
        outside = replace(query, since=(first - 1) * MINUTE, until=query.since, cursor=None)
        if first * MINUTE - query.since > MINUTE // 2:
            first -= 1
            subtract.append(outside)
        elif anyRecords is not None and not anyRecords((first - 1) * MINUTE, query.since):
            first -= 1
        else:
            add.append(replace(query, until=first * MINUTE, cursor=None))
    if end is not None and query.until is not None and end * MINUTE < query.until:
        outside = replace(query, since=query.until, until=(end + 1) * MINUTE, cursor=None)
        if query.until - end * MINUTE > MINUTE // 2:
            end += 1
            subtract.append(outside)
        elif anyRecords is not None and not anyRecords(query.until, (end + 1) * MINUTE):
            end += 1
        else:
            add.append(replace(query, since=end * MINUTE, cursor=None))
    return first, end, add, subtract


class RollupSQL(Protocol):
    """
    A backend's reads for L{rollupHistogram} and L{rollupTop}, in one
    snapshot with each other.
    """

    def condition(self, node: Node) -> tuple[str, list[Any]] | None:
        """
        @return: C{node} as an exact SQL condition over a rollup table's
            C{level}, C{service} and C{source} (an empty string for no
            condition) with its parameters, or L{None} when SQL cannot
            decide it exactly.
        """

    def sumSlots(
        self, table: str, low: int, high: int, where: tuple[str, list[Any]], originMinute: int, perSlot: int
    ) -> Iterable[tuple[int, int, int]]:
        """
        @return: C{(slot, level, n)} summed over C{table}'s rows of minutes
            in C{[low, high)} meeting C{where}, slot C{(minute -
            originMinute) / perSlot}.
        """

    def sumValues(
        self, table: str, low: int | None, high: int | None, where: tuple[str, list[Any]], column: str
    ) -> Iterable[tuple[Any, int]]:
        """
        @return: C{(value of column, n)} summed over C{table}'s rows of
            minutes in C{[low, high)} (L{None}: open) meeting C{where}.
        """

    def recordsHistogram(self, query: Query, origin: int, width: int) -> dict[tuple[int, int], int]:
        """
        @return: the histogram of C{query} read from the records.
        """

    def recordsTop(self, query: Query, column: str) -> dict[Any, int]:
        """
        @return: the top of C{query} by C{column} read from the records.
        """

    def anyRecords(self, since: int, until: int) -> bool:
        """
        @return: whether any record has C{ts} in C{[since, until)}, whatever
            its other columns (one lookup in the time index).
        """


def _add(counts: dict[Any, int], key: Any, n: int) -> None:
    if n:
        counts[key] = counts.get(key, 0) + n


def _withEdges(
    counts: dict[Any, int], add: list[Query], subtract: list[Query], read: Callable[[Query], dict[Any, int]]
) -> dict[Any, int]:
    """
    @return: C{counts} with what C{read} counts of the C{add} queries' records
        added and of the C{subtract} queries' taken away, keys at 0 left out.
    """
    for edges, sign in ((add, 1), (subtract, -1)):
        for edge in edges:
            for key, n in read(edge).items():
                _add(counts, key, sign * n)
    return {key: n for key, n in counts.items() if n}


def rangeClause(
    low: int | None, high: int | None, where: tuple[str, list[Any]], mark: str
) -> tuple[str, list[Any]]:
    """
    @param where: a condition from L{RollupSQL.condition}.
    @param mark: the backend's parameter placeholder (C{?}, C{%s}).
    @return: the C{WHERE} clause (or C{""}) selecting a rollup table's rows
        of minutes in C{[low, high)} (L{None}: open) that meet C{where}, and
        its parameters.
    """
    conditions: list[str] = []
    params: list[Any] = []
    if low is not None:
        conditions.append(f"minute >= {mark}")
        params.append(low)
    if high is not None:
        conditions.append(f"minute < {mark}")
        params.append(high)
    if where[0]:
        conditions.append(f"({where[0]})")
        params.extend(where[1])
    return (" WHERE " + " AND ".join(conditions) if conditions else ""), params


def _answerable(
    sql: RollupSQL, query: Query, column: str | None
) -> tuple[str, tuple[str, list[Any]], int | None, int | None] | None:
    """
    @return: the minute table answering C{query} (a top by C{column}, or a
        histogram), its condition in C{sql}'s terms and C{query}'s whole
        minutes (L{wholeMinutes}); L{None} when the rollup cannot answer or
        the range holds no whole minute.
    """
    found = rollupCondition(query, column)
    first, end = wholeMinutes(query)
    if found is None or (first is not None and end is not None and first >= end):
        return None
    table, node = found
    where = sql.condition(node)
    if where is None:
        return None
    return table, where, first, end


def rollupHistogram(sql: RollupSQL, query: Query, origin: int, width: int) -> dict[tuple[int, int], int] | None:
    """
    A histogram (C{{(slot, level): count}}, slot C{n} holding C{ts} in
    C{[origin + n * width, origin + (n + 1) * width)}) from the rollup, when
    it can answer (see the module docstring) and the slots are whole
    minutes.

    @return: the counts, or L{None}.
    """
    if query.since is None or query.until is None or width % MINUTE or origin % MINUTE:
        return None
    found = _answerable(sql, query, None)
    if found is None:
        return None
    table, where, first, end = found
    first, end, add, subtract = edgeParts(query, first, end, sql.anyRecords)
    assert first is not None and end is not None  # widening keeps a bound a bound
    perSlot = width // MINUTE
    counts: dict[tuple[int, int], int] = {}
    hours = perSlot % 60 == 0 and (origin // MINUTE) % 60 == 0
    for part, low, high in minuteParts(table, first, end, hours=hours):
        for slot, level, n in sql.sumSlots(part, low, high, where, origin // MINUTE, perSlot):
            _add(counts, (slot, level), n)
    return _withEdges(counts, add, subtract, lambda edge: sql.recordsHistogram(edge, origin, width))


def rollupTop(sql: RollupSQL, query: Query, column: str) -> dict[Any, int] | None:
    """
    A top (C{{value: count}}) of C{query} by C{column} from the rollup, when
    it can answer.

    @return: the counts, or L{None}.
    """
    found = _answerable(sql, query, column)
    if found is None:
        return None
    table, where, first, end = found
    first, end, add, subtract = edgeParts(query, first, end, sql.anyRecords)
    parts: list[tuple[str, int | None, int | None]]
    if first is None and end is None:
        parts = [(table + "_hour", None, None)]
    elif first is None or end is None:
        parts = [(table, first, end)]
    else:
        parts = list(minuteParts(table, first, end, hours=True))
    counts: dict[Any, int] = {}
    for part, low, high in parts:
        for value, n in sql.sumValues(part, low, high, where, column):
            _add(counts, value, n)
    return _withEdges(counts, add, subtract, lambda edge: sql.recordsTop(edge, column))
