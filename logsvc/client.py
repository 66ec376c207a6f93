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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson
import treq
from treq.client import HTTPClient
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectError, ConnectionClosed, DNSLookupError, TimeoutError
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
        C{fields}; see the README).

        @return: a Deferred firing with a L{Page}.
        """
        d = self._request("GET", self._url("/logs", encodeFilters(filters)))
        return d.addCallback(lambda body: Page(body["logs"], body["next"]))

    def health(self) -> Deferred[dict[str, Any]]:
        """
        @return: a Deferred firing with the server's C{/health} object.
        """
        return self._request("GET", self._url("/health"))


# The at-least-once TCP sender and the twisted.logger observer live in
# logsvc.sender; they are part of the client API.
from logsvc.sender import LogsvcObserver, SenderFull, TCPSender, tlsContext  # noqa: E402, F401

