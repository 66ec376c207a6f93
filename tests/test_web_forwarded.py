"""
Tests for L{logsvc.web.forwarded}: X-Forwarded-For believed only through
trusted proxies, and the request's client address that follows from it.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyChannel

from logsvc.web.app import LogsvcRequest
from logsvc.web.forwarded import forwardedClient, parseTrustedProxies

TRUSTED = parseTrustedProxies("10.0.0.5, 10.1.0.0/16,::1")


class ForwardedClientTests(SynchronousTestCase):
    def test_trustedPeer(self) -> None:
        """A trusted peer's X-Forwarded-For names the client."""
        self.assertEqual(forwardedClient("10.0.0.5", b"203.0.113.7", TRUSTED), "203.0.113.7")

    def test_untrustedPeer(self) -> None:
        """Any other peer keeps its own address, whatever the header claims."""
        self.assertIsNone(forwardedClient("198.51.100.1", b"203.0.113.7", TRUSTED))

    def test_chainRightToLeft(self) -> None:
        """Hops are read from the right through trusted proxies only: a forged left part is ignored."""
        header = b"1.2.3.4, 203.0.113.7, 10.1.2.3"
        self.assertEqual(forwardedClient("10.0.0.5", header, TRUSTED), "203.0.113.7")

    def test_allTrustedOrGarbage(self) -> None:
        """No untrusted hop, or a hop that is not an address, keeps the peer."""
        self.assertIsNone(forwardedClient("10.0.0.5", b"10.1.0.9", TRUSTED))
        self.assertIsNone(forwardedClient("10.0.0.5", b"unknown", TRUSTED))
        self.assertIsNone(forwardedClient("10.0.0.5", None, TRUSTED))

    def test_ipv6(self) -> None:
        """IPv6 proxies and clients work, bracketed or not."""
        self.assertEqual(forwardedClient("::1", b"[2001:db8::7]", TRUSTED), "2001:db8::7")

    def test_parseErrors(self) -> None:
        """A bad entry is an error naming it."""
        error = self.assertRaises(ValueError, parseTrustedProxies, "10.0.0.5,proxy.example")
        self.assertIn("proxy.example", str(error))


class RequestClientAddressTests(SynchronousTestCase):
    def request(self, peer: str, forwarded: bytes | None, trusted: str | None) -> LogsvcRequest:
        channel = DummyChannel()
        channel.site.trustedProxies = parseTrustedProxies(trusted) if trusted else ()
        request = LogsvcRequest(channel)
        request.client = IPv6Address("TCP", peer, 1234) if ":" in peer else IPv4Address("TCP", peer, 1234)
        if forwarded is not None:
            request.requestHeaders.addRawHeader(b"x-forwarded-for", forwarded)
        return request

    def test_forwardedFromTrusted(self) -> None:
        """Through a trusted proxy, the request's client address is the forwarded one."""
        address = self.request("10.0.0.5", b"203.0.113.7", "10.0.0.5").getClientAddress()
        self.assertEqual(address.host, "203.0.113.7")

    def test_notConfigured(self) -> None:
        """Without --trusted-proxies the header changes nothing."""
        address = self.request("10.0.0.5", b"203.0.113.7", None).getClientAddress()
        self.assertEqual(address.host, "10.0.0.5")
