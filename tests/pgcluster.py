"""
A throwaway PostgreSQL cluster: C{initdb} in a directory of its own, the
server on a free loopback port, run as a non-root user (PostgreSQL refuses
root: as root, commands run as the C{postgres} user through C{runuser}).

Used by the tests that restart the server, and by C{.ci/run}::

    python -m tests.pgcluster start DIR   # prints the URL to export as LOGSVC_TEST_POSTGRESQL
    python -m tests.pgcluster stop DIR
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys

from twisted.trial.unittest import SkipTest

from tests.ports import freePort

INSTALL = "apt-get install postgresql"

#: The user the server runs as when this process is root.
SERVER_USER = "postgres"


def binary(name: str) -> str | None:
    """
    @return: the path of PostgreSQL's program C{name} (C{initdb},
        C{pg_ctl}), from C{PATH} or Debian's C{/usr/lib/postgresql/*/bin}.
    """
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    return None


class Cluster:
    """
    One cluster in C{directory} (its data in C{data/}, its socket and log
    beside it).

    @ivar port: the port it listens on, on 127.0.0.1.
    """

    def __init__(self, directory: str, port: int | None = None) -> None:
        self.directory = os.path.abspath(directory)
        self.data = os.path.join(self.directory, "data")
        self.logFile = os.path.join(self.directory, "server.log")
        portFile = os.path.join(self.directory, "port")
        if port is None and os.path.exists(portFile):
            with open(portFile) as f:
                port = int(f.read())
        self.port = port if port is not None else freePort()

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    @property
    def user(self) -> str:
        return SERVER_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *command: str) -> None:
        if os.geteuid() == 0:
            command = ("runuser", "-u", SERVER_USER, "--", *command)
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.decode(errors='replace').strip()}")

    def create(self) -> None:
        """
        C{initdb} the cluster (trust authentication, loopback only).

        @raise SkipTest: naming the install command when PostgreSQL's
            programs are missing.
        """
        initdb = binary("initdb")
        if initdb is None or binary("pg_ctl") is None:
            raise SkipTest(f"PostgreSQL's initdb and pg_ctl are not installed: {INSTALL}")
        os.makedirs(self.directory, exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        self._run(initdb, "-D", self.data, "-A", "trust", "-U", self.user, "--no-sync", "-E", "UTF8")
        with open(os.path.join(self.directory, "port"), "w") as f:
            f.write(str(self.port))

    def start(self, settings: str = "-c fsync=off") -> None:
        """
        Start the server and wait until it accepts connections.

        @param settings: more server options (C{-c name=value} ...); by
            default no fsync, which a throwaway test server does not need.
        """
        pgctl = binary("pg_ctl")
        assert pgctl is not None
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c max_connections=100 {settings}"
        self._run(pgctl, "-D", self.data, "-l", self.logFile, "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """
        Stop the server (C{mode}: C{fast} or C{immediate}, a crash).
        """
        pgctl = binary("pg_ctl")
        assert pgctl is not None
        self._run(pgctl, "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def cpuSeconds(self) -> float:
        """
        @return: CPU seconds (user and system) the server's processes used so
            far: the postmaster's own and its reaped children's, and those of
            the backends still running.
        """
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            postmaster = int(f.readline())
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(pid) == postmaster:
                total += sum(int(x) for x in fields[11:15])
            elif int(fields[1]) == postmaster:
                total += int(fields[11]) + int(fields[12])
        return total / tick

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print("usage: python -m tests.pgcluster start|stop DIR", file=sys.stderr)
        return 2
    cluster = Cluster(argv[2])
    if argv[1] == "start":
        cluster.create()
        cluster.start()
        print(cluster.url)
    else:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
