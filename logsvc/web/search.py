"""
C{GET /logs}: one page of matching records and the cursor of the next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.web.server import Request

from logsvc.pagesize import pageCut
from logsvc.query import FILTER_PARAMETERS, Query, QueryError, encodeCursor, parseQuery
from logsvc.record import renderRow
from logsvc.store.base import IStore, Row
from logsvc.times import nowMicros
from logsvc.web.common import renderAsync, writeJSON
from logsvc.web.errors import errorBody
from logsvc.web.export import NDJSONExport, wantsNDJSON

#: The parameters of C{GET /logs}; any other is a 400 (besides C{field.KEY}).
SEARCH_PARAMETERS = FILTER_PARAMETERS | {"limit", "order", "cursor", "format"}


def pageBody(query: Query, rows: list[Row]) -> dict[str, Any]:
    """
    @param rows: up to C{query.limit + 1} rows from the store, fewer when
        they passed the page's byte budget (L{pageCut}).
    @return: C{{"logs": [...], "next": cursor-or-null}}; C{next} is set only
        when another page may exist, and carries the instant the query's
        relative times were resolved at.
    """
    nextCursor = None
    rows, more = pageCut(rows, query.limit)
    if more:
        last = rows[-1]
        nextCursor = encodeCursor(last[1], last[0], query.resolvedAt)
    return {"logs": [renderRow(row) for row in rows], "next": nextCursor}


class LogsSearch:
    """
    The C{GET /logs} handler: a page of JSON, or every match as NDJSON
    (L{logsvc.web.export}).

    @param now: the current time in microseconds, for relative times.
    """

    def __init__(self, store: IStore, *, now: Callable[[], int] = nowMicros) -> None:
        self.store = store
        self.export = NDJSONExport(store)
        self.now = now

    def render(self, request: Request) -> object:
        export = wantsNDJSON(request)
        try:
            query = parseQuery(
                request.args or {}, allowUnlimited=export, accepted=SEARCH_PARAMETERS, now=self.now
            )
        except QueryError as e:
            return errorBody(request, 400, str(e), **e.details())
        if export:
            return self.export.render(request, query)
        d = self.store.query(query)
        d.addCallback(lambda rows: writeJSON(request, 200, pageBody(query, rows)))
        return renderAsync(request, d)


