# -*- test-case-name: tests.test_store_rollup -*-
"""
The counts per minute (L{logsvc.store.rollup}) in PostgreSQL: six tables
beside C{logs} (made by L{logsvc.store.postgres.connection.createSchema}).

Kept in the transactions that change the records, so the counts agree with
the records in every snapshot: the writer adds each batch's counts after its
C{COPY} (L{addCounts}), retention takes out what it deletes or drops
(L{logsvc.store.postgres.retention}).  Each batch is counted in Python
first (one row per key) and each table's rows go in one statement, sorted
by key; several nodes' writers take turns at the commit counter anyway
(L{logsvc.store.postgres.store}), and the fixed order keeps any other
writer of the same rows (retention) from deadlocking with them.

Reads (L{readHistogram}, L{readTop}) take the counts and the partial
minutes at the range's edges from one C{REPEATABLE READ} snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from logsvc.query import Query
from logsvc.record import Record
from logsvc.search_syntax import And, Column, Node, Not, Or
from logsvc.store.postgres.connection import DAY
from logsvc.store.postgres.plan import selectHistogram, selectTop
from logsvc.store.rollup import (
    MINUTE,
    ROLLUPS,
    Counts,
    countRecords,
    countRows,
    rangeClause,
    rollupHistogram,
    rollupKey,
    rollupTop,
)

#: Where a transaction's counts wait for their upserts: a temporary table
#: of the session, emptied at each commit.  C{COPY} into it and one
#: C{INSERT ... SELECT} per table cost about half as much, in the node and
#: in the server, as the same rows sent as arrays to C{unnest}.
_STAGE = "logsvc_counts"

_STAGE_TABLE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (counts smallint NOT NULL, minute bigint NOT NULL,"
    " level smallint NOT NULL, value text, n bigint NOT NULL) ON COMMIT DELETE ROWS"
)

_TABLES = list(ROLLUPS)


def _upsert(table: str, column: str | None) -> str:
    return (
        f"INSERT INTO {table} AS counted ({rollupKey(column)}, n)"
        f" SELECT minute, level,{'' if column is None else ' value,'} n FROM {_STAGE}"
        f" WHERE counts = {_TABLES.index(table)} ORDER BY {'1, 2' if column is None else '1, 2, 3'}"
        f" ON CONFLICT ({rollupKey(column)}) DO UPDATE SET n = counted.n + excluded.n"
    )


_UPSERT = {table: _upsert(table, column) for table, (column, _) in ROLLUPS.items()}


def _text(value: str) -> str:
    # As the COPY stores it: PostgreSQL text holds no NUL character.
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def countStored(records: Iterable[Record]) -> Counts:
    """
    L{countRecords} of records as C{COPY} stores them.
    """
    return countRecords(records, clean=_text)


def addCounts(conn: psycopg.Connection[Any], counts: Counts) -> None:
    """
    Add C{counts} (negative for records deleted) to the tables, in the
    current transaction: every row copied in one C{COPY}, then each
    table's rows upserted in one statement, in key order.
    """
    if not any(counts.values()):
        return
    conn.execute(_STAGE_TABLE)
    with conn.cursor() as cursor, cursor.copy(f"COPY {_STAGE} FROM STDIN") as copy:
        for index, table in enumerate(_TABLES):
            if ROLLUPS[table][0] is None:
                for minute, level, n in counts[table]:
                    copy.write_row((index, minute, level, None, n))
            else:
                for row in counts[table]:
                    copy.write_row((index, *row))
    for table, rows in counts.items():
        if rows:
            conn.execute(_UPSERT[table])


def forgetDay(conn: psycopg.Connection[Any], day: int) -> None:
    """
    Delete the counts of day C{day} (since the epoch; its partition was
    dropped), in the current transaction.
    """
    low, high = day * DAY // MINUTE, (day + 1) * DAY // MINUTE
    for table in ROLLUPS:
        conn.execute(f"DELETE FROM {table} WHERE minute >= %s AND minute < %s", [low, high])


def takeOut(conn: psycopg.Connection[Any], deleted: list[tuple[int, int, str, str]]) -> None:
    """
    Take records deleted in the current transaction out of the counts (and
    the rows that fall to 0 with them).

    @param deleted: C{(ts, level, service, source)} of each.
    """
    if not deleted:
        return
    addCounts(conn, countRows(deleted, -1))
    low = min(ts for ts, _, _, _ in deleted) // MINUTE
    high = max(ts for ts, _, _, _ in deleted) // MINUTE + 1
    for table, (_, minutes) in ROLLUPS.items():
        conn.execute(
            f"DELETE FROM {table} WHERE minute >= %s AND minute < %s AND n = 0",
            [low - low % minutes, high],
        )


_OPS = {"=": "=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class _Inexact(Exception):
    pass


def _condition(node: Node) -> tuple[str, list[Any]]:
    if isinstance(node, (And, Or)):
        parts: list[str] = []
        params: list[Any] = []
        for child in node.children:
            sql, p = _condition(child)
            parts.append(f"({sql})")
            params.extend(p)
        if not parts:
            return ("true" if isinstance(node, And) else "false"), []
        return (" AND " if isinstance(node, And) else " OR ").join(parts), params
    if isinstance(node, Not):
        sql, params = _condition(node.child)
        return f"NOT ({sql})", params
    if not isinstance(node, Column) or node.name not in ("level", "service", "source"):
        raise _Inexact()
    if isinstance(node.value, str) and "\x00" in node.value:
        # No stored value holds NUL (it is stored as U+FFFD): the records decide.
        raise _Inexact()
    if node.op == "exists":
        return f"{node.name} <> ''", []
    if node.op == "prefix":
        return f"starts_with({node.name}, %s)", [node.value]
    if node.op not in _OPS:
        raise _Inexact()
    if node.name == "level" or node.op == "=":
        return f"{node.name} {_OPS[node.op]} %s", [node.value]
    # Strings compare by code point, as the matcher does.
    return f'{node.name} COLLATE "C" {_OPS[node.op]} %s', [node.value]


class PostgresRollupSQL:
    """
    L{logsvc.store.rollup.RollupSQL} on a PostgreSQL connection.
    """

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def condition(self, node: Node) -> tuple[str, list[Any]] | None:
        try:
            sql, params = _condition(node)
        except _Inexact:
            return None
        return ("", []) if sql == "true" else (sql, params)

    def sumSlots(
        self, table: str, low: int, high: int, where: tuple[str, list[Any]], originMinute: int, perSlot: int
    ) -> Iterable[tuple[int, int, int]]:
        clause, params = rangeClause(low, high, where, "%s")
        return self.conn.execute(
            f"SELECT (minute - %s) / %s, level, sum(n)::bigint FROM {table}{clause} GROUP BY 1, 2",
            [originMinute, perSlot, *params],
        ).fetchall()

    def sumValues(
        self, table: str, low: int | None, high: int | None, where: tuple[str, list[Any]], column: str
    ) -> Iterable[tuple[Any, int]]:
        clause, params = rangeClause(low, high, where, "%s")
        return self.conn.execute(f"SELECT {column}, sum(n)::bigint FROM {table}{clause} GROUP BY 1", params).fetchall()

    def recordsHistogram(self, query: Query, origin: int, width: int) -> dict[tuple[int, int], int]:
        return selectHistogram(self.conn, query, origin, width)

    def recordsTop(self, query: Query, column: str) -> dict[Any, int]:
        return selectTop(self.conn, query, column)

    def anyRecords(self, since: int, until: int) -> bool:
        found = self.conn.execute("SELECT 1 FROM logs WHERE ts >= %s AND ts < %s LIMIT 1", [since, until]).fetchone()
        return found is not None


def _inSnapshot(conn: psycopg.Connection[Any], read: Any) -> Any:
    # The counts and the records' edges from one snapshot.
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return read()


def readHistogram(conn: psycopg.Connection[Any], query: Query, origin: int, width: int) -> dict[tuple[int, int], int]:
    """
    L{selectHistogram}'s answer, from the counts where they can answer.
    """

    def read() -> dict[tuple[int, int], int]:
        counts = rollupHistogram(PostgresRollupSQL(conn), query, origin, width)
        return selectHistogram(conn, query, origin, width) if counts is None else counts

    return _inSnapshot(conn, read)  # type: ignore[no-any-return]


def readTop(conn: psycopg.Connection[Any], query: Query, column: str) -> dict[Any, int]:
    """
    L{selectTop}'s answer, from the counts where they can answer.
    """

    def read() -> dict[Any, int]:
        counts = rollupTop(PostgresRollupSQL(conn), query, column)
        return selectTop(conn, query, column) if counts is None else counts

    return _inSnapshot(conn, read)  # type: ignore[no-any-return]
