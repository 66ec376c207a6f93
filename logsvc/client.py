# -*- test-case-name: tests.test_client,tests.test_client_search -*-
"""
Talk to logsvc from Twisted code, over HTTP with treq.

    client = LogClient("http://127.0.0.1:8080")
    accepted = yield client.send({"message": "hello", "level": "warning"})
    page = yield client.query(level="error", service="api", since="1h", limit=50)
    for record in page.logs: ...
    more = yield client.query(level="error", service="api", since="1h", cursor=page.next)

Filters are typed keyword-only arguments, the same on every method (a misspelt
one is a C{TypeError}, never a search for everything): C{since} and C{until}
(a C{datetime}, RFC 3339 text, epoch seconds, or a relative time such as
C{"15m"}, C{"now-2h"}, C{"now"}), C{level} (that severity or worse), C{source}
and C{service} (one name or several), C{q} (search text) and C{fields}
(C{{"user": "u1"}} for C{field.user=u1}).

Failures are one of two exceptions, so a caller can always tell them apart:
L{LogServiceError} (the server answered and said no: status and its error
text) and L{LogServiceUnreachable} (no answer: the connection failed, timed
out, or what answered is not logsvc's HTTP API).

Method names follow Twisted's camelCase; C{query_all} and C{query_pages}
remain as deprecated aliases of L{LogClient.queryAll} and
L{LogClient.queryPages}.  The TCP sender lives in L{logsvc.sender}.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Union
from urllib.parse import urlencode

import orjson
import treq
from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks, maybeDeferred, succeed
from twisted.internet.error import (
    ConnectError,
    ConnectionClosed,
    ConnectionRefusedError,
    DNSLookupError,
    TCPTimedOutError,
    TimeoutError,
)
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._newclient import ParseError
from twisted.web.client import ResponseFailed
from twisted.web.iweb import IResponse

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "FieldValue",
    "LogClient",
    "LogServiceError",
    "LogServiceUnreachable",
    "Names",
    "Page",
    "Tail",
    "TimeBound",
]

#: Seconds a connection to the server may take to open, by default.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Seconds a request may take to be answered in full, by default.
DEFAULT_TIMEOUT = 30.0
#: Seconds a tail may receive nothing (the server sends a keep-alive every
#: 15 s) before its connection is taken as lost and made anew.
DEFAULT_TAIL_IDLE_TIMEOUT = 45.0

#: A C{since}/C{until} bound: a C{datetime}, RFC 3339 text, epoch seconds, or
#: a relative time (C{"15m"}, C{"now-2h"}, C{"now"}) the server resolves.
TimeBound = Union[datetime, str, int, float]
#: One name, or several (any of them matches).
Names = Union[str, Iterable[str]]
#: A field filter's value, compared as the server's C{field.KEY} says.
FieldValue = Union[str, int, float, bool, None]


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
    No answer from the server: the connection failed or broke, no answer
    came in time, or what answered does not speak HTTP.

    @ivar reason: the underlying exception.
    @ivar url: the URL asked, or L{None}.
    @ivar notHTTP: the first line that answered when it was not HTTP (a TCP
        ingest port answers with a hint), else L{None}.
    @ivar description: why, in a few words (C{"connection refused"}, C{"no
        answer within 30 s"}).
    """

    def __init__(self, reason: BaseException, url: str | None = None, *, notHTTP: str | None = None) -> None:
        self.reason = reason
        self.url = url
        self.notHTTP = notHTTP
        self.description = _describe(reason)
        where = url or "the log service"
        if notHTTP is not None:
            text = (
                f"{where} is not logsvc's HTTP API: it answered {notHTTP!r} "
                "(a TCP ingest port? the HTTP API is the server's --http endpoint, default port 8080)"
            )
        else:
            text = f"cannot reach {where}: {self.description}"
        super().__init__(text)


class _NoAnswer(Exception):
    """
    No answer came within the client's timeout.
    """


