"""
Run ``twistd -n logsvc`` as a subprocess for end-to-end tests.

    server = TwistdServer(self.mktemp())
    server.start()                       # blocks until HTTP answers
    self.addCleanup(server.kill)
    ... talk to server.tcpPort / server.httpURL ...
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from typing import TypeVar

from twisted.trial.unittest import SynchronousTestCase

from tests.ports import freePort

#: The project root, put first on the subprocess's path so it runs this tree.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: How to run twistd with this interpreter (the console script may not be on PATH).
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


class TwistdServer:
    """
    One logsvc process with its own directory, database and free ports.

    @ivar directory: working directory (holds the log, and the database
        unless C{db} names one elsewhere).
    @ivar extra: extra command-line options for C{twistd logsvc}.
    """

    def __init__(self, directory: str, *extra: str, db: str | None = None) -> None:
        os.makedirs(directory, exist_ok=True)
        self.directory = os.path.abspath(directory)
        if db is None:
            self.db = os.path.join(self.directory, "logsvc.sqlite3")
        elif "://" in db:
            # A database server's URL (postgresql://...), taken as given.
            self.db = db
        else:
            self.db = os.path.abspath(db)
        self.logFile = os.path.join(self.directory, "twistd.log")
        self.extra = list(extra)
        self.tcpPort = freePort()
        self.httpPort = freePort()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def httpURL(self) -> str:
        return f"http://127.0.0.1:{self.httpPort}"

    def command(self) -> list[str]:
        """
        @return: the command line; options in L{extra} come last and so
            override the defaults given here.
        """
        return [
            *TWISTD,
            "-n",
            "--pidfile=",
            "logsvc",
            "--tcp",
            f"tcp:{self.tcpPort}:interface=127.0.0.1",
            "--http",
            f"tcp:{self.httpPort}:interface=127.0.0.1",
            "--db",
            self.db,
            *self.extra,
        ]

    #: An open-file limit (soft and hard) for the process, or L{None}.
    fileLimit: int | None = None

    def listeningPorts(self) -> list[int]:
        """
        @return: the ports L{start} waits for.
        """
        return [self.httpPort, self.tcpPort]

    def healthy(self) -> bool:
        """
        @return: whether C{GET /health} answers 200.
        """
        with urllib.request.urlopen(self.httpURL + "/health", timeout=5) as response:
            response.read()
            return bool(response.status == 200)

    def start(self, timeout: float = 30, *, checkTCP: bool = True) -> None:
        """
        Start the process and wait until its listeners accept connections
        (only HTTP's when C{checkTCP} is false) and C{/health} answers.

        @raise RuntimeError: with the server's log when it does not come up.
        """
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        limit = self.fileLimit

        def lowerLimit() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        with open(self.logFile, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.directory,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=lowerLimit if limit is not None else None,
            )
        deadline = time.monotonic() + timeout
        for port in self.listeningPorts() if checkTCP else [self.httpPort]:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"twistd exited {self.process.returncode}:\n{self.log()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"twistd did not listen on {port}:\n{self.log()}")
                    time.sleep(0.05)
        # An HTTP answer means the reactor runs, so signal handlers are in place.
        while True:
            try:
                if self.healthy():
                    return
            except OSError:
                pass
            if self.process.poll() is not None:
                # It listened, then ended: no use waiting for the deadline.
                raise RuntimeError(f"twistd exited {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"twistd did not answer /health:\n{self.log()}")
            time.sleep(0.05)

    def rss(self) -> int:
        """
        @return: the process's resident set size, bytes.
        """
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def log(self) -> str:
        with open(self.logFile, encoding="utf-8", errors="replace") as f:
            return f.read()

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        """
        C{kill -9} the process (if it still runs) and reap it.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self, timeout: float = 30) -> int:
        """
        SIGTERM and wait for a clean exit.

        @return: the exit status.
        """
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def messages(self) -> list[str]:
        """
        @return: every stored message in id order, read straight from the file.
        """
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return [row[0] for row in conn.execute("SELECT message FROM logs ORDER BY id")]
        finally:
            conn.close()


ServerT = TypeVar("ServerT", bound=TwistdServer)


def startWithTokens(
    test: SynchronousTestCase, serverClass: type[ServerT], tokens: str, *extra: str
) -> tuple[ServerT, str]:
    """
    Start C{serverClass} in a fresh directory of C{test} with a token file
    holding C{tokens} (C{"scope token"} lines) and C{extra} options, killed
    at the test's end.

    @return: the server and the token file's path (rewrite it and send
        SIGHUP to reload).
    """
    directory = os.path.abspath(test.mktemp())
    os.makedirs(directory)
    path = os.path.join(directory, "tokens")
    with open(path, "w") as f:
        f.write(tokens)
    server = serverClass(directory, "--token-file", path, *extra)
    server.start()
    test.addCleanup(server.kill)
    return server, path
