# -*- test-case-name: tests.test_store_rollup -*-
"""
The counts per minute (L{logsvc.store.rollup}) in SQLite: the six tables
live in the records file (made by
L{logsvc.store.sqlite.connection.createSchema}).  The writer adds each
batch's counts in the batch's own transaction (L{addToRollup}); a trigger
takes deleted records out (retention), so the counts always agree with the
records in the same snapshot.  Rows whose count fell to 0 stay (they add
nothing).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from logsvc.query import Query
from logsvc.record import Record
from logsvc.search_syntax import Node
from logsvc.store.rollup import (
    ROLLUPS,
    countRecords,
    rangeClause,
    rollupHistogram,
    rollupKey,
    rollupTop,
)
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
    for table, rows in countRecords(records).items():
        conn.executemany(_UPSERT[table], rows)


class SqliteRollupSQL:
    """
    L{logsvc.store.rollup.RollupSQL} on a SQLite connection.
    """

    def __init__(self, conn: sqlite3.Connection, *, useIndex: bool = True) -> None:
        self.conn = conn
        self.useIndex = useIndex

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
        clause, params = rangeClause(low, high, where, "?")
        return self.conn.execute(f"SELECT {column}, sum(n) FROM {table}{clause} GROUP BY 1", params)

    def recordsHistogram(self, query: Query, origin: int, width: int) -> dict[tuple[int, int], int]:
        return selectHistogram(self.conn, query, origin, width, useIndex=self.useIndex)

    def recordsTop(self, query: Query, column: str) -> dict[Any, int]:
        return selectTop(self.conn, query, column, useIndex=self.useIndex)

    def anyRecords(self, since: int, until: int) -> bool:
        found = self.conn.execute("SELECT 1 FROM logs WHERE ts >= ? AND ts < ? LIMIT 1", [since, until]).fetchone()
        return found is not None


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
