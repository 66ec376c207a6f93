"""
End to end with the UDP senders people already run, unchanged: util-linux
C{logger -d}, Python's C{SysLogHandler} (UDP is its default), rsyslog's
C{omfwd} over UDP, and graypy's C{GELFUDPHandler} with a message big enough to
be chunked, against a real C{twistd -n logsvc --udp}.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import socket
import subprocess
import urllib.request

from twisted.trial.unittest import TestCase

from tests.e2e.server import ROOT, TWISTD, TwistdServer
from tests.e2e.test_senders import LOGGER, need, startRsyslog, storedRows
from tests.ports import freeUDPPort


class UDPServerTestCase(TestCase):
    def setUp(self) -> None:
        self.udpPort = freeUDPPort()
        self.server = TwistdServer(self.mktemp(), "--udp", f"udp:{self.udpPort}:interface=127.0.0.1")
        self.server.start()
        self.addCleanup(self.server.kill)

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(self.server.httpURL + "/metrics", timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} not in /metrics")


class LoggerUDPTests(UDPServerTestCase):
    def logger(self, *args: str) -> None:
        subprocess.run(
            [LOGGER, "-d", "-n", "127.0.0.1", "-P", str(self.udpPort), *args], check=True, timeout=30
        )

    def test_logger(self) -> None:
        """logger -d in RFC 5424 and RFC 3164: one datagram, one record, PRI, tag and host mapped."""
        need(LOGGER)
        self.logger("--rfc5424", "-t", "udp-five", "-p", "local3.err", "first over udp")
        self.logger("--rfc3164", "-t", "udp-three", "-p", "daemon.notice", "second over udp")
        rows = {row["service"]: row for row in storedRows(self.server, 2)}
        self.assertEqual(
            {name: (row["level"], row["message"], row["fields"]["facility"]) for name, row in rows.items()},
            {"udp-five": (3, "first over udp", "local3"), "udp-three": (5, "second over udp", "daemon")},
        )
        hostname = socket.gethostname()
        self.assertIn(rows["udp-five"]["source"], (hostname, hostname.split(".")[0]))
        self.assertGreater(self.metric("logsvc_udp_receive_buffer_bytes"), 0)
        self.assertEqual(self.metric("logsvc_udp_datagrams_total"), 2)


class SysLogHandlerUDPTests(UDPServerTestCase):
    def test_defaultHandler(self) -> None:
        """SysLogHandler with its defaults (UDP, NUL-terminated) keeps level, program and a traceback whole."""
        handler = logging.handlers.SysLogHandler(
            ("127.0.0.1", self.udpPort), facility=logging.handlers.SysLogHandler.LOG_LOCAL4
        )
        handler.setFormatter(logging.Formatter("pyudp: %(message)s"))
        log = logging.getLogger(f"udp.{id(self)}")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)
        self.addCleanup(handler.close)
        self.addCleanup(log.removeHandler, handler)
        log.warning("disk %s nearly full", "/srv")
        try:
            raise KeyError("gone")
        except KeyError:
            log.exception("lookup failed")
        rows = storedRows(self.server, 2)
        self.assertEqual(
            [(r["level"], r["service"], r["fields"]["facility"]) for r in rows],
            [(4, "pyudp", "local4"), (3, "pyudp", "local4")],
        )
        self.assertEqual(rows[0]["message"], "disk /srv nearly full")
        self.assertTrue(rows[1]["message"].startswith("lookup failed\nTraceback (most recent call last):\n"))
        self.assertIn("KeyError: 'gone'", rows[1]["message"])


RSYSLOG_UDP_CONF = """\
global(workDirectory="{work}")
module(load="imtcp")
input(type="imtcp" port="{inPort}" address="127.0.0.1" ruleset="forward")
ruleset(name="forward") {{
  action(type="omfwd" target="127.0.0.1" port="{outPort}" protocol="udp"
         template="RSYSLOG_SyslogProtocol23Format")
  action(type="omfwd" target="127.0.0.1" port="{outPort}" protocol="udp"
         template="RSYSLOG_TraditionalForwardFormat")
}}
"""


class RsyslogUDPTests(UDPServerTestCase):
    def test_omfwdUDP(self) -> None:
        """rsyslog (unprivileged, its own config) forwards over UDP in RFC 5424 and 3164: every message twice."""
        inPort = startRsyslog(self, RSYSLOG_UDP_CONF, self.udpPort)
        messages = [b"<%d>Dec  4 10:00:%02d web7 app%d[9]: udp message %d" % (8 * 17 + i % 8, i, i, i) for i in range(10)]
        with socket.create_connection(("127.0.0.1", inPort), timeout=10) as connection:
            connection.sendall(b"".join(m + b"\n" for m in messages))
        rows = storedRows(self.server, 20)
        self.assertEqual(len(rows), 20)
        for i in range(10):
            copies = [r for r in rows if r["service"] == f"app{i}"]
            self.assertEqual(len(copies), 2, f"app{i}")
            for row in copies:
                self.assertEqual(
                    (row["message"].strip(), row["level"], row["source"], row["fields"]["facility"]),
                    (f"udp message {i}", i % 8, "web7", "local1"),
                )


class GraypyUDPTests(UDPServerTestCase):
    def test_chunkedGelf(self) -> None:
        """graypy's GELFUDPHandler: a small message in one datagram, a big one in zlib chunks, both whole."""
        import graypy

        handler = graypy.GELFUDPHandler("127.0.0.1", self.udpPort, localname="gray-host", facility="grayapp")
        log = logging.getLogger(f"gelf.{id(self)}")
        log.propagate = False
        log.addHandler(handler)
        self.addCleanup(handler.close)
        self.addCleanup(log.removeHandler, handler)
        big = os.urandom(6000).hex()  # ~12 KB of hex, ~7 KB compressed: several 1420-byte chunks
        log.error("small one", extra={"request_id": "r-1"})
        log.warning("big %s", big)
        rows = storedRows(self.server, 2)
        self.assertEqual(
            [(r["level"], r["source"], r["service"]) for r in rows],
            [(3, "gray-host", "grayapp"), (4, "gray-host", "grayapp")],
        )
        self.assertEqual(rows[0]["message"], "small one")
        self.assertEqual(rows[0]["fields"]["request_id"], "r-1")
        self.assertEqual(rows[1]["message"], "big " + big)


class UDPTokenTests(TestCase):
    def test_needsExplicitNone(self) -> None:
        """With --token-file, --udp refuses to start (one line saying why) unless --udp-auth none is given."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        tokens = os.path.join(directory, "tokens")
        with open(tokens, "w") as f:
            f.write("ingest secret\n")
        env = dict(os.environ, PYTHONPATH=ROOT)
        result = subprocess.run(
            [*TWISTD, "-n", "--pidfile=", "logsvc", "--token-file", tokens, "--udp", "udp:0:interface=127.0.0.1",
             "--db", os.path.join(directory, "db")],
            cwd=directory, env=env, capture_output=True, timeout=60,
        )
        self.assertNotEqual(result.returncode, 0)
        output = result.stdout + result.stderr
        self.assertIn(b"--udp-auth none", output)
        self.assertNotIn(b"Traceback", output)
        port = freeUDPPort()
        server = TwistdServer(directory, "--token-file", tokens, "--udp", f"udp:{port}:interface=127.0.0.1",
                              "--udp-auth", "none")
        server.start()
        self.addCleanup(server.kill)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"<14>app: accepted without a token", ("127.0.0.1", port))
        self.assertEqual([r["message"] for r in storedRows(server, 1)], ["accepted without a token"])


