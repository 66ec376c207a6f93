# -*- test-case-name: tests.test_store_postgres -*-
"""
C{--db}: a plain path keeps the embedded SQLite store; a C{postgresql://}
(or C{postgres://}) URL selects the shared PostgreSQL store.
"""

from __future__ import annotations

from typing import Any


def isPostgresURL(db: str) -> bool:
    """
    @return: whether C{--db} names a PostgreSQL database rather than a
        SQLite file.
    """
    return db.startswith(("postgresql://", "postgres://"))


def checkDatabase(db: str) -> str | None:
    """
    @return: a one-line error when C{db} cannot be used by this
        installation (a PostgreSQL URL without psycopg installed), else
        L{None}.
    """
    if not isPostgresURL(db):
        return None
    from logsvc.store.postgres import missingDriver

    return missingDriver()


def displayDatabase(db: str) -> str:
    """
    @return: C{db} fit for logs and C{/health}: a URL without its password.
    """
    if not isPostgresURL(db):
        return db
    from logsvc.store.postgres.connection import displayURL

    return displayURL(db)


def openStore(
    db: str, *, reactor: Any, fsync: str = "normal", searchIndex: bool = True, searchTimeout: float | None = None
) -> Any:
    """
    @return: the (not yet started) store C{--db} names: an
        L{logsvc.store.base.IStore} that is also an C{IService}.
    """
    if isPostgresURL(db):
        from logsvc.store.postgres.store import PostgresStore

        return PostgresStore(db, reactor=reactor, searchTimeout=searchTimeout)
    from logsvc.store.sqlite.store import SqliteStore

    return SqliteStore(db, reactor=reactor, fsync=fsync, searchIndex=searchIndex, searchTimeout=searchTimeout)
