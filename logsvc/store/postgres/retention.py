# -*- test-case-name: tests.test_store_postgres -*-
"""
Retention on PostgreSQL: whole daily partitions dropped, the one that
straddles the cutoff (and the default partition) trimmed by C{DELETE} in
chunks, the oldest partitions dropped while the data exceeds a size.  One
node at a time: a node that cannot take the retention advisory lock
deletes nothing this turn (another node is at it).

The counts per minute (L{logsvc.store.postgres.rollup}) lose what is
deleted in the same transaction: a dropped day's counts are deleted, trimmed
records are returned by their C{DELETE} and taken out.  A step holds the
commit counter (as a writer does) so that writers, which take it first too,
wait for it rather than meet it in the counts' rows.

Ids come from the commit counter, never from the rows, so deleting any
record (the newest too) never makes an id be handed out again.
"""

from __future__ import annotations

from typing import Any

import psycopg

from logsvc.store.postgres.connection import DAY, RETENTION_LOCK, partitionDay
from logsvc.store.postgres.rollup import forgetDay, takeOut


def partitions(conn: psycopg.Connection[Any]) -> list[tuple[str, int | None]]:
    """
    @return: C{(name, day)} of every partition of C{logs}, dated ones by
        day, then the default partition (day L{None}).
    """
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'logs'::regclass"
    ).fetchall()
    dated = sorted(((name, partitionDay(name)) for (name,) in rows if partitionDay(name) is not None),
                   key=lambda p: p[1] or 0)
    return dated + [(name, None) for (name,) in rows if partitionDay(name) is None]


def dataSize(conn: psycopg.Connection[Any]) -> int:
    """
    @return: bytes of every partition of C{logs} with its indexes and TOAST.
    """
    row = conn.execute(
        "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits"
        " WHERE inhparent = 'logs'::regclass"
    ).fetchone()
    return int(row[0]) if row else 0


def _delete(conn: psycopg.Connection[Any], name: str, select: str, params: list[Any]) -> int:
    """
    Delete the rows of partition C{name} that C{select} (a C{SELECT ctid})
    names, and take them out of the counts.

    @return: how many.
    """
    deleted = conn.execute(
        f"DELETE FROM {name} WHERE ctid = ANY(ARRAY({select})) RETURNING ts, level, service, source", params
    ).fetchall()
    takeOut(conn, deleted)
    return len(deleted)


def _trim(conn: psycopg.Connection[Any], name: str, cutoff: int, chunk: int) -> int:
    return _delete(conn, name, f"SELECT ctid FROM {name} WHERE ts < %s LIMIT %s", [cutoff, chunk])


def _drop(conn: psycopg.Connection[Any], name: str, day: int) -> int:
    row = conn.execute(f"SELECT count(*) FROM {name}").fetchone()
    conn.execute(f"DROP TABLE {name}")
    forgetDay(conn, day)
    return int(row[0]) if row else 0


def deleteOld(conn: psycopg.Connection[Any], *, cutoff: int | None, maxBytes: int | None, chunk: int) -> int:
    """
    One retention step (see L{logsvc.store.base.IStore.deleteOld}), in one
    transaction on C{conn} (an autocommit connection).

    @return: the records deleted (0 when another node holds the lock).
    """
    deleted = 0
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '5s'")
        got = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", [RETENTION_LOCK]).fetchone()
        if not got or not got[0]:
            return 0
        conn.execute("SELECT last_id FROM logsvc_position FOR UPDATE")
        parts = partitions(conn)
        if cutoff is not None:
            for name, day in parts:
                if day is not None and (day + 1) * DAY <= cutoff:
                    deleted += _drop(conn, name, day)
                elif day is None or day * DAY < cutoff:
                    deleted += _trim(conn, name, cutoff, chunk)
        if not deleted and maxBytes is not None and dataSize(conn) > maxBytes:
            dated = [name for name, day in parts if day is not None]
            newest = conn.execute("SELECT max(ts) FROM logs").fetchone()
            newestDay = None if not newest or newest[0] is None else newest[0] // DAY
            oldest = [(name, day) for name, day in parts if day is not None and newestDay is not None and day < newestDay]
            for name, day in oldest:
                # Empty days before the newest are dropped on the way.
                deleted += _drop(conn, name, day)
                if deleted:
                    break
            else:
                # Everything is in one day (or the default partition): the
                # oldest records by time, a chunk at a time.
                for name in [*dated, *[n for n, d in parts if d is None]]:
                    deleted += _delete(conn, name, f"SELECT ctid FROM {name} ORDER BY ts LIMIT %s", [chunk])
                    if deleted:
                        break
    return deleted
