"""
The embedded store: records in one SQLite file, a full-text index beside it.

Modules, leaf first: L{connection} (connections, schema, INSERT),
L{helper} (the helper threads' lifetime), L{checkpointer} (WAL
checkpoints), L{searchindex} (the FTS5 index and its thread), L{plan}
(queries translated to SQL), L{retention} (deleting old records), L{store}
(L{SqliteStore}, the service that owns the threads).
"""

from __future__ import annotations

from logsvc.store.sqlite.connection import FSYNC_MODES, connect, createSchema, stopMemoryStatistics
from logsvc.store.sqlite.store import SqliteStore

__all__ = ["FSYNC_MODES", "SqliteStore", "connect", "createSchema", "stopMemoryStatistics"]
