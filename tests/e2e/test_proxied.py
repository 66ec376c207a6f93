"""
End-to-end: behind a load balancer the sender's address stays the record's
source: the PROXY protocol on a TCP listener (C{--tcp haproxy:tcp:...}) and
C{X-Forwarded-For} from C{--trusted-proxies} on HTTP.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request

from twisted.trial.unittest import TestCase

from tests.e2e.server import TwistdServer
from tests.ports import freePort


class ProxiedTests(TestCase):
    timeout = 60

    def sources(self, server: TwistdServer, count: int) -> dict[str, str]:
        deadline = time.monotonic() + 20
        while True:
            with urllib.request.urlopen(server.httpURL + "/logs?limit=100", timeout=10) as response:
                logs = json.loads(response.read())["logs"]
            if len(logs) >= count or time.monotonic() > deadline:
                return {r["message"]: r["source"] for r in logs}
            time.sleep(0.05)

    def test_proxyProtocolAndForwardedFor(self) -> None:
        """
        A TCP line after a PROXY header takes the header's source address;
        an HTTP record through a trusted proxy takes X-Forwarded-For's
        client, and one from an untrusted peer keeps the peer.
        """
        tcpPort = freePort()
        server = TwistdServer(
            self.mktemp(), "--tcp", f"haproxy:tcp:{tcpPort}:interface=127.0.0.1", "--trusted-proxies", "127.0.0.1"
        )
        server.tcpPort = tcpPort
        server.start()
        self.addCleanup(server.kill)
        with socket.create_connection(("127.0.0.1", tcpPort)) as s:
            s.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 5140\r\nplain line via proxy\n")
        request = urllib.request.Request(
            server.httpURL + "/logs",
            data=json.dumps({"message": "http via proxy"}).encode(),
            headers={"content-type": "application/json", "x-forwarded-for": "1.2.3.4, 198.51.100.9"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            self.assertEqual(response.status, 201)
        found = self.sources(server, 2)
        self.assertEqual(found.get("plain line via proxy"), "203.0.113.7")
        self.assertEqual(found.get("http via proxy"), "198.51.100.9")
