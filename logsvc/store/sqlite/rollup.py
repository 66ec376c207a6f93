# -*- test-case-name: tests.test_store_rollup -*-
"""
The counts per minute (L{logsvc.store.rollup}) in SQLite: the six tables
live in the records file (made by
L{logsvc.store.sqlite.connection.createSchema}), with two of SQLite's own,
counts per day by service and by source, from which a top over days reads
its whole days.  The writer adds each
batch's counts in the batch's own transaction (L{addToRollup}); a trigger
takes deleted records out (retention), so the counts always agree with the
records in the same snapshot.  Rows whose count fell to 0 stay (they add
nothing).
"""

from __future__ import annotations

import functools
import sqlite3
from collections import Counter
from collections.abc import Iterable
from itertools import chain
from typing import Any

from logsvc.query import Query
from logsvc.record import LEVEL_NAMES, Record
from logsvc.search_syntax import Node
from logsvc.store.rollup import (
    MINUTE,
    ROLLUPS,
    countRecords,
    rangeClause,
    rollupHistogram,
    rollupKey,
    rollupTop,
    tableRows,
)
from logsvc.store.sqlite.connection import DAY_MINUTES, DAY_ROLLUPS
from logsvc.store.sqlite.plan import selectHistogram, selectTop, translate

#: The table of counts per day summing each table of counts per hour.
_DAY_OF_HOURS = {hours: table for table, (_, hours) in DAY_ROLLUPS.items()}

#: Each table's column counted beside minute and level (None: none).
_COLUMNS: dict[str, str | None] = {table: column for table, (column, _) in ROLLUPS.items()}
_COLUMNS.update({table: column for table, (column, _) in DAY_ROLLUPS.items()})

#: Most rows one upsert statement carries (3 or 4 parameters each, far
#: within SQLite's 32,766 variables), and fewest it is compiled for.
MAX_UPSERT_ROWS = 1024
MIN_UPSERT_ROWS = 16


@functools.cache
def _upsertRowsSQL(table: str, rows: int) -> str:
    column = _COLUMNS[table]
    key = rollupKey(column)
    row = "(?, ?, ?)" if column is None else "(?, ?, ?, ?)"
    return (
        f"INSERT INTO {table} ({key}, n) VALUES {', '.join([row] * rows)}"
        f" ON CONFLICT ({key}) DO UPDATE SET n = n + excluded.n"
    )


def addToRollup(conn: sqlite3.Connection, records: list[Record]) -> None:
    """
    Count C{records} into the rollup, in the current transaction (the one
    that inserts them): the shared tables, and the days summed from their
    hours.

    One statement per table (up to L{MAX_UPSERT_ROWS} rows each), not one
    per row: every statement gives the GIL away and must win it back from
    the reactor thread (see L{logsvc.store.sqlite.connection.insertRecords}).
    Records of many services, hosts and levels make hundreds of rows a
    batch; row by row, the writer thread of the UDP benchmark's server spent
    about 0.7 us more CPU per RFC 5424 record.  Each statement is padded to
    a power of two rows with its first key again and a count of 0, which
    adds nothing, so the connection compiles few statements.
    """
    counts = tableRows(countRecords(records))
    for hours, days in _DAY_OF_HOURS.items():
        perDay: Counter[tuple[int, int, str]] = Counter()
        for hour, level, value, n in counts[hours]:
            perDay[hour - hour % DAY_MINUTES, level, value] += n
        counts[days] = [(*key, n) for key, n in perDay.items()]
    cursor = conn.cursor()
    for table, rows in counts.items():
        for start in range(0, len(rows), MAX_UPSERT_ROWS):
            chunk = rows[start : start + MAX_UPSERT_ROWS]
            size = max(MIN_UPSERT_ROWS, 1 << (len(chunk) - 1).bit_length())
            params = list(chain.from_iterable(chunk))
            params.extend((*chunk[0][:-1], 0) * (size - len(chunk)))
            cursor.execute(_upsertRowsSQL(table, size), params)


