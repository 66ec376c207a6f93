"""
Tests for the authentication deadline and the unauthenticated budget of
L{logsvc.limits.GuardedFactory}: connections that do not prove themselves
are dropped in time and never take authenticated clients' places; over
real TCP ingest and HTTP protocols, with a Clock.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from logsvc.auth import Tokens
from logsvc.ingest.tcp import IngestFactory
from logsvc.limits import ConnectionBudget, GuardedFactory, UnauthenticatedBudget
from logsvc.pipeline import Pipeline
from logsvc.store.memory import MemoryStore
from logsvc.web.app import LogsvcSite, buildRoot
from logsvc.web.guard import Guard, GuardResource


def peer(n: int = 1) -> IPv4Address:
    return IPv4Address("TCP", f"192.0.2.{n}", 40000 + n)


class Silent(Protocol):
    pass


class DeadlineTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = MemoryStore()
        self.pipeline = Pipeline(self.store, reactor=self.clock, delay=0)
        self.tokens = Tokens.fromPairs([("ingest", "in-1"), ("read", "rd-1")])

    def connect(self, factory: GuardedFactory, n: int = 1) -> tuple[Any, StringTransport]:
        protocol = factory.buildProtocol(peer(n))
        transport = StringTransport(peerAddress=peer(n))
        if protocol is not None:
            protocol.makeConnection(transport)
        return protocol, transport

    def tcp(self, **kw: Any) -> GuardedFactory:
        ingest = IngestFactory(self.pipeline, tokens=self.tokens)
        return GuardedFactory(ingest, ConnectionBudget(100), clock=self.clock, authTimeout=5, establishedByProtocol=True, **kw)

    def test_noAuthLineDropped(self) -> None:
        """A TCP connection that sends a byte now and then but no AUTH line is dropped at the deadline."""
        factory = self.tcp()
        protocol, transport = self.connect(factory)
        for _ in range(4):
            protocol.dataReceived(b"x")
            self.clock.advance(1)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(factory.authTimedOut, 1)

    def test_authenticatedStays(self) -> None:
        """A connection that authenticates in time is no longer subject to the deadline."""
        protocol, transport = self.connect(self.tcp())
        protocol.dataReceived(b"AUTH in-1\nhello\n")
        self.clock.advance(60)
        self.assertFalse(transport.disconnecting)
        self.assertEqual([row[6] for row in self.store.rows], ["hello"])

    def test_stalledHandshakeDropped(self) -> None:
        """Without tokens, a connection that sends nothing (a stalled TLS handshake sends no application byte) is dropped; first bytes establish it."""
        factory = GuardedFactory(Factory.forProtocol(Silent), ConnectionBudget(10), clock=self.clock, authTimeout=5)
        _, stalled = self.connect(factory, 1)
        talking, kept = self.connect(factory, 2)
        talking.dataReceived(b"hi")
        self.clock.advance(5)
        self.assertTrue(stalled.disconnecting)
        self.assertFalse(kept.disconnecting)

    def test_perPeerShare(self) -> None:
        """One address may hold only a few unauthenticated connections; another address still gets in."""
        factory = self.tcp(unauthenticated=UnauthenticatedBudget(100, perPeer=3))
        self.assertEqual(UnauthenticatedBudget(4, perPeer=8).perPeer, 2)
        held = [self.connect(factory, 1)[0] for _ in range(3)]
        self.assertIsNone(self.connect(factory, 1)[0])
        self.assertIsNotNone(self.connect(factory, 2)[0])
        held[0].dataReceived(b"AUTH in-1\n")
        # Established: its place is free for the address again.
        self.assertIsNotNone(self.connect(factory, 1)[0])

    def test_trustedProxyNotHeldToAnAddressShare(self) -> None:
        """A trusted load balancer's address, which stands for many clients, may open more than one address's share; others stay held to it."""
        from logsvc.web.forwarded import isTrusted, parseTrustedProxies

        proxies = parseTrustedProxies("192.0.2.1")
        budget = UnauthenticatedBudget(100, perPeer=3, sharedAddress=lambda address: isTrusted(address, proxies))
        factory = self.tcp(unauthenticated=budget)
        self.assertTrue(all(self.connect(factory, 1)[0] is not None for _ in range(10)))
        self.assertTrue(all(self.connect(factory, 2)[0] is not None for _ in range(3)))
        self.assertIsNone(self.connect(factory, 2)[0])

    def test_trustedProxiesOption(self) -> None:
        """--trusted-proxies exempts those addresses from the per-address share of every listener's budget."""
        from logsvc.config import parseConfig
        from logsvc.trust import Protection

        config = parseConfig("--trusted-proxies", "10.0.0.5")
        budget = Protection(config, self.pipeline, self.store, self.clock).unauthenticatedBudget()
        for _ in range(budget.perPeer + 2):
            self.assertTrue(budget.admits("10.0.0.5"))
            budget.enter(Silent(), "10.0.0.5")  # type: ignore[arg-type]
        for _ in range(budget.perPeer):
            budget.enter(Silent(), "10.0.0.6")  # type: ignore[arg-type]
        self.assertFalse(budget.admits("10.0.0.6"))

    def test_listenerShareEvictsOldest(self) -> None:
        """When a listener's unauthenticated connections are all taken, a new one replaces the oldest, which is dropped."""
        factory = self.tcp(unauthenticated=UnauthenticatedBudget(3, perPeer=1))
        transports = [self.connect(factory, n)[1] for n in range(1, 4)]
        protocol, _ = self.connect(factory, 9)
        self.assertIsNotNone(protocol)
        self.assertTrue(transports[0].disconnecting)
        self.assertFalse(transports[1].disconnecting)

    def test_httpWhileAttackerHoldsEverySlot(self) -> None:
        """With every unauthenticated HTTP slot held by silent attackers, /health and an authenticated request are still answered."""
        site = LogsvcSite(GuardResource(buildRoot(self.store, self.pipeline, clock=self.clock), Guard(self.tokens)), reactor=self.clock)
        factory = GuardedFactory(
            site, ConnectionBudget(20), clock=self.clock, authTimeout=5,
            unauthenticated=UnauthenticatedBudget(4, perPeer=2), establishedByProtocol=True,
        )
        for n in range(10, 18):
            self.connect(factory, n)
        protocol, transport = self.connect(factory, 1)
        protocol.dataReceived(b"GET /logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer rd-1\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 "))
        protocol, transport = self.connect(factory, 2)
        protocol.dataReceived(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 "))
        # The authenticated connection holds no unauthenticated slot.
        self.assertLessEqual(len(factory.unauthenticated), 4)
