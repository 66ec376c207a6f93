"""
End to end: L{logsvc.handler.LogsvcHandler} in a plain Python program (no
Twisted) against a real C{twistd -n logsvc}.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from twisted.trial.unittest import TestCase

from tests.e2e.server import ROOT, TwistdServer
from tests.e2e.test_senders import storedRows

#: The README's example, as a program that exits without closing anything:
#: logging's exit hook flushes the handler.
PROGRAM = """
import logging
from logsvc.handler import LogsvcHandler

logging.getLogger().addHandler(LogsvcHandler("{url}/logs", service="billing"))
logging.getLogger().setLevel(logging.INFO)
logging.info("invoice %s sent", 42, extra={{"customer": "c-7"}})
try:
    {{}}["missing"]
except KeyError:
    logging.exception("lookup failed")
for i in range(2000):
    logging.warning("batch %d", i)
"""


class HandlerTests(TestCase):
    def test_programExits(self) -> None:
        """
        A program that logs and exits has every record stored: extra fields
        as fields, the exception's traceback in fields.traceback, levels and
        service mapped; the exit flushes the queue.
        """
        server = TwistdServer(self.mktemp())
        server.start()
        self.addCleanup(server.kill)
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(PROGRAM.format(url=server.httpURL))],
            env=env,
            capture_output=True,
            timeout=60,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stderr, b"")
        rows = storedRows(server, 2002)
        self.assertEqual(len(rows), 2002)
        invoice, failure = rows[0], rows[1]
        self.assertEqual((invoice["level"], invoice["service"], invoice["message"]), (6, "billing", "invoice 42 sent"))
        self.assertEqual(invoice["fields"]["customer"], "c-7")
        self.assertEqual(invoice["fields"]["logger"], "root")
        self.assertEqual((failure["level"], failure["message"]), (3, "lookup failed"))
        self.assertIn("KeyError: 'missing'", failure["fields"]["traceback"])
        self.assertEqual([r["message"] for r in rows[2:]], [f"batch {i}" for i in range(2000)])
