"""
C{GET /logs} with C{Accept: application/x-ndjson} (or C{format=ndjson}):
every matching record, one JSON object per line, streamed.

There is no implicit limit (an explicit C{limit} still caps the count).  The
records are read in keyset pages (C{PAGE} records each, on the store's reader
threads, rendered to JSON there) by an L{IPushProducer} registered on the
request: while the client is behind, one page is read ahead and held and no
more, so memory stays at about two pages however many records match, and a client that disconnects
stops the reads.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from logsvc.query import Query
from logsvc.store.base import IStore
from logsvc.web.common import isGone

NDJSON_TYPE = b"application/x-ndjson"

#: Records per store read.
PAGE = 10_000


def wantsNDJSON(request: Request) -> bool:
    """
    @return: True when C{request} asks for an NDJSON export (its C{Accept}
        header names NDJSON, or C{format=ndjson}).
    """
    accept = (request.getHeader(b"accept") or b"").lower()
    if b"ndjson" in accept or b"jsonlines" in accept:
        return True
    return (request.args or {}).get(b"format", [b""])[-1].lower() in (b"ndjson", b"jsonl")


@implementer(IPushProducer)
class ExportProducer:
    """
    Streams one export into one request.

    @ivar written: records written so far.
    """

    log = Logger()

    def __init__(self, store: IStore, request: Request, query: Query, *, page: int = PAGE) -> None:
        self.store = store
        self.request = request
        self.page = page
        #: Records still allowed by an explicit limit, or None.
        self.remaining = query.limit
        self.query = replace(query, limit=page)
        self.written = 0
        self._paused = False
        self._reading = False
        self._stopped = False
        self._done = False
        self._held: tuple[bytes, int, tuple[int, int] | None] | None = None

    def start(self) -> None:
        """
        Send the headers and begin reading.
        """
        self.request.setHeader(b"content-type", NDJSON_TYPE)
        self.request.registerProducer(self, True)
        self.request.notifyFinish().addErrback(lambda _: self.stopProducing())
        self._readNext()

    def _readNext(self) -> None:
        # While the client is behind, one page is read ahead and held, so the
        # next write need not wait for the store.
        if self._stopped or self._reading or self._done or self._held is not None:
            return
        query = self.query
        if self.remaining is not None:
            query = replace(query, limit=min(self.page, self.remaining))
        self._reading = True
        self.store.exportPage(query).addCallbacks(self._gotPage, self._failed)

    def _gotPage(self, result: tuple[bytes, int, tuple[int, int] | None]) -> None:
        self._reading = False
        if self._stopped or isGone(self.request):
            return
        if self._paused:
            self._held = result
            return
        self._write(result)

    def _write(self, result: tuple[bytes, int, tuple[int, int] | None]) -> None:
        body, count, last = result
        if body:
            self.request.write(body)
        self.written += count
        if self.remaining is not None:
            self.remaining -= count
        if last is None or (self.remaining is not None and self.remaining <= 0):
            self._finish()
            return
        self.query = self.query.after(*last)
        self._readNext()

    def _failed(self, failure: Failure) -> None:
        self._reading = False
        self.log.failure("export failed after {n} records", failure=failure, n=self.written)
        self._done = True
        if not isGone(self.request):
            # The status line is gone already: cut the stream short, so the
            # client sees an incomplete response rather than a clean end.
            self.request.unregisterProducer()
            self.request.channel.loseConnection()

    def _finish(self) -> None:
        self._done = True
        self.request.unregisterProducer()
        self.request.finish()

    # IPushProducer

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        held, self._held = self._held, None
        if held is not None and not self._stopped and not isGone(self.request):
            self._write(held)
        else:
            self._readNext()

    def stopProducing(self) -> None:
        self._stopped = True


class NDJSONExport:
    """
    The C{GET /logs} NDJSON handler.
    """

    def __init__(self, store: IStore, *, page: int = PAGE) -> None:
        self.store = store
        self.page = page

    def render(self, request: Request, query: Query) -> Any:
        """
        Stream C{query}'s records (parsed with C{allowUnlimited}).
        """
        ExportProducer(self.store, request, query, page=self.page).start()
        return NOT_DONE_YET
