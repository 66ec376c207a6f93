"""
The HTTP API's Resource tree and the Site that serves it.

L{buildRoot} assembles the tree in one place; L{LogsvcSite} adds what a bare
twisted.web Site lacks: a request body cap enforced from the headers (413
before the body is read), and JSON instead of HTML for failures.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from io import BytesIO
from typing import Any

import orjson
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import Logger
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from logsvc.health import HealthRegistry
from logsvc.metrics import Metrics
from logsvc.pipeline import Pipeline
from logsvc.store.base import IStore
from logsvc.times import nowMicros
from logsvc.web.common import JSONResource, NotFound
from logsvc.web.elastic import ElasticBulk, elasticChild, elasticInfo, markElastic
from logsvc.web.errors import NOSNIFF, errorBody, rawJSONError
from logsvc.web.fields import FieldsResource
from logsvc.web.forwarded import Network, forwardedClient
from logsvc.web.gelf import GelfHTTP
from logsvc.web.guard import (
    DEFAULT_MAX_UNSENT,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_STALL_TIMEOUT,
    LogsvcChannel,
)
from logsvc.web.health import HealthResource, MetricsResource
from logsvc.web.ingest import DEFAULT_MAX_BODY, LogsIngest
from logsvc.web.loki import LokiPush, lokiTree
from logsvc.web.otlp import otlpTree
from logsvc.web.search import LogsSearch
from logsvc.web.stats import StatsResource
from logsvc.web.tail import TailResource
from logsvc.web.ui import UIResource


class LogsResource(JSONResource):
    """
    C{/logs}: C{POST} stores records, C{GET} searches them.  Children (such as
    C{tail}) are added with C{putChild}.
    """

    def __init__(self, ingest: LogsIngest, search: LogsSearch) -> None:
        super().__init__()
        self.ingest = ingest
        self.search = search

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path == b"":
            return self
        return NotFound()

    def render_POST(self, request: Request) -> object:
        return self.ingest.render(request)

    def render_GET(self, request: Request) -> object:
        return self.search.render(request)


class RootResource(JSONResource):
    """
    C{/}: a JSON index of the endpoints, which is also Elasticsearch's version
    info (so Elasticsearch outputs accept logsvc).  A first segment that names
    no child goes to L{fallback} (Elasticsearch's C{/{index}/...} and
    C{/_...} APIs), else it is a JSON 404.
    """

    fallback: Callable[[bytes], IResource] | None = None

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path == b"":
            return self
        if self.fallback is not None:
            return self.fallback(path)
        return NotFound()

    def render_GET(self, request: Request) -> bytes:
        accept = request.getHeader(b"accept") or b""
        if b"text/html" in accept and request.path in (b"/", b""):
            # A person with a browser wants the UI; API clients ask for JSON.
            request.redirect(b"/ui/")
            return b""
        request.setHeader(b"content-type", b"application/json")
        markElastic(request)
        return orjson.dumps(
            {
                **elasticInfo(),
                "service": "logsvc",
                "endpoints": sorted(k.decode() for k in self.children),
            }
        )


def buildRoot(
    store: IStore,
    pipeline: Pipeline,
    *,
    metrics: Metrics | None = None,
    maxBody: int = DEFAULT_MAX_BODY,
    clock: Any = None,
    components: HealthRegistry | None = None,
    now: Callable[[], int] = nowMicros,
) -> RootResource:
    """
    Build the whole Resource tree.

    @param now: the current time in microseconds, which relative times
        (C{since=15m}) are resolved against.

    @param components: the helpers C{/health} reports on.

    @param clock: schedules live tails' heartbeats; the global reactor when
        L{None}.

    @return: the root resource; tests drive it with L{treq.testing.StubTreq}.
    """
    root = RootResource()
    logs = LogsResource(LogsIngest(pipeline, maxBody=maxBody), LogsSearch(store, now=now))
    root.putChild(b"logs", logs)
    logs.putChild(b"tail", TailResource(store, pipeline, clock=clock, now=now))
    root.putChild(b"health", HealthResource(pipeline, components))
    root.putChild(b"metrics", MetricsResource(metrics or pipeline.metrics))
    root.putChild(b"ui", UIResource())
    root.putChild(b"stats", StatsResource(store, now=now))
    root.putChild(b"fields", FieldsResource(store, now=now))
    # Shippers' own APIs (issue 4): Loki, Elasticsearch, GELF.
    root.putChild(b"loki", lokiTree(LokiPush(pipeline, maxBody=maxBody)))
    root.putChild(b"_bulk", ElasticBulk(pipeline, maxBody=maxBody))
    root.putChild(b"gelf", GelfHTTP(pipeline, maxBody=maxBody))
    v1, otlp = otlpTree(pipeline, maxBody=maxBody)
    root.putChild(b"v1", v1)
    root.putChild(b"otlp", otlp)
    root.fallback = partial(elasticChild, pipeline, maxBody)
    return root


class LogsvcRequest(Request):
    """
    A request that refuses a body over the site's C{maxBody} as soon as the
    headers announce it (or, for chunked bodies, as soon as it is exceeded),
    without reading or buffering the rest, and reports failures as JSON.
    """

    _log = Logger()
    channel: Any
    _bodyBytes = 0
    _refused = False

    def gotLength(self, length: int | None) -> None:
        limit = self.channel.site.maxBody
        if length is not None and length > limit:
            self._refuse(limit)
            return
        # Bodies are capped, so keep them in memory: twisted.web would spool
        # anything over 100 kB to a temporary file.
        self.content = BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._bodyBytes += len(data)
        if self._bodyBytes > self.channel.site.maxBody:
            self._refuse(self.channel.site.maxBody)
            return
        Request.handleContentChunk(self, data)

    def _refuse(self, limit: int) -> None:
        self._refused = True
        self.channel._answered = True
        transport = self.channel.transport
        transport.write(rawJSONError(413, f"body exceeds max-body of {limit} bytes"))
        transport.pauseProducing()
        transport.loseConnection()

    def process(self) -> None:
        # Every answer, from any resource, says what it is.
        self.setHeader(*NOSNIFF)
        Request.process(self)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            return
        Request.requestReceived(self, command, path, version)

    def getClientAddress(self) -> Any:
        """
        The peer, or the client that trusted proxies name in
        C{X-Forwarded-For} (see L{logsvc.web.forwarded}).
        """
        peer = Request.getClientAddress(self)
        trusted = getattr(self.channel.site, "trustedProxies", ())
        host = getattr(peer, "host", None)
        if not trusted or host is None:
            return peer
        values = self.requestHeaders.getRawHeaders(b"x-forwarded-for")
        client = forwardedClient(host, b",".join(values) if values else None, trusted)
        if client is None:
            return peer
        return (IPv6Address if ":" in client else IPv4Address)("TCP", client, 0)

    def processingFailed(self, reason: Any) -> None:
        self._log.failure("request failed: {uri}", failure=reason, uri=self.uri)
        if self.finished or self._disconnected:
            return
        body = errorBody(self, 500, "internal error")
        self.setHeader(b"content-length", b"%d" % len(body))
        self.write(body)
        self.finish()


class LogsvcSite(Site):
    """
    The Site for logsvc's tree: L{LogsvcRequest}s, no access log lines per
    request (ingest would drown the log), a body cap.

    @ivar maxBody: largest request body accepted, in bytes.
    """

    requestFactory = LogsvcRequest
    displayTracebacks = False
    # A deadline per request and a cutoff for clients that stop reading
    # (see logsvc.web.guard); plain HTTP/1.1, no HTTP/2 negotiation.
    protocol = LogsvcChannel  # type: ignore[assignment]

    def __init__(
        self,
        resource: Any,
        *,
        maxBody: int = DEFAULT_MAX_BODY,
        requestTimeout: float = DEFAULT_REQUEST_TIMEOUT,
        stallTimeout: float = DEFAULT_STALL_TIMEOUT,
        maxUnsent: int = DEFAULT_MAX_UNSENT,
        trustedProxies: tuple[Network, ...] = (),
        **kw: Any,
    ) -> None:
        """
        @param trustedProxies: the proxies whose C{X-Forwarded-For} is
            believed (C{--trusted-proxies}).
        """
        # Every endpoint reads its own body; twisted.web's form parsing would
        # read each POST's Content-Type with the email package first (about
        # 50 us a request) and answer a malformed multipart body itself.
        super().__init__(resource, parsePOSTFormSubmission=False, **kw)
        self.trustedProxies = trustedProxies
        self.maxBody = maxBody
        self.requestTimeout = requestTimeout
        self.stallTimeout = stallTimeout
        self.maxUnsent = maxUnsent

    def log(self, request: Any) -> None:
        pass
