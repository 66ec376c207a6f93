"""
The C{logsvc} command line against a real ``twistd logsvc``.
"""

from __future__ import annotations

import io
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Generator
from typing import IO, Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from logsvc.cli import run
from logsvc.ingest.tcp import IngestFactory
from logsvc.pipeline import Pipeline
from logsvc.store.memory import MemoryStore
from tests.e2e.server import ROOT, TwistdServer
from tests.ports import freePort

CLI = [sys.executable, "-c", "from logsvc.cli import main; main()"]


class CommandLineEndToEndTests(TestCase):
    def setUp(self) -> None:
        self.server = TwistdServer(self.mktemp())
        self.server.start()
        self.addCleanup(self.server.kill)
        self.env = dict(os.environ, PYTHONPATH=ROOT, LOGSVC_URL=self.server.httpURL)

    def cli(self, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*CLI, *args], input=stdin, env=self.env, capture_output=True, timeout=60)

    def test_send_query_stats(self) -> None:
        """
        Lines piped to C{logsvc send} come back from C{logsvc query} and are
        counted by C{logsvc stats}; a refusal exits 1 with the server's reason.
        """
        sent = self.cli("send", "--service", "cron", "--level", "error", stdin=b"first\nsecond\n")
        self.assertEqual((sent.returncode, sent.stdout), (0, b"accepted 2\n"))
        found = self.cli("query", "--service", "cron", "--order", "asc")
        self.assertEqual(found.returncode, 0, found.stderr)
        self.assertEqual([line.split()[-1] for line in found.stdout.decode().splitlines()], ["first", "second"])
        stats = self.cli("stats", "--by", "level")
        self.assertEqual(stats.stdout.split(), [b"2", b"error"])
        bad = self.cli("query", "--level", "loud")
        self.assertEqual(bad.returncode, 1)
        self.assertIn(b"unknown level", bad.stderr)

    def test_tail_follows_tcp_records(self) -> None:
        """
        C{logsvc tail} prints records that arrive over TCP after it started.
        """
        tail = subprocess.Popen(
            [*CLI, "tail", "--service", "live"], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.addCleanup(tail.wait, 30)
        self.addCleanup(tail.kill)
        assert tail.stdout is not None
        # Send until the tail is connected and prints: bounded to 50 rounds.
        line = b""
        os.set_blocking(tail.stdout.fileno(), False)
        for attempt in range(50):
            with socket.create_connection(("127.0.0.1", self.server.tcpPort), timeout=10) as s:
                s.sendall(b'{"service": "live", "msg": "hello %d"}\n' % attempt)
            time.sleep(0.2)
            try:
                line = tail.stdout.readline() or b""
            except BlockingIOError:
                line = b""
            if line:
                break
        self.assertIn(b" live 127.0.0.1 hello ", line)


class CommandLineFailureTests(TestCase):
    """
    The C{logsvc} command when the server is not there, is not HTTP, or goes
    away mid-tail: one line naming the URL, exit status 2, never a hang.
    """

    timeout = 120

    @inlineCallbacks
    def runCLI(self, *argv: str) -> Generator[Deferred[Any], Any, tuple[int, str, str]]:
        out, err = io.StringIO(), io.StringIO()
        status = yield run(list(argv), out=out, err=err, stdin=io.StringIO(""))
        return status, out.getvalue(), err.getvalue()

    @inlineCallbacks
    def test_closedPort(self) -> Generator[Deferred[Any], Any, None]:
        """
        Every command against a port nobody listens on says C{cannot reach
        URL} in one line and exits 2; tail too.
        """
        url = f"http://127.0.0.1:{freePort()}"
        for command in (["send", "x"], ["query"], ["stats"], ["tail"]):
            status, out, err = yield self.runCLI("--url", url, *command)
            self.assertEqual((status, out), (2, ""), command)
            self.assertEqual(err, f"logsvc: cannot reach {url}: connection refused\n", command)

    @inlineCallbacks
    def test_tcpIngestPort(self) -> Generator[Deferred[Any], Any, None]:
        """
        Given logsvc's TCP ingest port as --url, every command says it is not
        the HTTP API, quoting the port's hint, and exits 2 at once; nothing
        is stored.
        """
        store = MemoryStore()
        port = reactor.listenTCP(0, IngestFactory(Pipeline(store, reactor=reactor, delay=0)), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}"
        for command in (["query", "--level", "error"], ["tail"], ["send", "hello"]):
            started = time.monotonic()
            status, out, err = yield self.runCLI("--url", url, *command)
            self.assertEqual(status, 2, command)
            self.assertTrue(err.startswith(f"logsvc: {url} is not logsvc's HTTP API; it answered: "), err)
            self.assertIn("TCP ingest port", err)
            self.assertEqual(len(err.splitlines()), 1)
            self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(store.rows, [])

    @inlineCallbacks
    def test_silentServer(self) -> Generator[Deferred[Any], Any, None]:
        """
        A TCP server that accepts and never answers costs --timeout seconds,
        then exit 2 saying so; tail too.
        """
        port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}"
        for command in (["query"], ["tail"]):
            status, out, err = yield self.runCLI("--url", url, "--timeout", "0.5", *command)
            self.assertEqual((status, err), (2, f"logsvc: cannot reach {url}: no answer within 0.5 s\n"), command)