class SqliteRollupSQL:
    """
    L{logsvc.store.rollup.RollupSQL} on a SQLite connection.
    """

    def __init__(self, conn: sqlite3.Connection, *, useIndex: bool = True) -> None:
        self.conn = conn
        self.useIndex = useIndex
        self._days: bool | None = None

    def _hasDays(self) -> bool:
        # A database of schema version 6 read while its writer cannot open
        # (a full disk) has no counts per day yet.
        if self._days is None:
            found = self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [next(iter(DAY_ROLLUPS))]
            ).fetchone()
            self._days = found is not None
        return self._days

    def condition(self, node: Node) -> tuple[str, list[Any]] | None:
        sql, params, exact = translate(node)
        if not exact:
            return None
        return ("", []) if sql == "1" else (sql, params)

    def sumSlots(
        self, table: str, low: int, high: int, where: tuple[str, list[Any]], originMinute: int, perSlot: int
    ) -> Iterable[tuple[int, int, int]]:
        clause, params = rangeClause(low, high, where, "?")
        return self.conn.execute(
            f"SELECT (minute - ?) / ?, level, sum(n) FROM {table}{clause} GROUP BY 1, 2",
            [originMinute, perSlot, *params],
        )

    def sumValues(
        self, table: str, low: int | None, high: int | None, where: tuple[str, list[Any]], column: str
    ) -> Iterable[tuple[Any, int]]:
        days = _DAY_OF_HOURS.get(table)
        dayLow = None if low is None else -(-low // DAY_MINUTES) * DAY_MINUTES
        dayHigh = None if high is None else high // DAY_MINUTES * DAY_MINUTES
        if days is None or (dayLow is not None and dayHigh is not None and dayLow >= dayHigh) or not self._hasDays():
            return self._sumValues(table, low, high, where, column)
        # Whole days from the counts per day (a week's top reads 7 rows per
        # key, not 168), the hours around them from the counts per hour.
        rows = list(self._sumValues(days, dayLow, dayHigh, where, column))
        if low is not None and dayLow is not None and low < dayLow:
            rows += self._sumValues(table, low, dayLow, where, column)
        if high is not None and dayHigh is not None and dayHigh < high:
            rows += self._sumValues(table, dayHigh, high, where, column)
        return rows

    def _sumValues(
        self, table: str, low: int | None, high: int | None, where: tuple[str, list[Any]], column: str
    ) -> Iterable[tuple[Any, int]]:
        clause, params = rangeClause(low, high, where, "?")
        return self.conn.execute(f"SELECT {column}, sum(n) FROM {table}{clause} GROUP BY 1", params)

    def recordsHistogram(self, query: Query, origin: int, width: int) -> dict[tuple[int, int], int]:
        return selectHistogram(self.conn, query, origin, width, useIndex=self.useIndex)

    def recordsTop(self, query: Query, column: str) -> dict[Any, int]:
        if _timeOnly(query) and column in ("level", "service"):
            assert query.since is not None and query.until is not None
            counts = _countByIndex(self.conn, query.since, query.until, column)
            if counts is not None:
                return counts
        return selectTop(self.conn, query, column, useIndex=self.useIndex)

    def anyRecords(self, since: int, until: int) -> bool:
        found = self.conn.execute("SELECT 1 FROM logs WHERE ts >= ? AND ts < ? LIMIT 1", [since, until]).fetchone()
        return found is not None


#: Most (level, service) pairs L{_countByIndex} counts one by one.
_MOST_PAIRS = 500


def _timeOnly(query: Query) -> bool:
    """
    @return: whether C{query} filters on its time range alone (as an edge
        of the default view does).
    """
    return (
        query.since is not None and query.until is not None and query.level is None and not query.services
        and not query.sources and not query.fields and not query.q.strip()
    )


def _countByIndex(conn: sqlite3.Connection, since: int, until: int, column: str) -> dict[Any, int] | None:
    """
    Count the records in C{[since, until)} (a partial minute at an edge) by
    C{column}, C{"level"} or C{"service"}, in ranges of an index that holds
    the column before C{ts}: one per level, or one per (level, service)
    pair the minutes' counts hold.  No record is read, nothing is sorted:
    reading each record through the time index costs some ten times more.

    @return: C{{value: count}}, or L{None} when there are more than
        L{_MOST_PAIRS} pairs (a long range: read the records).
    """
    counts: dict[Any, int] = {}
    if column == "level":
        sql = "SELECT count(*) FROM logs WHERE level = ? AND ts >= ? AND ts < ?"
        keys: list[tuple[Any, ...]] = [(level,) for level in range(len(LEVEL_NAMES))]
    else:
        keys = conn.execute(
            f"SELECT DISTINCT service, level FROM rollup_service WHERE minute >= ? AND minute <= ? AND n > 0"
            f" LIMIT {_MOST_PAIRS + 1}",
            [since // MINUTE, (until - 1) // MINUTE],
        ).fetchall()
        if len(keys) > _MOST_PAIRS:
            return None
        sql = "SELECT count(*) FROM logs WHERE service = ? AND level = ? AND ts >= ? AND ts < ?"
    for key in keys:
        (n,) = conn.execute(sql, [*key, since, until]).fetchone()
        if n:
            counts[key[0]] = counts.get(key[0], 0) + n
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
        counts = rollupHistogram(SqliteRollupSQL(conn, useIndex=useIndex), query, origin, width)
        return selectHistogram(conn, query, origin, width, useIndex=useIndex) if counts is None else counts

    return _inSnapshot(conn, read)  # type: ignore[no-any-return]


def readTop(conn: sqlite3.Connection, query: Query, column: str, *, useIndex: bool = True) -> dict[Any, int]:
    """
    L{selectTop}'s answer, from the rollup where it can answer.
    """

    def read() -> dict[Any, int]:
        counts = rollupTop(SqliteRollupSQL(conn, useIndex=useIndex), query, column)
        return selectTop(conn, query, column, useIndex=useIndex) if counts is None else counts

    return _inSnapshot(conn, read)  # type: ignore[no-any-return]
