"""
End-to-end tests of several C{twistd logsvc} nodes on one PostgreSQL
database (C{LOGSVC_TEST_POSTGRESQL}): what one node is sent, any node reads,
exactly once, by paging and by a live tail; a node killed mid-POST loses
nothing it acknowledged; a PostgreSQL restart (a throwaway cluster of the
test's own, L{tests.pgcluster}) loses nothing acknowledged.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from twisted.trial.unittest import TestCase

from tests.e2e.server import TwistdServer
from tests.pgtests import makeDatabase


def post(server: TwistdServer, messages: list[str], timeout: float = 10) -> int:
    """
    POST C{messages} as NDJSON to C{server}.

    @return: the HTTP status.
    """
    body = "".join(json.dumps({"message": m, "service": "e2e"}) + "\n" for m in messages).encode()
    conn = http.client.HTTPConnection("127.0.0.1", server.httpPort, timeout=timeout)
    try:
        conn.request("POST", "/logs", body, {"content-type": "application/x-ndjson"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def getJSON(server: TwistdServer, path: str) -> Any:
    with urllib.request.urlopen(server.httpURL + path, timeout=10) as response:
        return json.loads(response.read())


def pageAll(server: TwistdServer, order: str = "asc", limit: int = 7) -> list[dict[str, Any]]:
    """
    @return: every record, paging with C{next} cursors.
    """
    found: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10_000):
        query = {"order": order, "limit": str(limit), "service": "e2e"}
        if cursor:
            query["cursor"] = cursor
        page = getJSON(server, "/logs?" + urllib.parse.urlencode(query))
        found.extend(page["logs"])
        cursor = page["next"]
        if not cursor:
            return found
    raise AssertionError("paging did not end")


class Tail:
    """
    A live tail read on a thread: the ids and messages of its events.
    """

    def __init__(self, server: TwistdServer, lastEventId: int | None = None) -> None:
        self.events: list[tuple[int, str]] = []
        self.ready = threading.Event()
        self._conn = http.client.HTTPConnection("127.0.0.1", server.httpPort, timeout=60)
        headers = {"accept": "text/event-stream"}
        if lastEventId is not None:
            headers["last-event-id"] = str(lastEventId)
        self._conn.request("GET", "/logs/tail?service=e2e", headers=headers)
        self._response = self._conn.getresponse()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        eventId = None
        try:
            for raw in self._response:
                line = raw.decode().rstrip("\n")
                if line.startswith(": logsvc tail"):
                    self.ready.set()
                elif line.startswith("id: "):
                    eventId = int(line[4:])
                elif line.startswith("data: ") and eventId is not None:
                    self.events.append((eventId, json.loads(line[6:])["message"]))
        except (OSError, ValueError, http.client.HTTPException):
            pass

    def waitFor(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"tail got {len(self.events)} of {count} events: {self.events}")
            time.sleep(0.05)

    def close(self) -> None:
        try:
            self._conn.sock and self._conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._conn.close()


class TwoNodesTests(TestCase):
    """Two nodes on one database serve the same records, in the same order."""

    timeout = 180

    def startNode(self, url: str, name: str, *extra: str) -> TwistdServer:
        server = TwistdServer(self.mktemp() + name, *extra, db=url)
        server.start()
        self.addCleanup(server.kill)
        return server

    def test_readExactlyOnceFromEither(self) -> None:
        """
        Records sent to both nodes (HTTP and TCP) are read exactly once from
        either node by paging in both orders and by a live tail on each; a
        tail resumed on one node with an event id from the other gets
        exactly what followed it.
        """
        url = makeDatabase(self)
        a = self.startNode(url, "a")
        b = self.startNode(url, "b")
        tails = [Tail(a), Tail(b)]
        for tail in tails:
            self.addCleanup(tail.close)
            self.assertTrue(tail.ready.wait(10))
        sent: list[str] = []
        for n in range(20):
            batch = [f"http-{n}-{i}" for i in range(5)]
            self.assertEqual(post(a if n % 2 else b, batch), 201)
            sent.extend(batch)
        for server, name in ((a, "a"), (b, "b")):
            lines = [f"tcp-{name}-{i}" for i in range(30)]
            with socket.create_connection(("127.0.0.1", server.tcpPort)) as s:
                s.sendall(b"".join(json.dumps({"message": m, "service": "e2e"}).encode() + b"\n" for m in lines))
            sent.extend(lines)
        deadline = time.monotonic() + 30
        while len(pageAll(a, limit=100)) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.1)
        for server in (a, b):
            for order in ("asc", "desc"):
                found = pageAll(server, order)
                ids = [r["id"] for r in found]
                self.assertEqual(len(ids), len(set(ids)))
                self.assertEqual(sorted(r["message"] for r in found), sorted(sent))
        for tail in tails:
            tail.waitFor(len(sent))
            ids = [i for i, _ in tail.events]
            self.assertEqual(ids, sorted(set(ids)), "a tail repeated or reordered a record")
            self.assertEqual(sorted(m for _, m in tail.events), sorted(sent))
        self.assertEqual(tails[0].events, tails[1].events)
        middle = tails[0].events[len(sent) // 2][0]
        resumed = Tail(b, lastEventId=middle)
        self.addCleanup(resumed.close)
        expected = [e for e in tails[0].events if e[0] > middle]
        resumed.waitFor(len(expected))
        self.assertEqual(resumed.events, expected)

    def test_killMidPost(self) -> None:
        """
        kill -9 of a node while senders POST to it loses no record it
        answered 201 for; the other node goes on and reads them all.
        """
        url = makeDatabase(self)
        a = self.startNode(url, "a")
        b = self.startNode(url, "b")
        acked: list[str] = []
        stop = threading.Event()

        def send() -> None:
            n = 0
            while not stop.is_set():
                batch = [f"k{n}-{i}" for i in range(50)]
                n += 1
                try:
                    if post(a, batch, timeout=5) == 201:
                        acked.extend(batch)
                except OSError:
                    return
                except http.client.HTTPException:
                    return

        senders = [threading.Thread(target=send) for _ in range(3)]
        for t in senders:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 1000 and time.monotonic() < deadline:
            time.sleep(0.01)
        a.kill()
        stop.set()
        for t in senders:
            t.join(30)
        self.assertGreater(len(acked), 0)
        self.assertEqual(post(b, ["after"]), 201)
        found = {r["message"] for r in pageAll(b, limit=1000)}
        self.assertEqual(set(acked) - found, set())
        self.assertIn("after", found)


class RestartTests(TestCase):
    """A PostgreSQL restart mid-ingest: 503s meanwhile, nothing acknowledged lost, ingest resumes by itself."""

    timeout = 240

    def test_restartMidIngest(self) -> None:
        """
        While senders POST, the server restarts: answers are 201 or 503,
        /health says the store is degraded while it is down, the node comes
        back by itself, and every record answered 201 is stored.
        """
        import tempfile

        from tests.pgcluster import Cluster

        cluster = Cluster(tempfile.mkdtemp(prefix="logsvc-pg-"))
        self.addCleanup(cluster.remove)
        cluster.create()
        cluster.start()
        self.addCleanup(lambda: cluster.stop("immediate"))
        node = TwistdServer(self.mktemp(), db=cluster.url)
        node.start()
        self.addCleanup(node.kill)
        acked: list[str] = []
        statuses: set[int] = set()
        stop = threading.Event()

        def send(sender: int) -> None:
            n = 0
            while not stop.is_set():
                batch = [f"s{sender}-{n}-{i}" for i in range(20)]
                n += 1
                try:
                    status = post(node, batch, timeout=10)
                except (OSError, http.client.HTTPException):
                    continue
                statuses.add(status)
                if status == 201:
                    acked.extend(batch)
                else:
                    time.sleep(0.05)

        senders = [threading.Thread(target=send, args=(n,)) for n in range(2)]
        for t in senders:
            t.start()
        try:
            while len(acked) < 500:
                time.sleep(0.01)
            cluster.stop("fast")
            deadline = time.monotonic() + 20
            degraded = False
            while not degraded and time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(node.httpURL + "/health", timeout=5) as response:
                        health = json.loads(response.read())
                except urllib.error.HTTPError as e:
                    # 503: the node is down while its store is.
                    health = json.loads(e.read())
                degraded = health.get("components", {}).get("store", {}).get("state") == "down"
                time.sleep(0.05)
            self.assertTrue(degraded, "/health did not report the store down")
            time.sleep(1)
            before = len(acked)
            cluster.start()
            deadline = time.monotonic() + 60
            while len(acked) < before + 500 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            for t in senders:
                t.join(30)
        self.assertIn(503, statuses)
        self.assertGreaterEqual(len(acked), before + 500, "ingest did not resume")
        found = {r["message"] for r in pageAll(node, limit=5000)}
        self.assertEqual(set(acked) - found, set())


class CopyCommandTests(TestCase):
    """C{logsvc copy} as a user runs it: SQLite to PostgreSQL and back, a node then serving the copy."""

    timeout = 180

    def test_bothWays(self) -> None:
        """
        Records sent to a SQLite node, copied to PostgreSQL and back to a new
        SQLite file, are served by nodes on each copy with the same values.
        """
        import subprocess
        import sys

        from tests.e2e.server import ROOT

        first = TwistdServer(self.mktemp())
        first.start()
        self.addCleanup(first.kill)
        sent = [f"copied-{n}" for n in range(300)]
        self.assertEqual(post(first, sent), 201)
        original = pageAll(first, limit=1000)
        first.stop()
        url = makeDatabase(self)
        back = os.path.abspath(self.mktemp() + ".sqlite3")
        env = dict(os.environ, PYTHONPATH=ROOT)
        for source, dest in ((first.db, url), (url, back)):
            done = subprocess.run(
                [sys.executable, "-c", "from logsvc.cli import main; main()", "copy", source, dest],
                env=env, capture_output=True, text=True, timeout=120,
            )
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertIn("copied 300 records; count check passed", done.stdout)
            self.assertIn("300/300 (100%)", done.stderr)
        for db in (url, back):
            node = TwistdServer(self.mktemp(), db=db)
            node.start()
            self.addCleanup(node.kill)
            copy = pageAll(node, limit=1000)
            strip = lambda records: [{k: v for k, v in r.items() if k != "id"} for r in records]  # noqa: E731
            self.assertEqual(strip(copy), strip(original))
            node.stop()


class StartBeforeServerTests(TestCase):
    """
    A node started while its PostgreSQL is not up yet runs degraded and
    heals by itself; a wrong user is a mistake, said in one line.
    """

    timeout = 180

    def test_serverComesUpLater(self) -> None:
        """
        Started before its server, the node answers /health 503 with the
        store down, ingest and reads 503; once the server is up the store
        starts by itself and a record posted then is stored and read back.
        """
        import tempfile

        from tests.pgcluster import Cluster

        cluster = Cluster(tempfile.mkdtemp(prefix="logsvc-pg-"))
        self.addCleanup(cluster.remove)
        cluster.create()
        node = TwistdServer(self.mktemp(), db=cluster.url)
        with self.assertRaises(RuntimeError):
            # start() waits for a 200 from /health, which a node without
            # its store does not give: it gives up after the timeout.
            node.start(timeout=5)
        self.addCleanup(node.kill)

        def answer(method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
            request = urllib.request.Request(node.httpURL + path, data=body, method=method,
                                             headers={"content-type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        status, health = answer("GET", "/health")
        self.assertEqual((status, health["components"]["store"]["state"]), (503, "down"))
        self.assertIn("Connection refused", health["components"]["store"]["reason"])
        self.assertEqual(answer("POST", "/logs", b'{"message": "early"}')[0], 503)
        self.assertEqual(answer("GET", "/logs?limit=1")[0], 503)

        cluster.start()
        self.addCleanup(lambda: cluster.stop("immediate"))
        deadline = time.monotonic() + 60
        while answer("GET", "/health")[0] != 200:
            self.assertLess(time.monotonic(), deadline, node.log())
            time.sleep(0.2)
        status, body = answer("POST", "/logs", b'{"message": "after the server came up"}')
        self.assertEqual((status, body), (201, {"accepted": 1}))
        status, page = answer("GET", "/logs?limit=10")
        self.assertEqual([r["message"] for r in page["logs"]], ["after the server came up"])

    def test_wrongUserIsOneLine(self) -> None:
        """A user the server does not know ends twistd with one line naming --db, no password, no traceback."""
        import subprocess

        from tests.e2e.server import ROOT, TWISTD
        from tests.ports import freePort

        url = makeDatabase(self)
        parts = urllib.parse.urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        bad = urllib.parse.urlunsplit(parts._replace(netloc=f"nosuchrole:pw7@{host}"))
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        done = subprocess.run(
            [*TWISTD, "-n", "--pidfile=", "logsvc", "--db", bad,
             "--tcp", f"tcp:{freePort()}:interface=127.0.0.1",
             "--http", f"tcp:{freePort()}:interface=127.0.0.1"],  # fmt: skip
            cwd=directory, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, timeout=60,
        )
        output = (done.stdout + done.stderr).decode("utf-8", "replace")
        self.assertEqual(done.returncode, 1, output)
        self.assertNotIn("Traceback", output)
        self.assertNotIn("pw7", output)
        lines = [line for line in output.splitlines() if f"--db postgresql://nosuchrole@{host}" in line]
        self.assertEqual(len(lines), 1, output)
        self.assertIn('role "nosuchrole" does not exist', lines[0])