class TailAcrossRestartTests(TestCase):
    """
    C{logsvc tail} against a real server that stops and comes back.
    """

    timeout = 180

    def test_scriptExitStatus(self) -> None:
        """
        The console script itself exits 2 with the one line when the server
        cannot be reached, for tail as for the others.
        """
        url = f"http://127.0.0.1:{freePort()}"
        for command in ("tail", "query"):
            done = subprocess.run([*CLI, "--url", url, command], env=dict(os.environ, PYTHONPATH=ROOT),
                                  capture_output=True, timeout=60)
            self.assertEqual((done.returncode, done.stdout), (2, b""))
            self.assertEqual(done.stderr, f"logsvc: cannot reach {url}: connection refused\n".encode())

    def test_serverStopsMidTail(self) -> None:
        """
        A tail whose server stops prints one line on standard error per
        reconnection attempt, keeps trying, and once the server is back goes
        on printing new records.
        """
        server = TwistdServer(self.mktemp())
        server.start()
        self.addCleanup(server.kill)
        env = dict(os.environ, PYTHONPATH=ROOT, LOGSVC_URL=server.httpURL)
        tail = subprocess.Popen(
            [*CLI, "tail", "--service", "live"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.addCleanup(tail.wait, 30)
        self.addCleanup(tail.kill)
        assert tail.stdout is not None and tail.stderr is not None
        out, err = LineReader(tail.stdout), LineReader(tail.stderr)

        def sendUntilPrinted(text: str) -> bytes:
            for attempt in range(100):
                with socket.create_connection(("127.0.0.1", server.tcpPort), timeout=10) as s:
                    s.sendall(b'{"service": "live", "msg": "%s %d"}\n' % (text.encode(), attempt))
                line = out.readLine(0.3)
                if line:
                    return line
            self.fail(f"tail printed nothing for {text!r}; stderr: {err.lines!r}")

        self.assertIn(b" live 127.0.0.1 before ", sendUntilPrinted("before"))
        server.kill()
        deadline = time.monotonic() + 30
        while len(err.lines) < 3 and time.monotonic() < deadline:
            err.readLine(0.5)
        self.assertGreaterEqual(len(err.lines), 3, err.lines)
        for line in err.lines:
            self.assertIn(b"logsvc: tail: lost " + server.httpURL.encode(), line)
            self.assertIn(b"; reconnecting in ", line)
        self.assertIsNone(tail.poll())
        server.start()
        self.assertIn(b" live 127.0.0.1 after ", sendUntilPrinted("after"))
        self.assertIsNone(tail.poll())


class LineReader:
    """
    Lines from a subprocess's pipe, read without blocking past a deadline.
    """

    def __init__(self, pipe: IO[bytes]) -> None:
        self.fd = pipe.fileno()
        os.set_blocking(self.fd, False)
        self.buffer = b""
        self.lines: list[bytes] = []

    def readLine(self, timeout: float) -> bytes:
        """
        @return: the next line, or C{b""} when none came within C{timeout}.
        """
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return b""
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return b""
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        self.lines.append(line)
        return line
