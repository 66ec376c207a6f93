"""
Retention's SQL on the SQLite store: deleting old records in small
transactions and measuring the data kept.  Runs on the store's writer thread
(L{logsvc.store.sqlite.store.SqliteStore.deleteOld}).

The record with the highest id is never deleted: ids are the rowid of an
C{INTEGER PRIMARY KEY} without C{AUTOINCREMENT}, so SQLite would hand an
emptied table's ids out again, and a reader's cursor or a tail's
C{Last-Event-ID} would then point at other records.  Freed pages go back to
the file system with C{PRAGMA incremental_vacuum} when the database was
created with C{auto_vacuum=INCREMENTAL} (every database logsvc creates); an
older file keeps its size but reuses the freed pages.
"""

from __future__ import annotations

import sqlite3

#: Rows one retention transaction deletes at most.
DEFAULT_CHUNK = 10_000

def usedBytes(conn: sqlite3.Connection) -> int:
    """
    @return: bytes of the pages that hold data in C{conn}'s database and
        the files attached to it (the search index's, on the store's
        writer); free pages are not counted: they are reused, or returned
        by incremental vacuum.
    """
    total = 0
    for _, name, _ in conn.execute("PRAGMA database_list").fetchall():
        if name == "temp":
            continue
        pageSize = conn.execute(f'PRAGMA "{name}".page_size').fetchone()[0]
        pages = conn.execute(f'PRAGMA "{name}".page_count').fetchone()[0]
        free = conn.execute(f'PRAGMA "{name}".freelist_count').fetchone()[0]
        total += (pages - free) * pageSize
    return int(total)


def deleteChunk(
    conn: sqlite3.Connection,
    *,
    cutoff: int | None,
    maxBytes: int | None,
    chunk: int = DEFAULT_CHUNK,
) -> int:
    """
    Delete at most C{chunk} records in one transaction: those with C{ts}
    before C{cutoff} (microseconds), else, while the data exceeds
    C{maxBytes}, the oldest by id.  Never the record with the highest id.
    Then return freed pages to the file system (incremental vacuum).

    Blocking: run it on the store's writer thread.

    @return: the number of records deleted.
    """
    deleted = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        top = conn.execute("SELECT max(id) FROM logs").fetchone()[0]
        if top is not None:
            if cutoff is not None:
                deleted += conn.execute(
                    "DELETE FROM logs WHERE id IN"
                    " (SELECT id FROM logs WHERE ts < ? AND id < ? ORDER BY ts LIMIT ?)",
                    (cutoff, top, chunk),
                ).rowcount
            if not deleted and maxBytes is not None and usedBytes(conn) > maxBytes:
                deleted += conn.execute(
                    "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE id < ? ORDER BY id LIMIT ?)",
                    (top, chunk),
                ).rowcount
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if deleted and conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        if free:
            # executescript steps the pragma to its end; execute() would free
            # a single page.
            conn.executescript(f"PRAGMA incremental_vacuum({int(free)});")
    return deleted
