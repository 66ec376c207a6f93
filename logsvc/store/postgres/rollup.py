# -*- test-case-name: tests.test_store_rollup -*-
"""
The counts per minute (L{logsvc.store.rollup}) in PostgreSQL: six tables
beside C{logs} (made by L{logsvc.store.postgres.connection.createSchema}).

Kept in the transactions that change the records, so the counts agree with
the records in every snapshot: the writer adds each batch's counts after its
C{COPY} (L{addCounts}), retention takes out what it deletes or drops
(L{logsvc.store.postgres.retention}).  Each batch is counted in Python
by (minute, level, service, source), copied into a temporary table and
summed from it into each table by one statement, in key order; several
nodes' writers take turns at the commit counter anyway
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
from logsvc.search_syntax import And, Column, Node, Not, Or
from logsvc.store.postgres.connection import DAY, bucketSQL
from logsvc.store.postgres.plan import selectHistogram, selectTop
from logsvc.store.rollup import (
    MINUTE,
    ROLLUPS,
    Keys,
    countKeys,
    rangeClause,
    rollupHistogram,
    rollupKey,
    rollupTop,
)

#: Where a transaction's counts wait for their upserts: a temporary table
#: of the session, emptied at each commit, holding the records counted by
#: C{(minute, level, service, source)}.  One C{COPY} into it and one
#: C{INSERT ... SELECT ... GROUP BY} per table cost the node a third of
#: what the six tables' rows summed in Python and sent as arrays to
#: C{unnest} did, and the server half.
_STAGE = "logsvc_counts"

_STAGE_TABLE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (minute bigint NOT NULL, level smallint NOT NULL,"
    " service text NOT NULL, source text NOT NULL, n bigint NOT NULL) ON COMMIT DELETE ROWS"
)


def _upsert(table: str, column: str | None, minutes: int) -> str:
    # ORDER BY: every writer updates rows in one order (the key's), so two
    # transactions updating the same rows cannot deadlock.
    key = "1, 2" if column is None else "1, 2, 3"
    return (
        f"INSERT INTO {table} AS counted ({rollupKey(column)}, n)"
        f" SELECT {bucketSQL('minute', minutes)}, level,{'' if column is None else f' {column},'} sum(n)"
        f" FROM {_STAGE} GROUP BY {key} ORDER BY {key}"
        f" ON CONFLICT ({rollupKey(column)}) DO UPDATE SET n = counted.n + excluded.n"
    )


_UPSERT = [_upsert(table, column, minutes) for table, (column, minutes) in ROLLUPS.items()]


def _text(value: str) -> str:
    # As the COPY stores it: PostgreSQL text holds no NUL character.
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def addCounts(conn: psycopg.Connection[Any], keys: Keys, sign: int = 1) -> None:
    """
    Add records counted by key to the tables, in the current transaction.

    @param keys: L{countKeys} of the records, their services and sources
        as C{COPY} stores them (or will: NUL is replaced here).
    @param sign: 1 for records stored, -1 for records deleted.
    """
    if not keys:
        return
    conn.execute(_STAGE_TABLE)
    with conn.cursor() as cursor, cursor.copy(f"COPY {_STAGE} FROM STDIN") as copy:
        for (minute, level, service, source), n in keys.items():
            copy.write_row((minute, level, _text(service), _text(source), sign * n))
    for statement in _UPSERT:
        conn.execute(statement)
    # Emptied now, not only at commit: a transaction may add counts again
    # (retention trims several partitions in one step).
    conn.execute(f"DELETE FROM {_STAGE}")


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
    addCounts(conn, countKeys(deleted), -1)
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