def _describe(reason: BaseException) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, DNSLookupError):
        return "no such host"
    if isinstance(reason, (TCPTimedOutError, TimeoutError)):
        return "the connection timed out"
    if isinstance(reason, ResponseFailed):
        inner = [r.value for r in reason.reasons if isinstance(r, Failure)]
        if any(isinstance(e, ConnectionClosed) for e in inner):
            return "the connection closed before an answer"
        return "; ".join(str(e) or type(e).__name__ for e in inner) or str(reason)
    text = str(reason).strip()
    return text.rstrip(".") if text else type(reason).__name__


def _notHTTPLine(reason: BaseException) -> str | None:
    """
    @return: the line a server answered with when it was not an HTTP status
        line (twisted.web's client reports it in a C{ParseError}).
    """
    if not isinstance(reason, ResponseFailed):
        return None
    for failure in reason.reasons:
        if isinstance(failure.value, ParseError):
            line = failure.value.args[-1]
            if isinstance(line, bytes):
                return line.decode("utf-8", "replace")
    return None


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


def _names(value: Names | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _timeBound(value: TimeBound) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def encodeFilters(
    *,
    since: TimeBound | None = None,
    until: TimeBound | None = None,
    level: str | None = None,
    source: Names | None = None,
    service: Names | None = None,
    q: str | None = None,
    fields: Mapping[str, FieldValue] | None = None,
    **more: object,
) -> list[tuple[str, str]]:
    """
    The query arguments of the filters: several names repeat the argument,
    C{datetime}s become RFC 3339, C{fields={"k": "v"}} becomes C{field.k=v};
    L{None} is left out.  C{more} are the calling method's own parameters
    (C{limit}, C{cursor}, ...), already checked by its signature.
    """
    args: list[tuple[str, str]] = []
    for name, bound in (("since", since), ("until", until)):
        if bound is not None:
            args.append((name, _timeBound(bound)))
    if level is not None:
        args.append(("level", level))
    args.extend(("source", name) for name in _names(source))
    args.extend(("service", name) for name in _names(service))
    if q is not None:
        args.append(("q", q))
    for key, expected in (fields or {}).items():
        text = "null" if expected is None else ("true" if expected is True else "false" if expected is False else str(expected))
        args.append((f"field.{key}", text))
    for name, value in more.items():
        if value is not None:
            args.append((name, str(value)))
    return args


def _defaultHTTPClient(connectTimeout: float, caFile: str | None, tlsPolicy: Any) -> tuple[HTTPClient, Any]:
    from twisted.internet import reactor, ssl
    from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=True)
    kwargs: dict[str, Any] = {"pool": pool, "connectTimeout": connectTimeout}
    if tlsPolicy is None and caFile is not None:
        with open(caFile, "rb") as f:
            tlsPolicy = BrowserLikePolicyForHTTPS(trustRoot=ssl.Certificate.loadPEM(f.read()))
    if tlsPolicy is not None:
        kwargs["contextFactory"] = tlsPolicy
    return HTTPClient(Agent(reactor, **kwargs)), pool


