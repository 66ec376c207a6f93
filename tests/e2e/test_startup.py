"""
End-to-end tests of C{twistd logsvc}'s start: every mistake ends the process
with a non-zero status and one line naming the option, the value and the
cause (no traceback); a good start reports every listener and the store in
C{/health}.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from twisted.trial.unittest import TestCase

from logsvc.speedups import startupLine
from tests.e2e.server import ROOT, TWISTD, TwistdServer
from tests.ports import freePort, freeUDPPort

#: The user twistd switches to (C{--uid}/C{--gid}) when the tests run as
#: root, so file permissions apply.
NOBODY = 65534


class StartupFailureTests(TestCase):
    """
    C{twistd -n logsvc} with one mistake each.
    """

    #: How twistd is run.
    twistdCommand = TWISTD

    def setUp(self) -> None:
        # twistd running as another user (--uid) must reach the files, and
        # the tree the tests run in may sit below a private directory (CI
        # copies the source into a mktemp -d, mode 0700): a directory of its
        # own in the system's temporary directory is reachable by anyone.
        self.directory = tempfile.mkdtemp(prefix="logsvc-startup-")
        os.chmod(self.directory, 0o755)
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.db = os.path.join(self.directory, "logsvc.sqlite3")

    def twistd(
        self, *options: str, db: str | None = None, uid: int | None = None
    ) -> tuple[int, str]:
        """
        Run C{twistd -n logsvc} on free loopback ports with C{options} (they
        override the defaults given here).

        @return: the exit status and everything it printed.
        """
        twistdOptions = ["-n", "--pidfile="]
        if uid is not None:
            twistdOptions += [f"--uid={uid}", f"--gid={uid}"]
        command = [
            *self.twistdCommand, *twistdOptions, "logsvc",
            "--tcp", f"tcp:{freePort()}:interface=127.0.0.1",
            "--http", f"tcp:{freePort()}:interface=127.0.0.1",
            "--db", db or self.db,
            *options,
        ]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=ROOT)
        result = subprocess.run(
            command, cwd=self.directory, env=env, capture_output=True, timeout=60
        )
        return result.returncode, (result.stdout + result.stderr).decode("utf-8", "replace")

    def assertFailsWith(
        self, line: str, *options: str, db: str | None = None, uid: int | None = None
    ) -> None:
        """
        The process exits non-zero, printing C{line} once, at the end of a
        line, and no traceback.
        """
        code, output = self.twistd(*options, db=db, uid=uid)
        self.assertNotEqual(code, 0, output)
        self.assertNotIn("Traceback", output)
        matching = [printed for printed in output.splitlines() if printed.endswith(line)]
        self.assertEqual(len(matching), 1, output)

    def busyTCPPort(self) -> int:
        """
        @return: a loopback port another socket listens on until the test ends.
        """
        held = socket.socket()
        self.addCleanup(held.close)
        held.bind(("127.0.0.1", 0))
        held.listen()
        return int(held.getsockname()[1])

    def unprivileged(self) -> int | None:
        """
        @return: the uid to run twistd as so permissions apply (root ignores
            them), or L{None} when the tests already run unprivileged.
        """
        return NOBODY if os.getuid() == 0 else None

    def test_tcpPortInUse(self) -> None:
        """A TCP ingest port another process holds is named in one line: it no longer runs without it."""
        port = self.busyTCPPort()
        endpoint = f"tcp:{port}:interface=127.0.0.1"
        self.assertFailsWith(f"--tcp {endpoint}: address already in use", "--tcp", endpoint)

    def test_daemonized(self) -> None:
        """Daemonized, the mistake is the parent's one line too, and it exits at once with the pid file gone."""
        port = self.busyTCPPort()
        endpoint = f"tcp:{port}:interface=127.0.0.1"
        pidfile = os.path.join(self.directory, "twistd.pid")
        command = [
            *TWISTD, f"--pidfile={pidfile}", f"--logfile={os.path.join(self.directory, 'twistd.log')}", "logsvc",
            "--tcp", endpoint, "--http", f"tcp:{freePort()}:interface=127.0.0.1", "--db", self.db,
        ]  # fmt: skip
        result = subprocess.run(
            command, cwd=self.directory, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, timeout=60
        )
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"--tcp {endpoint}: address already in use", result.stderr.decode())
        # The parent exits as soon as the daemon reports the failure; the
        # daemon removes its pid file on its way out, a moment later.
        deadline = time.monotonic() + 10
        while os.path.exists(pidfile) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(os.path.exists(pidfile))
        with open(os.path.join(self.directory, "twistd.log")) as f:
            log = f.read()
        self.assertEqual(log.count(f"--tcp {endpoint}: address already in use"), 1)
        self.assertNotIn("Traceback", log)

    def test_otherListenersInUse(self) -> None:
        """The same holds for --http, --gelf, --tcp-acked and --forward."""
        for option in ("--http", "--gelf", "--tcp-acked", "--forward"):
            endpoint = f"tcp:{self.busyTCPPort()}:interface=127.0.0.1"
            self.assertFailsWith(f"{option} {endpoint}: address already in use", option, endpoint)

    def test_grpcPortInUse(self) -> None:
        """An OTLP/gRPC port another process holds is named too (grpcio says only that it failed)."""
        endpoint = f"tcp:{self.busyTCPPort()}:interface=127.0.0.1"
        self.assertFailsWith(
            f"--otlp-grpc {endpoint}: cannot listen (address already in use, or not on this machine)",
            "--otlp-grpc",
            endpoint,
        )

    def test_otlpGrpcWithoutExtra(self) -> None:
        """
        Without grpcio (its import made to fail in the twistd process, as
        when the extra logsvc[otlp] is not installed), --otlp-grpc is one
        line naming the pip command.
        """
        self.twistdCommand = [
            sys.executable, "-c", "import sys; sys.modules['grpc'] = None; from twisted.scripts.twistd import run; run()"
        ]  # fmt: skip
        endpoint = f"tcp:{freePort()}:interface=127.0.0.1"
        code, output = self.twistd("--otlp-grpc", endpoint)
        self.assertNotEqual(code, 0)
        self.assertEqual(
            output.strip(),
            f"twistd logsvc: --otlp-grpc {endpoint}: OTLP/gRPC needs the extra logsvc[otlp]"
            " (import of grpc halted; None in sys.modules): pip install 'logsvc[otlp]'",
        )

    def test_udpPortInUse(self) -> None:
        """A UDP port another socket holds is named too."""
        held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(held.close)
        held.bind(("127.0.0.1", 0))
        endpoint = f"udp:{held.getsockname()[1]}:interface=127.0.0.1"
        self.assertFailsWith(f"--udp {endpoint}: address already in use", "--udp", endpoint)

    def test_barePort(self) -> None:
        """A bare port is a one-line usage error that says what was meant, without the whole help."""
        code, output = self.twistd("--http", "18080")
        self.assertNotEqual(code, 0)
        self.assertEqual(
            output.strip(), "twistd logsvc: --http 18080: not an endpoint; did you mean tcp:18080?"
        )

    def test_badValue(self) -> None:
        """Any malformed value is one line naming option and value."""
        code, output = self.twistd("--max-line", "lots")
        self.assertNotEqual(code, 0)
        self.assertEqual(
            output.strip(), "twistd logsvc: --max-line lots: not a size (e.g. 65536, 64KiB, 10MB)"
        )

    def test_missingDirectory(self) -> None:
        """A database in a directory that does not exist is named with the directory."""
        db = os.path.join(self.directory, "missing", "x.sqlite3")
        self.assertFailsWith(f"--db {db}: directory {os.path.dirname(db)} does not exist", db=db)
        self.assertFalse(os.path.exists(os.path.dirname(db)))

    def test_unwritableDirectory(self) -> None:
        """A directory the service cannot write is named (SQLite needs it for its -wal file)."""
        locked = os.path.join(self.directory, "locked")
        os.makedirs(locked)
        os.chmod(locked, 0o555)
        self.addCleanup(os.chmod, locked, 0o755)
        db = os.path.join(locked, "x.sqlite3")
        self.assertFailsWith(
            f"--db {db}: directory {locked} is not writable (SQLite keeps the database's -wal and -shm files there)",
            db=db,
            uid=self.unprivileged(),
        )

    def test_notADatabase(self) -> None:
        """A file that is not an SQLite database is refused as such, and left alone."""
        with open(self.db, "wb") as f:
            f.write(b"these are my notes\n")
        self.assertFailsWith(f"--db {self.db}: not an SQLite database")
        with open(self.db, "rb") as f:
            self.assertEqual(f.read(), b"these are my notes\n")

    def test_readOnlyDatabase(self) -> None:
        """A database file the service may not write is refused as read-only."""
        shared = os.path.join(self.directory, "shared")
        os.makedirs(shared)
        os.chmod(shared, 0o777)
        db = os.path.join(shared, "x.sqlite3")
        server = TwistdServer(os.path.join(self.directory, "first"), db=db)
        server.start()
        self.addCleanup(server.kill)
        server.stop()
        os.chmod(db, 0o444)
        self.assertFailsWith(
            f"--db {db}: read-only: no permission to write it", db=db, uid=self.unprivileged()
        )


