"""
End to end: a real ``twistd -n logsvc``, real sockets, the real treq client.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from logsvc.client import LogClient
from tests.e2e.server import ROOT, TWISTD, TwistdServer


def makeClient(testCase: TestCase, url: str) -> LogClient:
    """
    @return: a L{LogClient} whose connections are closed when the test ends.
    """
    pool = HTTPConnectionPool(reactor, persistent=True)
    testCase.addCleanup(pool.closeCachedConnections)
    return LogClient(url, httpClient=HTTPClient(Agent(reactor, pool=pool)))


def sendLines(port: int, payload: bytes) -> None:
    """
    Write C{payload} to the TCP listener and close, waiting for the server's
    side to close too.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(30)
        s.recv(1)


class PluginTests(TestCase):
    def test_help(self) -> None:
        """
        C{twistd logsvc --help} lists every documented option.
        """
        output = subprocess.run(
            [*TWISTD, "logsvc", "--help"],
            capture_output=True,
            env={"PYTHONPATH": ROOT, "PATH": "/usr/bin:/bin"},
            check=True,
            timeout=60,
        ).stdout.decode()
        for option in ("--tcp=", "--http=", "--db=", "--max-line=", "--max-body=", "--drain-timeout="):
            self.assertIn(option, output)


class RoundTripTests(TestCase):
    def setUp(self) -> None:
        self.server = TwistdServer(self.mktemp())
        self.server.start()
        self.addCleanup(self.server.kill)
        self.client = makeClient(self, self.server.httpURL)

    @inlineCallbacks
    def test_tcp_and_http_records_read_back(self) -> None:
        """
        Lines sent over TCP (plain, JSON, CRLF, last one without newline) and
        records sent with LogClient all come back from GET /logs with filters.
        """
        sendLines(
            self.server.tcpPort,
            b'plain one\n{"msg": "json two", "level": "error", "service": "api", "k": 1}\r\n'
            b"\xffbad utf8\nlast without newline",
        )
        accepted = yield self.client.send(
            [
                {"message": "http three", "level": "warn", "service": "web", "host": "h1"},
                {"message": "http four", "level": "critical", "service": "api"},
            ]
        )
        self.assertEqual(accepted, 2)
        page = yield self.client.query(order="asc")
        self.assertEqual(
            [r["message"] for r in page.logs],
            ["plain one", "json two", "\ufffdbad utf8", "last without newline", "http three", "http four"],
        )
        self.assertEqual(page.logs[1]["fields"], {"k": 1})
        self.assertEqual(page.logs[0]["source"], "127.0.0.1")
        self.assertEqual(page.logs[4]["source"], "h1")
        errors = yield self.client.query(level="error", service="api", order="asc")
        self.assertEqual([r["message"] for r in errors.logs], ["json two", "http four"])
        first = yield self.client.query(limit=4)
        second = yield self.client.query(limit=4, cursor=first.next)
        self.assertEqual(len(first.logs) + len(second.logs), 6)
        self.assertIsNone(second.next)


class DurabilityTests(TestCase):
    @inlineCallbacks
    def test_kill9_keeps_every_acknowledged_record(self) -> None:
        """
        Every record LogClient saw acknowledged is in the store after
        C{kill -9} and a restart on the same file.
        """
        server = TwistdServer(self.mktemp())
        server.start()
        self.addCleanup(server.kill)
        client = makeClient(self, server.httpURL)
        acknowledged = []
        for batch in range(20):
            records = [{"message": f"r-{batch}-{i}"} for i in range(50)]
            yield client.send(records)
            acknowledged.extend(r["message"] for r in records)
        server.kill()
        server.start()
        stored = set(server.messages())
        self.assertEqual(set(acknowledged) - stored, set())
        page = yield client.query(q="r-19-49")
        self.assertEqual([r["message"] for r in page.logs], ["r-19-49"])

    def test_sigterm_stores_lines_still_in_the_socket_buffer(self) -> None:
        """
        Lines a sender wrote and closed just before SIGTERM are all stored
        before the process exits, and the exit is clean.
        """
        server = TwistdServer(self.mktemp())
        server.start()
        self.addCleanup(server.kill)
        lines = [f"line {i} of the drain test".encode() for i in range(30_000)]
        with socket.create_connection(("127.0.0.1", server.tcpPort), timeout=10) as s:
            s.sendall(b"\n".join(lines) + b"\n")
        server.signal(signal.SIGTERM)
        # twistd re-raises the signal on its way out, so a clean stop exits -SIGTERM.
        self.assertIn(server.wait(60), (0, -signal.SIGTERM))
        self.assertIn("Server Shut Down.", server.log())
        self.assertEqual(len(server.messages()), len(lines))


class UnixEndpointTests(TestCase):
    def test_unix_socket_ingest(self) -> None:
        """
        An endpoint string such as C{unix:PATH} works for TCP-style ingest;
        the source of such records is C{"unix"}.
        """
        directory = self.mktemp()
        # AF_UNIX paths are limited to ~107 bytes; trial's temp paths are longer.
        socketDir = tempfile.mkdtemp(prefix="logsvc-")
        self.addCleanup(shutil.rmtree, socketDir, True)
        path = os.path.join(socketDir, "ingest.sock")
        server = TwistdServer(directory)
        server.extra = ["--tcp", f"unix:{path}"]
        server.start(checkTCP=False)
        self.addCleanup(server.kill)
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
            s.sendall(b"over a unix socket\n")
            s.shutdown(socket.SHUT_WR)
            s.settimeout(30)
            s.recv(1)
        server.stop()
        self.assertEqual(server.messages(), ["over a unix socket"])
