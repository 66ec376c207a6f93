"""
Tests for token revocation: a token file reload that takes a token's scope
away ends every open session let in with it (TCP connections, HTTP
connections and the tails they carry), and only those.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from logsvc.auth import INGEST, Tokens, parseTokens
from logsvc.ingest.tcp import IngestFactory
from logsvc.pipeline import Pipeline
from logsvc.store.memory import MemoryStore
from logsvc.web.app import LogsvcSite, buildRoot
from logsvc.web.guard import Guard, GuardResource

PEER = IPv4Address("TCP", "192.0.2.7", 5000)


class HoldTests(SynchronousTestCase):
    def test_revokedOnReload(self) -> None:
        """A held session is ended when its token loses the scope, not when another token goes; a released one never."""
        tokens = Tokens.fromPairs([("ingest", "a"), ("ingest", "b"), ("read", "r")])
        ended: list[str] = []
        tokens.hold(b"a", INGEST, lambda: ended.append("a"))
        tokens.hold(b"r", None, lambda: ended.append("r"))
        release = tokens.hold(b"b", INGEST, lambda: ended.append("b"))
        release()
        tokens.replace(parseTokens("ingest a\nread r2\n"))
        self.assertEqual(ended, ["r"])
        tokens.replace(parseTokens("read a\n"))
        self.assertEqual(ended, ["r", "a"])

    def test_openWithoutTokens(self) -> None:
        """Without a token file nothing is held (there is nothing to revoke)."""
        tokens = Tokens()
        tokens.hold(b"x", INGEST, lambda: self.fail("revoked"))
        tokens.replace(parseTokens(""))


class SessionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = MemoryStore()
        self.pipeline = Pipeline(self.store, reactor=self.clock, delay=0)
        self.tokens = Tokens.fromPairs([("ingest", "in-1"), ("read", "rd-1"), ("read", "rd-2")])

    def test_tcpConnectionClosed(self) -> None:
        """An acknowledged TCP connection whose token is revoked is told, closed, and acks or stores nothing more."""
        factory = IngestFactory(self.pipeline, tokens=self.tokens, acknowledge=True, clock=self.clock)
        protocol = factory.buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)
        protocol.makeConnection(transport)
        protocol.dataReceived(b"AUTH in-1\nbefore\n")
        self.clock.advance(1)
        self.assertIn(b"OK 1\n", transport.value())
        self.tokens.replace(parseTokens("ingest in-2\nread rd-1\n"))
        self.assertIn(b"ERR token revoked\n", transport.value())
        self.assertTrue(transport.disconnecting)
        transport.clear()
        protocol.dataReceived(b"after\n")
        self.clock.advance(1)
        self.assertEqual(transport.value(), b"")
        self.assertEqual([row[6] for row in self.store.rows], ["before"])

    def channel(self) -> tuple[Any, StringTransport]:
        root = GuardResource(buildRoot(self.store, self.pipeline, clock=self.clock), Guard(self.tokens))
        site = LogsvcSite(root, reactor=self.clock)
        channel = site.buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)
        channel.makeConnection(transport)
        return channel, transport

    def test_tailClosed(self) -> None:
        """A live tail opened with a read token is cut off when the token is revoked; one with another token goes on."""
        revokedChannel, revoked = self.channel()
        revokedChannel.dataReceived(b"GET /logs/tail HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer rd-1\r\n\r\n")
        keptChannel, kept = self.channel()
        keptChannel.dataReceived(b"GET /logs/tail HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer rd-2\r\n\r\n")
        self.assertTrue(revoked.value().startswith(b"HTTP/1.1 200 "))
        self.tokens.replace(parseTokens("ingest in-1\nread rd-2\n"))
        self.assertTrue(revoked.disconnected)
        self.assertFalse(kept.disconnected)

    def test_keepAliveClosed(self) -> None:
        """A keep-alive connection that authenticated with a revoked token is closed between requests."""
        channel, transport = self.channel()
        channel.dataReceived(b"GET /logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer rd-1\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 "))
        self.assertFalse(transport.disconnecting or transport.disconnected)
        self.tokens.replace(parseTokens("read rd-2\n"))
        self.assertTrue(transport.disconnected)

    def test_healthNotHeld(self) -> None:
        """A request to an open path (/health) holds no token: a reload leaves its connection alone."""
        channel, transport = self.channel()
        channel.dataReceived(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        self.tokens.replace(parseTokens(""))
        self.assertFalse(transport.disconnected)
