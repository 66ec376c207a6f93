"""
C{GET /logs}: one page of matching records and the cursor of the next.
"""

from __future__ import annotations

from typing import Any

from twisted.web.server import Request

from logsvc.query import Query, QueryError, encodeCursor, parseQuery
from logsvc.record import renderRow
from logsvc.store.base import IStore, Row
from logsvc.web.common import errorBody, renderAsync, writeJSON


def pageBody(query: Query, rows: list[Row]) -> dict[str, Any]:
    """
    @param rows: up to C{query.limit + 1} rows from the store.
    @return: C{{"logs": [...], "next": cursor-or-null}}; C{next} is set only
        when another page exists.
    """
    nextCursor = None
    if query.limit is not None and len(rows) > query.limit:
        rows = rows[: query.limit]
        last = rows[-1]
        nextCursor = encodeCursor(last[1], last[0])
    return {"logs": [renderRow(row) for row in rows], "next": nextCursor}


class LogsSearch:
    """
    The C{GET /logs} handler.
    """

    def __init__(self, store: IStore) -> None:
        self.store = store

    def render(self, request: Request) -> object:
        try:
            query = parseQuery(request.args or {})
        except QueryError as e:
            return errorBody(request, 400, str(e), param=e.param)
        d = self.store.query(query)
        d.addCallback(lambda rows: writeJSON(request, 200, pageBody(query, rows)))
        return renderAsync(request, d)


