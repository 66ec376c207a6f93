"""
The C{logsvc} command line against a real ``twistd logsvc``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from twisted.trial.unittest import TestCase

from tests.e2e.server import ROOT, TwistdServer

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
