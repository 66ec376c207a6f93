"""
Tests for L{logsvc.web.guard}: auth on every endpoint, 503/507 refusals,
the request deadline and the stuck-reader cutoff.
"""

from __future__ import annotations

from base64 import b64encode
from typing import Any

import orjson
from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from logsvc.auth import Tokens
from logsvc.pipeline import Pipeline
from logsvc.store.memory import MemoryStore
from logsvc.web.app import LogsvcSite, buildRoot
from logsvc.web.guard import Guard, GuardResource

INGEST, READ, BOTH = "in-token", "rd-token", "both-token"


def endpoints(root: Any) -> list[bytes]:
    """
    Every path of the tree two levels deep, so endpoints added later are
    covered too.
    """
    paths = [b"/"]
    for name, child in sorted(root.children.items()):
        paths.append(b"/" + name)
        for sub in sorted(getattr(child, "children", {})):
            paths.append(b"/" + name + b"/" + sub)
    return paths


class AuthEveryEndpointTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = MemoryStore()
        clock = Clock()
        self.pipeline = Pipeline(self.store, reactor=clock, delay=0)
        tokens = Tokens.fromPairs([("ingest", INGEST), ("read", READ), ("ingest", BOTH), ("read", BOTH)])
        # The tails it opens beat on this clock, not the global reactor.
        self.root = buildRoot(self.store, self.pipeline, clock=clock)
        self.treq = StubTreq(GuardResource(self.root, Guard(tokens)))

    def status(self, method: str, path: bytes, token: str | None) -> int:
        headers = {b"content-type": [b"application/json"]}
        if token is not None:
            headers[b"authorization"] = [b"Bearer " + token.encode()]
        d = self.treq.request(
            method, "http://logsvc.test" + path.decode(), headers=headers, data=b'{"message": "m"}'
        )
        self.treq.flush()
        response = self.successResultOf(d)
        return int(response.code)

    def test_everyEndpoint(self) -> None:
        """Every endpoint but /health and the UI's static files answers 401 without or with a wrong token, 403 with the wrong scope, and passes with the right one."""
        paths = endpoints(self.root)
        self.assertIn(b"/logs", paths)
        for path in paths:
            for method, right, wrong in (("GET", READ, INGEST), ("POST", INGEST, READ)):
                label = f"{method} {path.decode()}"
                if path in (b"/health", b"/ui"):
                    self.assertNotIn(self.status(method, path, None), (401, 403), label)
                    continue
                self.assertEqual(self.status(method, path, None), 401, label)
                self.assertEqual(self.status(method, path, "not-a-token"), 401, label)
                if method == "GET" and (path == b"/" or path.startswith(b"/_")):
                    # Discovery reads without log data: either token will do.
                    self.assertNotIn(self.status(method, path, wrong), (401, 403), label)
                else:
                    self.assertEqual(self.status(method, path, wrong), 403, label)
                self.assertNotIn(self.status(method, path, right), (401, 403), label)
                self.assertNotIn(self.status(method, path, BOTH), (401, 403), label)

    def test_uiFilesOpenButItsAPICallsGuarded(self) -> None:
        """The UI's files load without a token, while the API they call still needs one."""
        self.assertEqual(self.status("GET", b"/ui/app.js", None), 200)
        # Dot segments are not resolved by twisted.web: this stays inside /ui.
        self.assertEqual(self.status("GET", b"/ui/../logs", None), 404)
        self.assertEqual(self.status("GET", b"/uilogs", None), 401)

    def test_elasticDiscoveryWithIngestToken(self) -> None:
        """An Elasticsearch shipper's discovery reads pass with its ingest token, and need a token."""
        self.assertEqual(self.status("GET", b"/", INGEST), 200)
        self.assertEqual(self.status("GET", b"/_license", INGEST), 200)
        self.assertEqual(self.status("GET", b"/_license", None), 401)
        self.assertEqual(self.status("GET", b"/stats", INGEST), 403)

    def test_ingestStoresOnlyWithToken(self) -> None:
        """A POST without a token stores nothing; with an ingest token it is stored."""
        self.assertEqual(self.status("POST", b"/logs", None), 401)
        self.assertEqual(self.store.rows, [])
        self.assertEqual(self.status("POST", b"/logs", INGEST), 201)
        self.assertEqual(len(self.store.rows), 1)

    def test_shipperSchemes(self) -> None:
        """Basic credentials with the token as password (HTTPHandler, Loki and Fluent Bit outputs) and Elasticsearch's ApiKey carry the token too."""
        def post(path: str, authorization: bytes) -> int:
            d = self.treq.request(
                "POST",
                "http://logsvc.test" + path,
                headers={b"authorization": [authorization], b"content-type": [b"application/json"]},
                data=b'{"index": {}}\n{"message": "m"}\n' if path == "/_bulk" else b'{"message": "m"}',
            )
            self.treq.flush()
            return int(self.successResultOf(d).code)

        self.assertEqual(post("/logs", b"Basic " + b64encode(b"python:" + INGEST.encode())), 201)
        self.assertEqual(post("/_bulk", b"ApiKey " + b64encode(b"beats:" + INGEST.encode())), 200)
        self.assertEqual(post("/logs", b"Basic " + b64encode(b"python:" + READ.encode())), 403)
        self.assertEqual(post("/logs", b"Basic " + b64encode(b"python:wrong")), 401)
        self.assertEqual(len(self.store.rows), 2)

    def test_wwwAuthenticate(self) -> None:
        """A 401 names the Bearer scheme and carries a JSON error."""
        d = self.treq.get("http://logsvc.test/logs")
        self.treq.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.headers.getRawHeaders(b"www-authenticate"), [b'Bearer realm="logsvc"'])
        body = self.successResultOf(response.content())
        self.assertIn("error", orjson.loads(body))


class RefusalTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = MemoryStore()
        self.pipeline = Pipeline(self.store, reactor=Clock(), delay=0)
        self.low = False
        self.guard = Guard(admission=lambda sender: self.pipeline.admission.refusal(sender, 0), diskLow=lambda: self.low)
        self.treq = StubTreq(GuardResource(buildRoot(self.store, self.pipeline), self.guard))

    def post(self) -> Any:
        d = self.treq.post(
            "http://logsvc.test/logs", b'{"message": "m"}', headers={b"content-type": [b"application/json"]}
        )
        self.treq.flush()
        return self.successResultOf(d)

    def test_saturated503(self) -> None:
        """A write while the pipeline is saturated gets 503 with Retry-After; reads still work."""
        self.pipeline.pending = self.pipeline.maxPending
        response = self.post()
        self.assertEqual(response.code, 503)
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"1"])
        d = self.treq.get("http://logsvc.test/logs")
        self.treq.flush()
        self.assertEqual(self.successResultOf(d).code, 200)

    def test_diskLow507(self) -> None:
        """A write while the disk is below its floor gets 507 and stores nothing."""
        self.low = True
        self.assertEqual(self.post().code, 507)
        self.assertEqual(self.store.rows, [])


def channelFor(site: LogsvcSite, clock: Clock) -> tuple[Any, StringTransport]:
    site.reactor = clock  # type: ignore[attr-defined]
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4444))
    assert channel is not None
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


class ChannelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = MemoryStore()
        self.pipeline = Pipeline(self.store, reactor=self.clock, delay=0)
        self.site = LogsvcSite(
            buildRoot(self.store, self.pipeline), requestTimeout=10, stallTimeout=20, maxUnsent=1000
        )

    def test_idleBetweenRequests(self) -> None:
        """A keep-alive connection idle past the site's idle timeout is closed; an active one is not."""
        site = LogsvcSite(buildRoot(self.store, self.pipeline), timeout=5)
        channel, transport = channelFor(site, self.clock)
        channel.dataReceived(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"200 OK", transport.value())
        self.clock.advance(4)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(2)
        self.assertTrue(transport.disconnecting)

    def test_slowlorisCut(self) -> None:
        """A request trickling in a byte at a time is answered 408 and closed at the request deadline."""
        channel, transport = channelFor(self.site, self.clock)
        request = b"POST /logs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
        for i in range(len(request)):
            channel.dataReceived(request[i : i + 1])
            self.clock.advance(0.1)
        for _ in range(60):
            if transport.disconnecting:
                break
            channel.dataReceived(b"x")
            self.clock.advance(1)
        self.assertTrue(transport.disconnecting)
        self.assertIn(b"408 Request Timeout", transport.value())
        self.assertEqual(self.store.rows, [])

    def test_fastRequestNotCut(self) -> None:
        """A request that arrives whole is answered and the deadline does not fire later."""
        channel, transport = channelFor(self.site, self.clock)
        body = b'{"message": "hi"}'
        channel.dataReceived(
            b"POST /logs HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        self.clock.advance(30)
        self.assertIn(b"201 Created", transport.value())
        self.assertFalse(transport.disconnecting)
        self.assertEqual(len(self.store.rows), 1)

    def test_stuckReaderCut(self) -> None:
        """A client that stops reading its response is aborted after the stall timeout."""
        channel, transport = channelFor(self.site, self.clock)
        channel.pauseProducing()  # what the transport does when its buffer is full
        self.clock.advance(19)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(2)
        self.assertTrue(transport.disconnected or transport.disconnecting)

    def test_readingAgainNotCut(self) -> None:
        """A client that resumes reading before the stall timeout keeps its connection."""
        channel, transport = channelFor(self.site, self.clock)
        channel.pauseProducing()
        self.clock.advance(19)
        channel.resumeProducing()
        self.clock.advance(30)
        self.assertFalse(transport.disconnected or transport.disconnecting)

    def test_unsentBoundCut(self) -> None:
        """A response written past the unsent-bytes bound while the client is not reading is aborted."""
        channel, transport = channelFor(self.site, self.clock)
        channel.pauseProducing()
        channel.write(b"x" * 600)
        self.clock.advance(0)
        self.assertFalse(transport.disconnected or transport.disconnecting)
        channel.write(b"x" * 600)
        self.clock.advance(0)
        self.assertTrue(transport.disconnected or transport.disconnecting)

    def test_refusedFromHeaders(self) -> None:
        """Without a valid token a POST is answered 401 from its headers: no 100 Continue, no body read, nothing stored."""
        tokens = Tokens.fromPairs([("ingest", INGEST)])
        site = LogsvcSite(GuardResource(buildRoot(self.store, self.pipeline), Guard(tokens)))
        channel, transport = channelFor(site, self.clock)
        channel.dataReceived(
            b"POST /logs HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"content-type: application/json\r\nContent-Length: 5000000\r\n\r\n"
        )
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 401 Unauthorized"))
        self.assertNotIn(b"100 Continue", transport.value())
        self.assertTrue(transport.disconnecting)
        channel.dataReceived(b'{"message": "m"}')
        self.assertEqual(self.store.rows, [])

    def test_authorizedFromHeaders(self) -> None:
        """With the right token the same request is read and stored."""
        tokens = Tokens.fromPairs([("ingest", INGEST)])
        site = LogsvcSite(GuardResource(buildRoot(self.store, self.pipeline), Guard(tokens)))
        channel, transport = channelFor(site, self.clock)
        body = b'{"message": "m"}'
        channel.dataReceived(
            b"POST /logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            b"content-type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (INGEST.encode(), len(body), body)
        )
        self.assertIn(b"201 Created", transport.value())
        self.assertEqual(len(self.store.rows), 1)

