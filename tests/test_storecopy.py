"""
Tests for L{logsvc.storecopy}: a store copied into another keeps every
record's values, resumes after an interruption without a duplicate or a
gap, and checks the count; SQLite to PostgreSQL and back.
"""

from __future__ import annotations

import io
import os
from collections.abc import Generator
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase

from logsvc.query import Query
from logsvc.store.choose import openStore
from logsvc.storecopy import CopyError, copyStore, readState
from tests.pgtests import makeDatabase
from tests.storetests import T0, record

RECORDS = [
    record(f"message {n}", ts=T0 + n * 1000, level=n % 8, source=f"h{n % 3}", service=f"s{n % 2}",
           fields={"n": n, "tag": "x" * (n % 5)} if n % 4 else None, received=T0 + n)
    for n in range(250)
]


class CopyTests(TestCase):
    timeout = 120

    @inlineCallbacks
    def fill(self, db: str, records: list[Any]) -> Generator[Deferred[Any], Any, None]:
        store = openStore(db, reactor=reactor)
        store.startService()
        for start in range(0, len(records), 60):
            yield store.append(records[start : start + 60])
        yield store.stopService()

    @inlineCallbacks
    def contents(self, db: str) -> Generator[Deferred[Any], Any, list[tuple[Any, ...]]]:
        store = openStore(db, reactor=reactor)
        store.startService()
        rows = yield store.afterId(Query(limit=None), 0, 100_000)
        yield store.stopService()
        return [tuple(row[1:]) for row in rows]

    @inlineCallbacks
    def roundTrip(self, source: str, dest: str) -> Generator[Deferred[Any], Any, None]:
        yield self.fill(source, RECORDS)
        state = self.mktemp()
        out = io.StringIO()
        copied = yield copyStore(source, dest, reactor=reactor, progress=out, statePath=state, batch=40)
        self.assertEqual(copied, len(RECORDS))
        found = yield self.contents(dest)
        self.assertEqual(found, [tuple(r) for r in RECORDS])
        self.assertIn("250/250 (100%)", out.getvalue())
        self.assertFalse(os.path.exists(state))

    def test_sqliteToPostgres(self) -> Deferred[None]:
        """SQLite to PostgreSQL: every record, every value, in order."""
        return self.roundTrip(self.mktemp() + ".sqlite3", makeDatabase(self))

    def test_postgresToSqlite(self) -> Deferred[None]:
        """PostgreSQL to SQLite: every record, every value, in order."""
        return self.roundTrip(makeDatabase(self), self.mktemp() + ".sqlite3")

    @inlineCallbacks
    def test_resumes(self) -> Generator[Deferred[Any], Any, None]:
        """
        A copy interrupted after a batch committed but before its state was
        written resumes with neither a duplicate nor a gap.
        """
        import logsvc.storecopy as module

        source, dest = self.mktemp() + ".sqlite3", makeDatabase(self)
        yield self.fill(source, RECORDS)
        state = self.mktemp()
        real = module.writeState
        writes = []

        def interrupted(path: str, sourceId: int, destId: int, copied: int) -> None:
            writes.append(copied)
            if len(writes) == 4:
                # The batch is committed; the process dies before saving it.
                raise KeyboardInterrupt()
            real(path, sourceId, destId, copied)

        self.patch(module, "writeState", interrupted)
        with self.assertRaises(KeyboardInterrupt):
            yield copyStore(source, dest, reactor=reactor, progress=io.StringIO(), statePath=state, batch=40)
        self.assertEqual(readState(state)[2], 80)
        self.patch(module, "writeState", real)
        copied = yield copyStore(source, dest, reactor=reactor, progress=io.StringIO(), statePath=state, batch=40)
        self.assertEqual(copied, len(RECORDS))
        found = yield self.contents(dest)
        self.assertEqual(found, [tuple(r) for r in RECORDS])

    @inlineCallbacks
    def test_destinationNotEmpty(self) -> Generator[Deferred[Any], Any, None]:
        """A new copy into a store that holds records is refused, however few they are."""
        source, dest = self.mktemp() + ".sqlite3", self.mktemp() + ".sqlite3"
        yield self.fill(source, RECORDS[:10])
        yield self.fill(dest, RECORDS[:5])
        with self.assertRaises(CopyError):
            yield copyStore(source, dest, reactor=reactor, progress=io.StringIO(), statePath=self.mktemp(), batch=40)