class StartedHealthTests(TestCase):
    def test_components(self) -> None:
        """
        A good start logs one line per listener with its address, the store,
        the UI's URL and which parsers run (C or pure Python), and reports every listener, the store and the
        helper threads ok in /health.
        """
        server = TwistdServer(self.mktemp(), "--gelf", f"tcp:{freePort()}:interface=127.0.0.1", "--udp",
                              f"udp:{freeUDPPort()}:interface=127.0.0.1")  # fmt: skip
        server.start()
        self.addCleanup(server.kill)
        with urllib.request.urlopen(server.httpURL + "/health", timeout=10) as response:
            body = json.loads(response.read())
        self.assertEqual(body["status"], "ok")
        for name in (
            "http",
            "tcp",
            "gelf",
            "udp",
            "store",
            "search_indexer",
            "wal_checkpointer",
            "retention",
        ):
            self.assertEqual(body["components"][name], {"state": "ok", "reason": None}, name)
        log = server.log()
        for line in (
            f"--tcp listening on 127.0.0.1:{server.tcpPort}",
            f"--http listening on 127.0.0.1:{server.httpPort}",
            f"UI: http://127.0.0.1:{server.httpPort}/ui/",
            f"store: {server.db}",
            # The server imports logsvc from the same tree as this test.
            startupLine(),
        ):
            self.assertEqual(log.count(line + "\n"), 1, line)
        self.assertNotIn("all interfaces", log)
