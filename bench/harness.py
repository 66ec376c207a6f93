"""
What every benchmark shares: a ``twistd logsvc`` subprocess on free loopback
ports (L{tests.e2e.server.TwistdServer}, the one the end-to-end tests use)
with the measurements benchmarks need, read from outside the process.
"""

from __future__ import annotations

import http.client
import os
import selectors
import shutil
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from urllib.parse import urlencode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from logsvc.store.sqlite.searchindex import searchPath  # noqa: E402
from tests.e2e.server import TWISTD, TwistdServer  # noqa: E402
from tests.ports import freePort  # noqa: E402

__all__ = ["ROOT", "TWISTD", "BenchServer", "freePort", "lineChunks", "sendAcked", "sendTCP", "timedPosts", "timedTCPIngest", "timedThreads"]


class BenchServer(TwistdServer):
    """
    A fresh logsvc in its own temporary directory, started at once.

    @param extra: more C{twistd logsvc} options.
    @param db: the database, when not a new one in the directory.
    @param timeout: seconds to wait for it to answer (opening a large
        store can take a while).
    """

    def __init__(self, *extra: str, directory: str | None = None, db: str | None = None, timeout: float = 120) -> None:
        self._owned = directory is None
        super().__init__(directory or tempfile.mkdtemp(prefix="logsvc-bench-"), *extra, db=db)
        self.start(timeout)

    def get(self, path: str, params: dict[str, str] | list[tuple[str, str]]) -> tuple[int, bytes]:
        """
        @return: the status and body of C{GET path?params}.
        """
        conn = http.client.HTTPConnection("127.0.0.1", self.httpPort, timeout=600)
        try:
            conn.request("GET", path + "?" + urlencode(params))
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def cpuSeconds(self) -> float:
        """
        @return: the CPU time the server process used so far (all its
            threads, user and system), seconds.
        """
        assert self.process is not None
        return _cpuSeconds(f"/proc/{self.process.pid}/stat")

    def reactorCpuSeconds(self) -> float:
        """
        @return: the CPU time the server's main thread (the reactor's: its
            thread id is the process id) used so far, seconds; the rest of
            L{cpuSeconds} is the store's threads' (writer, search indexer,
            checkpointer) and the readers'.
        """
        assert self.process is not None
        pid = self.process.pid
        return _cpuSeconds(f"/proc/{pid}/task/{pid}/stat")

    def count(self) -> int:
        """
        @return: the records in the store, read straight from the file (0
            while the file or its table does not exist yet).
        """
        return _readInt(self.db, "SELECT count(*) FROM logs") or 0

    def lastId(self) -> int:
        """
        @return: the highest record id (0 for an empty store): O(log n), where
            C{count(*)} reads a whole index and would steal the server's CPU
            when polled.
        """
        return _readInt(self.db, "SELECT ifnull(max(id), 0) FROM logs") or 0

    def waitForCount(self, expected: int, timeout: float = 900) -> float:
        """
        Poll the store until it holds C{expected} records: cheaply by the
        highest id (ids are consecutive), then once more by counting, so a
        lost record still shows.

        @return: C{time.perf_counter()} when the highest id got there.
        @raise RuntimeError: after C{timeout} seconds, or when the count is short.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.lastId() >= expected:
                done = time.perf_counter()
                stored = self.count()
                if stored < expected:
                    raise RuntimeError(f"store has {stored} of {expected} records")
                return done
            time.sleep(0.02)
        raise RuntimeError(f"store has {self.count()} of {expected} records")

    def indexed(self) -> int | None:
        """
        @return: the search index's mark (the highest record id it holds),
            read from the search file, or L{None} when the server keeps no
            index (C{--no-search-index}) or has not created it yet.
        """
        path = searchPath(self.db)
        return _readInt(path, "SELECT indexed FROM search_state") if os.path.exists(path) else None

    def waitForIndex(self, timeout: float = 900) -> float:
        """
        Poll until the search index holds every record in the store (at
        once when the server keeps no index).

        @return: C{time.perf_counter()} when it did.
        @raise RuntimeError: after C{timeout} seconds.
        """
        deadline = time.monotonic() + timeout
        top = self.lastId()
        while time.monotonic() < deadline:
            mark = self.indexed()
            if mark is None or mark >= top:
                return time.perf_counter()
            time.sleep(0.02)
        raise RuntimeError(f"search index at {self.indexed()} of {top} records")

    def stop(self, timeout: float = 120) -> int:
        """
        SIGTERM, wait, and remove the temporary directory.

        @return: the exit status.
        """
        status = super().stop(timeout)
        if self._owned:
            shutil.rmtree(self.directory, ignore_errors=True)
        return status


def _cpuSeconds(statPath: str) -> float:
    """
    @return: user and system CPU seconds from a C{/proc} C{stat} file.
    """
    with open(statPath) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _readInt(path: str, sql: str) -> int | None:
    """
    @return: the one integer C{sql} selects from the SQLite file C{path},
        opened read-only, or L{None} while the file or its table is missing.
    """
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return None
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()


def sendTCP(port: int, chunks: list[bytes]) -> None:
    """
    Write C{chunks} over one connection, half-close, and wait for the server
    to close its side.
    """
    with socket.create_connection(("127.0.0.1", port)) as s:
        for chunk in chunks:
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)


def sendAcked(port: int, lines: list[bytes], window: int, chunk: int = 2000) -> float:
    """
    Write lines to an acknowledging listener (C{--tcp-acked}), keeping at
    most C{window} unacknowledged; return once the server acknowledged them
    all.

    @return: the longest wait between two acknowledgements, in seconds.
    """
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    total = len(lines)
    nextLine = acked = 0
    out = b""
    pending = b""
    lastAck: float | None = None
    longest = 0.0
    while acked < total:
        wantWrite = bool(out) or (nextLine < total and nextLine - acked < window)
        selector.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if wantWrite else 0))
        for _, events in selector.select(timeout=60):
            if events & selectors.EVENT_READ:
                data = sock.recv(65536)
                if not data:
                    raise RuntimeError(f"server closed after {acked} acks")
                pending += data
                *acks, pending = pending.split(b"\n")
                if acks:
                    acked = int(acks[-1][3:])
                    now = time.perf_counter()
                    if lastAck is not None:
                        longest = max(longest, now - lastAck)
                    lastAck = now
            if events & selectors.EVENT_WRITE:
                if not out and nextLine < total and nextLine - acked < window:
                    end = min(total, nextLine + chunk, acked + window)
                    out = b"\n".join(lines[nextLine:end]) + b"\n"
                    nextLine = end
                if out:
                    try:
                        sent = sock.send(out)
                    except BlockingIOError:
                        sent = 0
                    out = out[sent:]
    selector.close()
    sock.close()
    return longest


def lineChunks(lines: list[bytes], size: int = 2000) -> list[bytes]:
    """
    @return: C{lines} LF-terminated, joined C{size} lines to a chunk.
    """
    return [b"\n".join(lines[i : i + size]) + b"\n" for i in range(0, len(lines), size)]


def timedTCPIngest(server: BenchServer, payloads: list[list[bytes]], records: int) -> float:
    """
    Send each payload (a list of chunks) over its own connection, all at once,
    and wait until the store holds C{records} more records.

    @return: records/s from the first byte sent until the last record is stored.
    """
    before = server.count()
    threads = [threading.Thread(target=sendTCP, args=(server.tcpPort, p)) for p in payloads]
    started = time.perf_counter()
    for t in threads:
        t.start()
    done = server.waitForCount(before + records)
    for t in threads:
        t.join()
    return records / (done - started)


def timedThreads(target: Callable[..., object], argsList: list[tuple[object, ...]]) -> float:
    """
    Run C{target(*args)} in a thread of its own for each C{args}, all at once.

    @return: seconds from starting the first until the last has ended.
    """
    threads = [threading.Thread(target=target, args=args) for args in argsList]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def timedPosts(
    server: BenchServer,
    path: str,
    bodies: list[bytes],
    ok: Callable[[int, bytes], bool],
    *,
    clients: int = 8,
    contentType: str = "application/x-ndjson",
) -> float:
    """
    POST C{bodies} to C{path} from C{clients} keep-alive clients at once,
    each waiting for its answer (so for durability) before the next.

    @return: seconds until every body was answered.
    @raise RuntimeError: when an answer fails C{ok(status, body)}.
    """
    errors: list[str] = []

    def post(part: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.httpPort, timeout=300)
        for body in part:
            conn.request("POST", path, body, {"content-type": contentType})
            response = conn.getresponse()
            payload = response.read()
            if not ok(response.status, payload):
                errors.append(f"{response.status} {payload[:200]!r}")
        conn.close()

    elapsed = timedThreads(post, [(bodies[i::clients],) for i in range(clients)])
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests to {path}, first: {errors[0]}")
    return elapsed
