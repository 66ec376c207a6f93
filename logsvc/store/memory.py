"""
An in-memory L{IStore}: the same contract as the SQLite store, answered
synchronously.  For tests and for L{logsvc.testing}; nothing is durable.
"""

from __future__ import annotations

from typing import Any

import orjson
from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from logsvc.query import Query
from logsvc.record import Record
from logsvc.store.base import IStore, Row


def _fieldValue(fields: str | None, name: str) -> Any:
    if not fields:
        return None
    return orjson.loads(fields).get(name)


def _sqlEqual(actual: Any, expected: str) -> bool:
    # Mirrors SQLite: json_extract() yields a typed value, compared to text.
    return isinstance(actual, str) and actual == expected


def matches(query: Query, row: Row) -> bool:
    """
    @return: True when C{row} passes every filter of C{query} (not its cursor).
    """
    _, ts, _, level, source, service, message, fields = row
    if query.since is not None and ts < query.since:
        return False
    if query.until is not None and ts >= query.until:
        return False
    if query.level is not None and level > query.level:
        return False
    if query.sources and source not in query.sources:
        return False
    if query.services and service not in query.services:
        return False
    lowered = message.lower()
    for word in query.words():
        if word.lower() not in lowered:
            return False
    for name, value in query.fields:
        if not _sqlEqual(_fieldValue(fields, name), value):
            return False
    return True


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

    def query(self, query: Query) -> Deferred[list[Row]]:
        descending = query.order == "desc"
        found = [row for row in self.rows if matches(query, row)]
        found.sort(key=lambda row: (row[1], row[0]), reverse=descending)
        if query.cursor is not None:
            position = query.cursor
            if descending:
                found = [row for row in found if (row[1], row[0]) < position]
            else:
                found = [row for row in found if (row[1], row[0]) > position]
        if query.limit is not None:
            found = found[: query.limit + 1]
        return succeed(found)

    def count(self) -> Deferred[int]:
        return succeed(len(self.rows))