class LogClient:
    """
    An asynchronous client of one logsvc server.

    @param baseURL: e.g. C{"http://127.0.0.1:8080"} (or C{https://...}).
    @param httpClient: a treq L{HTTPClient}; by default one of this client's
        own, over a persistent connection pool that L{close} closes.  Tests
        pass L{logsvc.testing.MemoryLogService}'s.
    @param token: a bearer token, sent with every request when given.
    @param caFile: for C{https://}: a PEM file of the CA (or self-signed
        certificate) to trust instead of the platform's trust store.
    @param tlsPolicy: for C{https://}: an L{IPolicyForHTTPS} (e.g.
        L{twisted.web.client.BrowserLikePolicyForHTTPS}) for full control.
    @param connectTimeout: seconds a connection may take to open (for the
        default HTTP client; a given C{httpClient} brings its own).
    @param timeout: seconds a request may take to be answered in full;
        then it fails with L{LogServiceUnreachable}.  L{None}: no limit.
    @param clock: the L{IReactorTime} timeouts and tails' retries are
        scheduled on; the global reactor by default.
    """

    def __init__(
        self,
        baseURL: str,
        *,
        httpClient: HTTPClient | None = None,
        token: str | None = None,
        caFile: str | None = None,
        tlsPolicy: Any = None,
        connectTimeout: float = DEFAULT_CONNECT_TIMEOUT,
        timeout: float | None = DEFAULT_TIMEOUT,
        clock: Any = None,
    ) -> None:
        self.baseURL = baseURL.rstrip("/")
        self._pool: Any = None
        if httpClient is None:
            httpClient, self._pool = _defaultHTTPClient(connectTimeout, caFile, tlsPolicy)
        self._http: Any = httpClient
        self.timeout = timeout
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self._headers: dict[bytes, list[bytes]] = {}
        if token is not None:
            self._headers[b"authorization"] = [b"Bearer " + token.encode("ascii")]

    def url(self, path: str, args: Iterable[tuple[str, str]] = ()) -> str:
        """
        @param path: an endpoint's path, e.g. C{"/logs"}.
        @param args: query arguments.
        @return: the full URL of C{path} on this client's server.
        """
        url = self.baseURL + path
        args = list(args)
        if args:
            url += "?" + urlencode(args)
        return url

    def close(self) -> Deferred[None]:
        """
        Close the connections this client keeps open for reuse (only those of
        its own default HTTP client).

        @return: a Deferred firing once they are closed.
        """
        if self._pool is None:
            return succeed(None)
        d: Deferred[None] = self._pool.closeCachedConnections()
        return d

    def stream(
        self, path: str, args: Iterable[tuple[str, str]] = (), *, headers: Mapping[bytes, list[bytes]] | None = None
    ) -> Deferred[IResponse]:
        """
        Open a streaming C{GET} (such as C{/logs/tail}): the response body is
        not buffered, and the client's C{timeout} applies only until its
        headers arrive.

        @return: a Deferred firing with the L{IResponse} (any status), or
            failing with L{LogServiceUnreachable}.
        """
        url = self.url(path, args)
        merged = dict(self._headers)
        merged.update(headers or {})
        return self._answered(self._http.request("GET", url, headers=merged, unbuffered=True), url)

    def _request(self, method: str, url: str, **kw: Any) -> Deferred[Any]:
        return self._answered(self._exchange(method, url, **kw), url)

    def _answered(self, d: Deferred[Any], url: str) -> Deferred[Any]:
        """
        Bound C{d} by the client's C{timeout} and turn every failure to get
        an answer into L{LogServiceUnreachable}.
        """
        timedOut = []
        call: IDelayedCall | None = None
        if self.timeout is not None:

            def expire() -> None:
                timedOut.append(True)
                d.cancel()

            call = self.clock.callLater(self.timeout, expire)

        def settle(result: Any) -> Any:
            if call is not None and call.active():
                call.cancel()
            if not isinstance(result, Failure) or result.check(LogServiceError):
                return result
            if timedOut:
                raise LogServiceUnreachable(_NoAnswer(f"no answer within {self.timeout:g} s"), url)
            if result.check(*_NETWORK_ERRORS):
                reason = result.value
                assert isinstance(reason, BaseException)
                raise LogServiceUnreachable(reason, url, notHTTP=_notHTTPLine(reason))
            return result

        return d.addBoth(settle)

    @inlineCallbacks
    def _exchange(self, method: str, url: str, **kw: Any) -> Any:
        headers = dict(self._headers)
        headers.update(kw.pop("headers", {}))
        response = yield self._http.request(method, url, headers=headers, **kw)
        body = yield treq.content(response)
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
        d = self._request("POST", self.url("/logs"), data=body, headers={b"content-type": [kind]})
        return d.addCallback(lambda result: result["accepted"])

    def query(
        self,
        *,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        level: str | None = None,
        source: Names | None = None,
        service: Names | None = None,
        q: str | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        limit: int | None = None,
        order: Literal["asc", "desc"] | None = None,
        cursor: str | None = None,
    ) -> Deferred[Page]:
        """
        Fetch one page of the records matching the filters (see the module
        docstring; docs/api.rst has their meaning).

        @param limit: the page size, 1..10000 (the server's default: 100).
        @param order: C{"desc"} (newest first, the default) or C{"asc"}.
        @param cursor: the previous page's L{Page.next}, with the same
            filters: a relative C{since} keeps the first page's meaning.
        @return: a Deferred firing with a L{Page}.
        """
        args = encodeFilters(
            since=since, until=until, level=level, source=source, service=service, q=q, fields=fields,
            limit=limit, order=order,
        )
        return self._page(args, cursor)

    def _page(self, args: list[tuple[str, str]], cursor: str | None) -> Deferred[Page]:
        """
        @param args: a query's encoded arguments, without its cursor.
        @return: the page of C{GET /logs} at C{cursor}.
        """
        if cursor is not None:
            args = [*args, ("cursor", cursor)]
        d = self._request("GET", self.url("/logs", args))
        return d.addCallback(lambda body: Page(body["logs"], body["next"]))

    def health(self) -> Deferred[dict[str, Any]]:
        """
        @return: a Deferred firing with the server's C{/health} object.
        """
        return self._request("GET", self.url("/health"))

    def queryPages(
        self,
        onPage: Callable[[Page], object],
        *,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        level: str | None = None,
        source: Names | None = None,
        service: Names | None = None,
        q: str | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        limit: int | None = None,
        order: Literal["asc", "desc"] | None = None,
        cursor: str | None = None,
    ) -> Deferred[int]:
        """
        Walk every page of the filters (as for L{query}; C{limit} is the page
        size), calling C{onPage} with each L{Page} in order.  When C{onPage}
        returns a Deferred, the next page is fetched once it fires.

        @return: a Deferred firing with the number of records seen, or
            failing as L{query} fails (or as C{onPage} does).
        """

        args = encodeFilters(
            since=since, until=until, level=level, source=source, service=service, q=q, fields=fields,
            limit=limit, order=order,
        )

        @inlineCallbacks
        def walk() -> Any:
            seen = 0
            position = cursor
            while True:
                page = yield self._page(args, position)
                seen += len(page.logs)
                yield maybeDeferred(onPage, page)
                if page.next is None:
                    return seen
                position = page.next

        return walk()  # type: ignore[no-any-return]

    async def queryAll(
        self,
        *,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        level: str | None = None,
        source: Names | None = None,
        service: Names | None = None,
        q: str | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        limit: int | None = None,
        order: Literal["asc", "desc"] | None = None,
        cursor: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """
        Every record matching the filters (as for L{query}; C{limit} is the
        page size), as an async iterator for Twisted coroutines::

            async def errors(client):
                async for record in client.queryAll(level="error", order="asc"):
                    ...
            Deferred.fromCoroutine(errors(client))

        A page is fetched only when the previous one is used up.
        """
        args = encodeFilters(
            since=since, until=until, level=level, source=source, service=service, q=q, fields=fields,
            limit=limit, order=order,
        )
        position = cursor
        while True:
            page = await self._page(args, position)
            for record in page.logs:
                yield record
            if page.next is None:
                return
            position = page.next

    def query_pages(self, onPage: Callable[[Page], object], **filters: Any) -> Deferred[int]:
        """
        Deprecated alias of L{queryPages}.
        """
        warnings.warn("LogClient.query_pages is deprecated; use queryPages", DeprecationWarning, stacklevel=2)
        return self.queryPages(onPage, **filters)

    def query_all(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """
        Deprecated alias of L{queryAll}.
        """
        warnings.warn("LogClient.query_all is deprecated; use queryAll", DeprecationWarning, stacklevel=2)
        return self.queryAll(**filters)

    def stats(
        self,
        *,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        level: str | None = None,
        source: Names | None = None,
        service: Names | None = None,
        q: str | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        interval: str | None = None,
        tz: str | None = None,
        by: str | None = None,
        limit: int | None = None,
    ) -> Deferred[dict[str, Any]]:
        """
        Counts over time (C{GET /stats}) of the records matching the filters
        (as for L{query}).

        @param interval: the bucket width (C{"1h"}); chosen by the server when
            L{None}.
        @param tz: the zone buckets align in (C{"Europe/Berlin"}, C{"+05:30"}).
        @param by: C{"service"}, C{"source"} or C{"level"}: the top values
            instead of buckets, C{limit} of them.
        @return: a Deferred firing with the server's JSON object (see
            docs/api.rst), or failing as L{query} fails.
        """
        args = encodeFilters(
            since=since, until=until, level=level, source=source, service=service, q=q, fields=fields,
            interval=interval, tz=tz, by=by, limit=limit,
        )
        return self._request("GET", self.url("/stats", args))

    def tail(
        self,
        onRecord: Callable[[dict[str, Any]], object],
        *,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        level: str | None = None,
        source: Names | None = None,
        service: Names | None = None,
        q: str | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        sinceId: int | None = None,
        onReconnect: Callable[[LogServiceUnreachable | LogServiceError | None, float], object] | None = None,
        reconnectDelay: float = 0.5,
        maxReconnectDelay: float = 10.0,
        idleTimeout: float = DEFAULT_TAIL_IDLE_TIMEOUT,
        clock: Any = None,
    ) -> Tail:
        """
        Follow the records matching the filters (as for L{query}) live:
        C{onRecord} is called with each one, in id order, once.

        When the first connection fails, the tail ends: L{Tail.done} fails
        with L{LogServiceUnreachable}.  Once connected, it reconnects by
        itself whenever the connection drops, the server cuts it off or
        nothing (not even a keep-alive) arrives for C{idleTimeout} seconds,
        resuming after the last id received, so no record is missed or
        repeated; waits between attempts double from C{reconnectDelay} up to
        C{maxReconnectDelay} seconds.

        @param sinceId: start after this record id (replaying what was
            committed since); by default only records committed from now.
        @param onReconnect: called before each reconnection attempt with why
            (L{None}: the stream ended) and the seconds it waits.
        @param clock: schedules retries and the idle timeout; the client's
            clock by default.
        @return: a L{Tail}; C{tail.stop()} ends it.
        """
        args = encodeFilters(
            since=since, until=until, level=level, source=source, service=service, q=q, fields=fields
        )
        follower = Tail(
            self,
            onRecord,
            args,
            sinceId=sinceId,
            clock=clock if clock is not None else self.clock,
            reconnectDelay=reconnectDelay,
            maxReconnectDelay=maxReconnectDelay,
            idleTimeout=idleTimeout,
            onReconnect=onReconnect,
        )
        follower.start()
        return follower


class _EventStream(Protocol):
    """
    Parse a Server-Sent Events body into C{(event, id, data)} calls; an id
    without data is reported as event C{"position"}.
    """

    def __init__(self, onEvent: Callable[[str, str | None, str], None], onData: Callable[[], None] = lambda: None) -> None:
        self.onEvent = onEvent
        self.onData = onData
        self.done: Deferred[None] = Deferred()
        self._buffer = b""
        self._event = "message"
        self._id: str | None = None
        self._data: list[str] = []

    def dataReceived(self, data: bytes) -> None:
        self.onData()
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
    A running L{LogClient.tail}; it uses only L{LogClient}'s public surface
    (L{LogClient.stream}).

    @ivar lastId: the id of the last record delivered (or the position the
        server named), or L{None}.
    @ivar done: a Deferred firing with L{None} once stopped, or failing
        with L{LogServiceUnreachable} when the first connection fails, or
        with L{LogServiceError} when the server refuses the tail (a bad
        filter, a missing token), which ends it.
    @ivar connected: whether a stream is open now.
    @ivar streamed: whether a stream was ever open (from then on, a lost
        connection is retried forever).
    """

    log = Logger()

    def __init__(
        self,
        client: LogClient,
        onRecord: Callable[[dict[str, Any]], object],
        args: list[tuple[str, str]],
        *,
        sinceId: int | None,
        clock: Any,
        reconnectDelay: float,
        maxReconnectDelay: float,
        idleTimeout: float,
        onReconnect: Callable[[LogServiceUnreachable | LogServiceError | None, float], object] | None,
    ) -> None:
        self._client = client
        self._onRecord = onRecord
        self._args = args
        self.lastId = sinceId
        self._clock = clock
        self._initialDelay = reconnectDelay
        self._delay = reconnectDelay
        self._maxDelay = maxReconnectDelay
        self._idleTimeout = idleTimeout
        self._onReconnect = onReconnect
        self._pending: Deferred[Any] | None = None
        self._stream: _EventStream | None = None
        self._retry: IDelayedCall | None = None
        self._idle: IDelayedCall | None = None
        self.stopped = False
        self.connected = False
        self.streamed = False
        self.done: Deferred[None] = Deferred()

    def start(self) -> None:
        """
        Open the first connection (L{LogClient.tail} does).
        """
        self._connect()

    def stop(self) -> Deferred[None]:
        """
        End the tail: the connection is closed and no further record is
        delivered.

        @return: L{done}.
        """
        if not self.stopped:
            self.stopped = True
            self._cancelTimers()
            if self._pending is not None:
                self._pending.cancel()
            self._dropStream()
            if not self.done.called:
                self.done.callback(None)
        return self.done

    def _cancelTimers(self) -> None:
        for call in (self._retry, self._idle):
            if call is not None and call.active():
                call.cancel()

    def _dropStream(self) -> None:
        if self._stream is not None and self._stream.transport is not None:
            self._stream.transport.stopProducing()  # type: ignore[attr-defined]

    def _connect(self) -> None:
        if self.stopped:
            return
        headers = {b"accept": [b"text/event-stream"]}
        if self.lastId is not None:
            headers[b"last-event-id"] = [str(self.lastId).encode("ascii")]
        d = self._client.stream("/logs/tail", self._args, headers=headers)
        self._pending = d
        d.addCallbacks(self._responded, self._failed)

    def _responded(self, response: IResponse) -> Any:
        self._pending = None
        if self.stopped:
            response.deliverBody(Protocol())
            return None
        if response.code >= 400:
            return treq.content(response).addCallback(self._refused, response.code)
        self.connected = True
        self.streamed = True
        self._delay = self._initialDelay
        stream = _EventStream(self._event, self._heard)
        self._stream = stream
        self._heard()
        response.deliverBody(stream)
        stream.done.addCallback(lambda _: self._ended())
        return None

    def _heard(self) -> None:
        # Any bytes, keep-alives included, show the connection is alive.
        if self._idle is not None and self._idle.active():
            self._idle.reset(self._idleTimeout)
        else:
            self._idle = self._clock.callLater(self._idleTimeout, self._dropStream)

    def _refused(self, body: bytes, code: int) -> None:
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            decoded = None
        message = decoded.get("error") if isinstance(decoded, dict) else body.decode("utf-8", "replace")
        error = LogServiceError(code, message or "", decoded)
        if code >= 500 or code == 429:
            self._again(error)
            return
        self._end(error)

    def _end(self, error: Exception) -> None:
        self.stopped = True
        self._cancelTimers()
        if not self.done.called:
            self.done.errback(error)

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
        if not failure.check(LogServiceUnreachable):
            self._end(failure.value)  # type: ignore[arg-type]
            return
        error = failure.value
        assert isinstance(error, LogServiceUnreachable)
        if not self.streamed:
            # Nothing was ever streamed: the URL is wrong or the server is
            # down, which retrying would only hide.
            self._end(error)
            return
        self._again(error)

    def _ended(self) -> None:
        self._stream = None
        self.connected = False
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._again(None)

    def _again(self, why: LogServiceUnreachable | LogServiceError | None) -> None:
        if self.stopped:
            return
        delay, self._delay = self._delay, min(self._delay * 2, self._maxDelay)
        if self._onReconnect is not None:
            try:
                self._onReconnect(why, delay)
            except Exception:
                self.log.failure("tail onReconnect callback failed")
        self._retry = self._clock.callLater(delay, self._connect)
