"""
Talk to logsvc from Twisted code, over HTTP with treq.

    client = LogClient("http://127.0.0.1:8080")
    accepted = yield client.send({"message": "hello", "level": "warning"})
    page = yield client.query(level="error", service="api", limit=50)
    for record in page.logs: ...
    more = yield client.query(level="error", service="api", cursor=page.next)

Failures are one of two exceptions, so a caller can always tell them apart:
L{LogServiceError} (the server answered and said no: status and its error
text) and L{LogServiceUnreachable} (no answer: the connection failed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson
import treq
from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks, maybeDeferred
from twisted.internet.error import ConnectError, ConnectionClosed, DNSLookupError, TimeoutError
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed


class LogServiceError(Exception):
    """
    The server answered with an error.

    @ivar status: the HTTP status code.
    @ivar message: the server's error text (its JSON C{error}), or the body.
    @ivar body: the decoded JSON body, or L{None} when it was not JSON.
    """

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.body = body


class LogServiceUnreachable(Exception):
    """
    The server could not be reached or the connection broke before an answer.

    @ivar reason: the underlying exception.
    """

    def __init__(self, reason: BaseException) -> None:
        super().__init__(f"log service unreachable: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class Page:
    """
    One page of a query.

    @ivar logs: the records, as dicts (see the API contract).
    @ivar next: the cursor of the next page, or L{None} when there is none.
    """

    logs: list[dict[str, Any]]
    next: str | None


_NETWORK_ERRORS = (ConnectError, DNSLookupError, TimeoutError, ConnectionClosed, ResponseFailed)


def _timeArg(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def encodeFilters(filters: Mapping[str, Any]) -> list[tuple[str, str]]:
    """
    Turn keyword filters into query arguments: lists repeat the argument,
    C{datetime}s become RFC 3339, C{fields={"k": "v"}} becomes C{field.k=v},
    L{None} values are left out.
    """
    args: list[tuple[str, str]] = []
    for key, value in filters.items():
        if value is None:
            continue
        if key == "fields":
            for name, expected in value.items():
                args.append((f"field.{name}", str(expected)))
        elif isinstance(value, (list, tuple, set, frozenset)):
            args.extend((key, str(v)) for v in value)
        elif key in ("since", "until"):
            args.append((key, _timeArg(value)))
        else:
            args.append((key, str(value)))
    return args


def _tlsClient(caFile: str | None, tlsPolicy: Any) -> HTTPClient:
    from twisted.internet import reactor, ssl
    from twisted.web.client import Agent, BrowserLikePolicyForHTTPS

    if tlsPolicy is None:
        assert caFile is not None
        with open(caFile, "rb") as f:
            tlsPolicy = BrowserLikePolicyForHTTPS(trustRoot=ssl.Certificate.loadPEM(f.read()))
    return HTTPClient(Agent(reactor, contextFactory=tlsPolicy))


class LogClient:
    """
    An asynchronous client of one logsvc server.

    @param baseURL: e.g. C{"http://127.0.0.1:8080"} (or C{https://...}).
    @param httpClient: a treq L{HTTPClient}; the default uses the global
        reactor.  Tests pass L{logsvc.testing.stubClient}'s.
    @param token: a bearer token, sent with every request when given.
    @param caFile: for C{https://}: a PEM file of the CA (or self-signed
        certificate) to trust instead of the platform's trust store.
    @param tlsPolicy: for C{https://}: an L{IPolicyForHTTPS} (e.g.
        L{twisted.web.client.BrowserLikePolicyForHTTPS}) for full control.
    """

    def __init__(
        self,
        baseURL: str,
        *,
        httpClient: HTTPClient | None = None,
        token: str | None = None,
        caFile: str | None = None,
        tlsPolicy: Any = None,
    ) -> None:
        self.baseURL = baseURL.rstrip("/")
        if httpClient is None and (caFile is not None or tlsPolicy is not None):
            httpClient = _tlsClient(caFile, tlsPolicy)
        self._http: Any = httpClient if httpClient is not None else treq
        self._headers: dict[bytes, list[bytes]] = {}
        if token is not None:
            self._headers[b"authorization"] = [b"Bearer " + token.encode("ascii")]

    def _url(self, path: str, args: list[tuple[str, str]] | None = None) -> str:
        url = self.baseURL + path
        if args:
            url += "?" + urlencode(args)
        return url

    @inlineCallbacks
    def _request(self, method: str, url: str, **kw: Any) -> Any:
        headers = dict(self._headers)
        headers.update(kw.pop("headers", {}))
        try:
            response = yield self._http.request(method, url, headers=headers, **kw)
            body = yield treq.content(response)
        except _NETWORK_ERRORS as e:
            raise LogServiceUnreachable(e)
        try:
            decoded = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            decoded = None
        if response.code >= 400:
            message = decoded.get("error") if isinstance(decoded, dict) else None
            raise LogServiceError(
                response.code, message or body.decode("utf-8", "replace") or response.phrase.decode(), decoded
            )
        return decoded

    def send(self, records: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> Deferred[int]:
        """
        Store one record (a mapping) or several (an iterable of mappings), all
        or nothing.

        @return: a Deferred firing with the number of records accepted, once
            they are durable; or failing with L{LogServiceError} /
            L{LogServiceUnreachable}.
        """
        if isinstance(records, Mapping):
            body = orjson.dumps(dict(records), default=str)
            kind = b"application/json"
        else:
            body = b"\n".join(orjson.dumps(dict(r), default=str) for r in records) + b"\n"
            kind = b"application/x-ndjson"
        d = self._request("POST", self._url("/logs"), data=body, headers={b"content-type": [kind]})
        return d.addCallback(lambda result: result["accepted"])

    def query(self, **filters: Any) -> Deferred[Page]:
        """
        Fetch one page of records matching C{filters} (C{since}, C{until},
        C{level}, C{source}, C{service}, C{q}, C{limit}, C{order}, C{cursor},
        C{fields}; see docs/api.rst).

        @return: a Deferred firing with a L{Page}.
        """
        d = self._request("GET", self._url("/logs", encodeFilters(filters)))
        return d.addCallback(lambda body: Page(body["logs"], body["next"]))

    def health(self) -> Deferred[dict[str, Any]]:
        """
        @return: a Deferred firing with the server's C{/health} object.
        """
        return self._request("GET", self._url("/health"))

    def query_pages(
        self, onPage: Callable[[Page], object], **filters: Any
    ) -> Deferred[int]:
        """
        Walk every page of C{filters} (as for L{query}; C{limit} is the page
        size), calling C{onPage} with each L{Page} in order.  When C{onPage}
        returns a Deferred, the next page is fetched once it fires.

        @return: a Deferred firing with the number of records seen, or
            failing as L{query} fails (or as C{onPage} does).
        """

        @inlineCallbacks
        def walk() -> Any:
            seen = 0
            cursor = filters.pop("cursor", None)
            while True:
                page = yield self.query(**filters, cursor=cursor)
                seen += len(page.logs)
                yield maybeDeferred(onPage, page)
                if page.next is None:
                    return seen
                cursor = page.next

        return walk()  # type: ignore[no-any-return]

    async def query_all(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """
        Every record matching C{filters}, page by page (C{limit} is the page
        size), as an async iterator for Twisted coroutines::

            async def errors(client):
                async for record in client.query_all(level="error", order="asc"):
                    ...
            Deferred.fromCoroutine(errors(client))

        A page is fetched only when the previous one is used up.
        """
        cursor = filters.pop("cursor", None)
        while True:
            page = await self.query(**filters, cursor=cursor)
            for record in page.logs:
                yield record
            if page.next is None:
                return
            cursor = page.next

    def stats(self, **filters: Any) -> Deferred[dict[str, Any]]:
        """
        Counts over time (C{GET /stats}): the L{query} filters plus
        C{interval} (e.g. C{"1h"}), C{tz}, or C{by="service"|"source"|"level"}
        (with C{limit}) for top values.

        @return: a Deferred firing with the server's JSON object (see
            docs/api.rst), or failing as L{query} fails.
        """
        return self._request("GET", self._url("/stats", encodeFilters(filters)))

    def tail(
        self,
        onRecord: Callable[[dict[str, Any]], object],
        *,
        sinceId: int | None = None,
        clock: Any = None,
        reconnectDelay: float = 0.5,
        maxReconnectDelay: float = 10.0,
        **filters: Any,
    ) -> Tail:
        """
        Follow the records matching C{filters} (as for L{query}) live:
        C{onRecord} is called with each one, in id order, once.

        The tail reconnects by itself when the connection drops or the server
        cuts it off, resuming after the last id received, so no record is
        missed or repeated; waits between attempts double from
        C{reconnectDelay} up to C{maxReconnectDelay} seconds.

        @param sinceId: start after this record id (replaying what was
            committed since); by default only records committed from now.
        @return: a L{Tail}; C{tail.stop()} ends it.
        """
        if clock is None:
            from twisted.internet import reactor as clock
        follower = Tail(self, onRecord, encodeFilters(filters), sinceId, clock, reconnectDelay, maxReconnectDelay)
        follower._connect()
        return follower


class _EventStream(Protocol):
    """
    Parse a Server-Sent Events body into C{(event, id, data)} calls; an id
    without data is reported as event C{"position"}.
    """

    def __init__(self, onEvent: Callable[[str, str | None, str], None]) -> None:
        self.onEvent = onEvent
        self.done: Deferred[None] = Deferred()
        self._buffer = b""
        self._event = "message"
        self._id: str | None = None
        self._data: list[str] = []

    def dataReceived(self, data: bytes) -> None:
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if not line:
                if self._data:
                    self.onEvent(self._event, self._id, "\n".join(self._data))
                elif self._id is not None:
                    # An id alone names a position to resume from.
                    self.onEvent("position", self._id, "")
                self._event, self._id, self._data = "message", None, []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                self._data.append(value)
            elif name == "id":
                self._id = value
            elif name == "event":
                self._event = value

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.done.callback(None)


class Tail:
    """
    A running L{LogClient.tail}.

    @ivar lastId: the id of the last record delivered (or the position the
        server named), or L{None}.
    @ivar done: a Deferred firing with L{None} once stopped, or failing
        with L{LogServiceError} when the server refuses the tail (a bad
        filter, a missing token), which ends it.
    """

    log = Logger()

    def __init__(
        self,
        client: LogClient,
        onRecord: Callable[[dict[str, Any]], object],
        args: list[tuple[str, str]],
        sinceId: int | None,
        clock: Any,
        delay: float,
        maxDelay: float,
    ) -> None:
        self._client = client
        self._onRecord = onRecord
        self._args = args
        self.lastId = sinceId
        self._clock = clock
        self._initialDelay = delay
        self._delay = delay
        self._maxDelay = maxDelay
        self._pending: Deferred[Any] | None = None
        self._stream: _EventStream | None = None
        self._retry: Any = None
        self.stopped = False
        self.connected = False
        self.done: Deferred[None] = Deferred()

    def stop(self) -> Deferred[None]:
        """
        End the tail: the connection is closed and no further record is
        delivered.

        @return: L{done}.
        """
        if not self.stopped:
            self.stopped = True
            if self._retry is not None and self._retry.active():
                self._retry.cancel()
            if self._pending is not None:
                self._pending.cancel()
            if self._stream is not None and self._stream.transport is not None:
                self._stream.transport.stopProducing()  # type: ignore[attr-defined]
            if not self.done.called:
                self.done.callback(None)
        return self.done

    def _connect(self) -> None:
        if self.stopped:
            return
        args = list(self._args)
        headers = dict(self._client._headers)
        headers[b"accept"] = [b"text/event-stream"]
        if self.lastId is not None:
            headers[b"last-event-id"] = [str(self.lastId).encode("ascii")]
        d = self._client._http.request(
            "GET", self._client._url("/logs/tail", args), headers=headers, unbuffered=True
        )
        self._pending = d
        d.addCallbacks(self._responded, self._failed)

    def _responded(self, response: Any) -> Any:
        self._pending = None
        if self.stopped:
            response.deliverBody(Protocol())
            return None
        if response.code >= 400:
            return treq.content(response).addCallback(self._refused, response.code)
        self.connected = True
        self._delay = self._initialDelay
        stream = _EventStream(self._event)
        self._stream = stream
        response.deliverBody(stream)
        stream.done.addCallback(lambda _: self._ended())
        return None

    def _refused(self, body: bytes, code: int) -> None:
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            decoded = None
        message = decoded.get("error") if isinstance(decoded, dict) else body.decode("utf-8", "replace")
        if code >= 500 or code == 429:
            self._again()
            return
        self.stopped = True
        if not self.done.called:
            self.done.errback(LogServiceError(code, message or "", decoded))

    def _event(self, event: str, eventId: str | None, data: str) -> None:
        if self.stopped:
            return
        if event == "message":
            record = orjson.loads(data)
            if eventId is not None:
                self.lastId = int(eventId)
            try:
                self._onRecord(record)
            except Exception:
                self.log.failure("tail callback failed")
        elif event == "position" and eventId is not None and eventId.isdigit():
            self.lastId = int(eventId)
        elif event in ("overflow", "error"):
            body = orjson.loads(data)
            if isinstance(body, dict) and body.get("last_id") is not None:
                self.lastId = int(body["last_id"])
            self.log.warn("tail cut off by the server ({event}); resuming", event=event)

    def _failed(self, failure: Failure) -> None:
        self._pending = None
        if self.stopped or failure.check(CancelledError):
            return
        self._again()

    def _ended(self) -> None:
        self._stream = None
        self.connected = False
        self._again()

    def _again(self) -> None:
        if self.stopped:
            return
        delay, self._delay = self._delay, min(self._delay * 2, self._maxDelay)
        self._retry = self._clock.callLater(delay, self._connect)


# The at-least-once TCP sender and the twisted.logger observer live in
# logsvc.sender; they are part of the client API.
from logsvc.sender import LogsvcObserver, SenderFull, TCPSender, tlsContext  # noqa: E402, F401

