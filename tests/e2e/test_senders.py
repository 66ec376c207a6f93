"""
End to end with the senders people already run: util-linux C{logger},
rsyslog forwarding with omfwd, Python's SysLogHandler and HTTPHandler, and a
GELF TCP sender, against a real C{twistd -n logsvc}.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import shutil
import socket
import sqlite3
import subprocess
import time
from typing import Any

import orjson
from twisted.trial.unittest import SkipTest, TestCase

from tests.e2e.server import TwistdServer, startWithTokens
from tests.ports import freePort

LOGGER = shutil.which("logger") or "/usr/bin/logger"
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


def need(tool: str) -> None:
    if not os.access(tool, os.X_OK):
        raise SkipTest(f"{tool} is not installed (.ci/run installs it with apt-get)")


def storedRows(server: TwistdServer, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    """
    Wait until the store holds at least C{count} records.

    @return: every stored record (fields decoded), in id order.
    """
    deadline = time.monotonic() + timeout
    while True:
        conn = sqlite3.connect(f"file:{server.db}?mode=ro", uri=True)
        try:
            rows = conn.execute(
                "SELECT ts, level, source, service, message, fields FROM logs ORDER BY id"
            ).fetchall()
        finally:
            conn.close()
        if len(rows) >= count or time.monotonic() > deadline:
            return [
                {
                    "ts": ts,
                    "level": level,
                    "source": source,
                    "service": service,
                    "message": message,
                    "fields": orjson.loads(fields) if fields else {},
                }
                for ts, level, source, service, message, fields in rows
            ]
        time.sleep(0.05)


def byService(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["service"]: row for row in rows}


class LoggerTests(TestCase):
    """
    util-linux logger over TCP, in every format and framing it has.
    """

    def setUp(self) -> None:
        need(LOGGER)
        self.server = TwistdServer(self.mktemp())
        self.server.start()
        self.addCleanup(self.server.kill)

    def logger(self, *args: str) -> None:
        subprocess.run(
            [LOGGER, "--tcp", "-n", "127.0.0.1", "-P", str(self.server.tcpPort), *args],
            check=True,
            timeout=30,
        )

    def test_formatsAndFramings(self) -> None:
        """
        RFC 5424 and RFC 3164, LF-framed and octet-counted, map PRI, host,
        tag and structured data.
        """
        self.logger("--rfc5424", "-t", "five-lf", "-p", "local3.err", "first message")
        self.logger("--rfc5424", "--octet-count", "-t", "five-oc", "-p", "user.warning",
                    "--sd-id", "origin@32473", "--sd-param", 'team="ops"', "second")
        self.logger("--rfc3164", "-t", "three-lf", "-p", "daemon.notice", "third")
        self.logger("--rfc3164", "--octet-count", "-t", "three-oc", "-p", "auth.crit", "fourth")
        rows = byService(storedRows(self.server, 4))
        self.assertEqual(sorted(rows), ["five-lf", "five-oc", "three-lf", "three-oc"])
        hostname = socket.gethostname()
        self.assertEqual(
            {name: (row["level"], row["message"]) for name, row in rows.items()},
            {"five-lf": (3, "first message"), "five-oc": (4, "second"),
             "three-lf": (5, "third"), "three-oc": (2, "fourth")},
        )
        self.assertEqual(rows["five-lf"]["fields"]["facility"], "local3")
        self.assertEqual(rows["five-oc"]["fields"]["origin@32473.team"], "ops")
        self.assertEqual(rows["three-oc"]["fields"]["facility"], "auth")
        for row in rows.values():
            self.assertIn(row["source"], (hostname, hostname.split(".")[0]))
            # RFC 3164 stamps are local time without a zone: within a day.
            self.assertLess(abs(row["ts"] - time.time() * 1_000_000), 86400 * 1_000_000)

    def test_digitLinesBesideOctetFrames(self) -> None:
        """
        On one connection, plain lines that start with digits stay whole next to
        octet-counted frames.
        """
        frame = b"<14>1 - h counted - - - multi\nline"
        payload = (
            b"2026-11-22 10:00:00 started\n42 <b>bold</b> retries\n"
            + b"%d %s" % (len(frame), frame)
            + b"7 apples\n"
        )
        with socket.create_connection(("127.0.0.1", self.server.tcpPort), timeout=10) as s:
            s.sendall(payload)
        rows = storedRows(self.server, 4)
        self.assertEqual(
            [row["message"] for row in rows],
            ["2026-11-22 10:00:00 started", "42 <b>bold</b> retries", "multi\nline", "7 apples"],
        )


RSYSLOG_CONF = """\
global(workDirectory="{work}")
module(load="imtcp")
input(type="imtcp" port="{inPort}" address="127.0.0.1" ruleset="forward")
ruleset(name="forward") {{
  action(type="omfwd" target="127.0.0.1" port="{outPort}" protocol="tcp"
         template="RSYSLOG_SyslogProtocol23Format" TCP_Framing="octet-counted")
  action(type="omfwd" target="127.0.0.1" port="{outPort}" protocol="tcp"
         template="RSYSLOG_TraditionalForwardFormat")
}}
"""


def startRsyslog(test: TestCase, config: str, outPort: int) -> int:
    """
    Run Debian's rsyslogd unprivileged in its own process, with C{config}
    (formatted with C{work}, C{inPort} and C{outPort}), its own pid file and
    work directory, stopped at the end of C{test}.

    @return: the loopback TCP port its C{imtcp} input listens on, once it does.
    """
    need(RSYSLOGD)
    work = os.path.abspath(test.mktemp())
    os.makedirs(work)
    inPort = freePort()
    conf = os.path.join(work, "rsyslog.conf")
    with open(conf, "w") as f:
        f.write(config.format(work=work, inPort=inPort, outPort=outPort))
    rsyslog = subprocess.Popen(
        [RSYSLOGD, "-n", "-f", conf, "-i", os.path.join(work, "rsyslogd.pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def stop() -> None:
        if rsyslog.poll() is None:
            rsyslog.terminate()
            rsyslog.wait(20)

    test.addCleanup(stop)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", inPort), timeout=1).close()
            return inPort
        except OSError:
            if rsyslog.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("rsyslogd did not start") from None
            time.sleep(0.05)


class RsyslogTests(TestCase):
    """
    Debian's rsyslog forwarding to logsvc with omfwd, in its own process,
    with its own configuration, pid file and work directory on loopback.
    """

    def setUp(self) -> None:
        need(RSYSLOGD)
        self.server = TwistdServer(self.mktemp())
        self.server.start()
        self.addCleanup(self.server.kill)
        self.inPort = startRsyslog(self, RSYSLOG_CONF, self.server.tcpPort)

    def test_forwardBothFramings(self) -> None:
        """
        Every message reaches logsvc twice (RFC 5424 octet-counted and RFC
        3164 LF-framed), with its tag, severity and facility.
        """
        messages = [b"<%d>Nov 22 10:00:%02d web1 app%d[7]: message %d" % (8 * 16 + i % 8, i, i, i) for i in range(20)]
        with socket.create_connection(("127.0.0.1", self.inPort), timeout=10) as s:
            s.sendall(b"".join(m + b"\n" for m in messages))
        rows = storedRows(self.server, 40)
        self.assertEqual(len(rows), 40)
        for i in range(20):
            copies = [r for r in rows if r["service"] == f"app{i}"]
            self.assertEqual(len(copies), 2, f"app{i}")
            for row in copies:
                self.assertEqual(row["message"].strip(), f"message {i}")
                self.assertEqual(row["level"], i % 8)
                self.assertEqual(row["source"], "web1")
                self.assertEqual(row["fields"]["facility"], "local0")
                self.assertEqual(row["fields"].get("procid"), "7")


class PythonLoggingTests(TestCase):
    """
    Python's logging module, unchanged: SysLogHandler over TCP, HTTPHandler.
    """

    def setUp(self) -> None:
        self.server = TwistdServer(self.mktemp())
        self.server.start()
        self.addCleanup(self.server.kill)
        self.log = logging.getLogger(f"senders.{id(self)}")
        self.log.propagate = False
        self.log.setLevel(logging.DEBUG)

    def attach(self, handler: logging.Handler) -> None:
        self.log.addHandler(handler)

        def detach() -> None:
            self.log.removeHandler(handler)
            handler.close()

        self.addCleanup(detach)

    def test_sysLogHandlerTCP(self) -> None:
        """
        SysLogHandler over TCP (NUL-terminated, no LF) keeps every message
        whole (a traceback too), its level, facility and program name.
        """
        handler = logging.handlers.SysLogHandler(
            ("127.0.0.1", self.server.tcpPort),
            facility=logging.handlers.SysLogHandler.LOG_LOCAL2,
            socktype=socket.SOCK_STREAM,
        )
        handler.setFormatter(logging.Formatter("pyapp: %(message)s"))
        self.attach(handler)
        self.log.error("disk %s full", "/var")
        self.log.warning("line one\nline two")
        self.log.debug("7 <b> looks odd")
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            self.log.exception("it broke")
        rows = storedRows(self.server, 4)
        self.assertEqual(
            [(r["level"], r["service"], r["message"], r["fields"]["facility"]) for r in rows[:3]],
            [(3, "pyapp", "disk /var full", "local2"), (4, "pyapp", "line one\nline two", "local2"),
             (7, "pyapp", "7 <b> looks odd", "local2")],
        )
        self.assertEqual(len(rows), 4)
        self.assertTrue(rows[3]["message"].startswith("it broke\nTraceback (most recent call last):\n"))
        self.assertIn("ZeroDivisionError", rows[3]["message"])

    def test_httpHandler(self) -> None:
        """
        HTTPHandler's form POSTs to /logs map msg/args, levelname, name,
        created and the rest.
        """
        handler = logging.handlers.HTTPHandler(f"127.0.0.1:{self.server.httpPort}", "/logs", method="POST")
        self.attach(handler)
        self.log.warning("user %s failed %d times", "bob", 3)
        self.log.info("plain")
        rows = storedRows(self.server, 2)
        self.assertEqual(
            [(r["level"], r["service"], r["message"]) for r in rows],
            [(4, self.log.name, "user bob failed 3 times"), (6, self.log.name, "plain")],
        )
        self.assertEqual(rows[0]["fields"]["funcName"], "test_httpHandler")
        self.assertLess(abs(rows[0]["ts"] - time.time() * 1_000_000), 600 * 1_000_000)


class PythonHTTPHandlerAuthTests(TestCase):
    """
    HTTPHandler, unchanged, against a logsvc that requires tokens.
    """

    def test_credentialsCarryTheToken(self) -> None:
        """
        HTTPHandler's basic credentials with the ingest token as password are
        accepted; with a wrong password nothing is stored.
        """
        server, _ = startWithTokens(self, TwistdServer, "ingest s3cret-ingest\n")
        log = logging.getLogger(f"authed.{id(self)}")
        log.propagate = False
        for password, message in (("wrong", "refused"), ("s3cret-ingest", "accepted")):
            handler = logging.handlers.HTTPHandler(
                f"127.0.0.1:{server.httpPort}", "/logs", method="POST", credentials=("app", password)
            )
            log.addHandler(handler)
            log.warning(message)
            log.removeHandler(handler)
            handler.close()
        rows = storedRows(server, 1)
        self.assertEqual([r["message"] for r in rows], ["accepted"])


class GelfTCPTests(TestCase):
    """
    The GELF TCP listener (C{--gelf}) with the wire format Graylog's
    senders write.
    """

    def test_gelfFrames(self) -> None:
        """
        NUL-delimited GELF frames are stored; a bad frame is counted and the
        next one on the same connection is stored.
        """
        gelfPort = freePort()
        server = TwistdServer(self.mktemp(), "--gelf", f"tcp:{gelfPort}:interface=127.0.0.1")
        server.start()
        self.addCleanup(server.kill)
        frames = [
            orjson.dumps({"version": "1.1", "host": "gh", "short_message": "g1", "level": 3, "_svc": "x"}),
            b"{not json",
            orjson.dumps({"version": "1.1", "host": "gh", "short_message": "g2", "timestamp": 1795000000.5}),
        ]
        with socket.create_connection(("127.0.0.1", gelfPort), timeout=10) as s:
            s.sendall(b"".join(f + b"\x00" for f in frames))
        rows = storedRows(server, 2)
        self.assertEqual([(r["source"], r["message"], r["level"]) for r in rows], [("gh", "g1", 3), ("gh", "g2", 6)])
        self.assertEqual(rows[1]["ts"], 1795000000500000)
        self.assertEqual(rows[0]["fields"], {"svc": "x"})
