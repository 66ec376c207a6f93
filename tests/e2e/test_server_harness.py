# -*- test-case-name: tests.e2e.test_server_harness -*-
"""
The end-to-end tests' server harness (L{tests.e2e.server.TwistdServer}) itself.
"""

from __future__ import annotations

import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.e2e.server import TwistdServer

#: A process that listens on the two ports it is given, then ends without
#: ever answering HTTP (a server that fails right after binding).
_LISTEN_THEN_EXIT = """
import socket, sys, time
listeners = []
for port in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(port)))
    s.listen()
    listeners.append(s)
time.sleep(1)
sys.exit(3)
"""


class ListensThenExits(TwistdServer):
    def command(self) -> list[str]:
        return [sys.executable, "-c", _LISTEN_THEN_EXIT, str(self.httpPort), str(self.tcpPort)]


class StartTests(SynchronousTestCase):
    def test_exitAfterListeningFailsAtOnce(self) -> None:
        """
        A server that listens and then ends makes start() fail with its exit
        status as soon as it ended, not at the deadline.
        """
        server = ListensThenExits(self.mktemp())
        started = time.monotonic()
        with self.assertRaises(RuntimeError) as raised:
            server.start(timeout=120)
        self.assertIn("exited 3", str(raised.exception))
        self.assertLess(time.monotonic() - started, 60)
