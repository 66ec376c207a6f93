"""
An in-memory L{IStore}: the same contract as the SQLite store, answered
synchronously, matching with L{Query.matches} (the matcher the live tail
uses too).  For tests and for L{logsvc.testing}; nothing is durable.
"""

from __future__ import annotations

from typing import Any

import orjson
from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from logsvc.pagesize import pageCut, takeRows
from logsvc.query import Query
from logsvc.record import Record, renderRow
from logsvc.store.base import IStore, Row


@implementer(IStore)
class MemoryStore:
    """
    Records in a list; every Deferred it returns has already fired.
    """

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self._nextId = 1

    def append(self, records: list[Record]) -> Deferred[int]:
        first = self._nextId
        for offset, record in enumerate(records):
            self.rows.append((first + offset, *record))
        self._nextId += len(records)
        return succeed(first)

    def _page(self, query: Query) -> list[Row]:
        descending = query.order == "desc"
        found = [row for row in self.rows if query.matches(row)]
        found.sort(key=lambda row: (row[1], row[0]), reverse=descending)
        if query.cursor is not None:
            position = query.cursor
            if descending:
                found = [row for row in found if (row[1], row[0]) < position]
            else:
                found = [row for row in found if (row[1], row[0]) > position]
        return takeRows(found, query.limit)

    def query(self, query: Query) -> Deferred[list[Row]]:
        return succeed(self._page(query))

    def exportPage(self, query: Query) -> Deferred[tuple[bytes, int, tuple[int, int] | None]]:
        rows, more = pageCut(self._page(query), query.limit)
        body = b"".join(orjson.dumps(renderRow(row)) + b"\n" for row in rows)
        last = (rows[-1][1], rows[-1][0]) if rows and more else None
        return succeed((body, len(rows), last))

    def afterId(self, query: Query, lastId: int, limit: int) -> Deferred[list[Row]]:
        found = [row for row in self.rows if row[0] > lastId and query.matches(row)]
        return succeed(takeRows(found, limit - 1))

    def histogram(self, query: Query, origin: int, width: int) -> Deferred[dict[tuple[int, int], int]]:
        counts: dict[tuple[int, int], int] = {}
        for row in self.rows:
            if query.matches(row):
                key = ((row[1] - origin) // width, row[3])
                counts[key] = counts.get(key, 0) + 1
        return succeed(counts)

    def top(self, query: Query, column: str) -> Deferred[dict[Any, int]]:
        index = {"level": 3, "source": 4, "service": 5}[column]
        counts: dict[Any, int] = {}
        for row in self.rows:
            if query.matches(row):
                counts[row[index]] = counts.get(row[index], 0) + 1
        return succeed(counts)

    def timeRange(self, query: Query) -> Deferred[tuple[int, int] | None]:
        times = [row[1] for row in self.rows if query.matches(row)]
        return succeed((min(times), max(times)) if times else None)

    def count(self) -> Deferred[int]:
        return succeed(len(self.rows))

    #: See L{IStore.dataPath}: nothing is on disk.
    dataPath = None

    #: See L{IStore.available}.
    available = True

    def components(self) -> list[Any]:
        """
        See L{IStore.components}: nothing here can fail.
        """
        return []

    def deleteOld(self, *, cutoff: int | None, maxBytes: int | None, chunk: int) -> Deferred[int]:
        """
        See L{IStore.deleteOld}; sizes are L{dataSize}'s estimate.
        """
        doomed: list[Row] = []
        if cutoff is not None:
            doomed = [row for row in self.rows[:-1] if row[1] < cutoff][:chunk]
        if not doomed and maxBytes is not None:
            size = self._size()
            for row in self.rows[:-1][:chunk]:
                if size <= maxBytes:
                    break
                doomed.append(row)
                size -= _rowSize(row)
        gone = {row[0] for row in doomed}
        self.rows = [row for row in self.rows if row[0] not in gone]
        return succeed(len(doomed))

    def _size(self) -> int:
        return sum(_rowSize(row) for row in self.rows)

    def dataSize(self) -> Deferred[int]:
        """
        See L{IStore.dataSize}: an estimate, the UTF-8 bytes of the text
        columns plus 64 per record.
        """
        return succeed(self._size())


def _rowSize(row: Row) -> int:
    return 64 + sum(len(text.encode("utf-8")) for text in (row[4], row[5], row[6], row[7] or ""))
