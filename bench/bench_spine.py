"""
Spine benchmark: ingest rates end to end, query latency, memory under load.

Starts ``twistd -n logsvc`` as a subprocess on free loopback ports with a fresh
store, then prints:

- the physical limit: the same rows inserted straight into SQLite (same schema)
  by one thread with executemany, in batches of 10,000;
- TCP ingest records/s (4 connections, mixed plain/JSON lines), counted back
  from the store so loss shows, and as a fraction of the limit;
- HTTP ingest records/s (NDJSON batches of 1,000, 8 keep-alive clients);
- for both, the rate to durable (acknowledged) and to indexed (the search
  index holding every record too, the sustained rate); each run starts with
  the index caught up with the previous one;
- GET /logs latency (median, p95): level+service newest 100, and a ``q`` search,
  on the store those runs filled (1M records at full scale);
- peak RSS of the server while one sender pushes 2M lines as fast as it can.

Usage: python bench/bench_spine.py [--records 500000] [--flood 2000000]
                                   [--server-args '--no-search-index']
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from urllib.parse import urlencode

import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import BenchServer as Server  # noqa: E402
from bench.harness import lineChunks, sendTCP, timedPosts, timedTCPIngest  # noqa: E402
from logsvc.formats.detect import parseLines  # noqa: E402
from logsvc.store.sqlite.connection import INSERT_SQL, connect, createSchema  # noqa: E402

SERVICES = ["api", "web", "db", "auth", "billing", "search", "queue", "mailer"]
HOSTS = [f"node-{n:02d}" for n in range(12)]
LEVELS = ["info"] * 80 + ["debug"] * 10 + ["warning"] * 7 + ["error"] * 2 + ["critical"]
PATHS = ["/api/v1/items", "/api/v1/users", "/login", "/checkout", "/search", "/static/app.js"]


def makeLines(count: int, seed: int) -> list[bytes]:
    """
    @return: C{count} log lines, half plain text and half JSON objects.
    """
    rng = random.Random(seed)
    lines = []
    base = time.time()
    for i in range(count):
        service = rng.choice(SERVICES)
        path = rng.choice(PATHS)
        latency = rng.randint(1, 900)
        if i % 2:
            lines.append(
                orjson.dumps(
                    {
                        "ts": base + i / 1000,
                        "level": rng.choice(LEVELS),
                        "service": service,
                        "host": rng.choice(HOSTS),
                        "message": f"{path}/{rng.randint(1, 99999)} answered {rng.choice((200, 200, 201, 404, 500))} in {latency} ms",
                        "user_id": rng.randint(1, 5000),
                        "latency_ms": latency,
                    }
                )
            )
        else:
            lines.append(
                f"{service} GET {path}?page={rng.randint(1, 50)} from 10.1.{rng.randint(0, 255)}.{rng.randint(1, 254)} took {latency} ms".encode()
            )
    return lines

def rawLimit(lines: list[bytes], directory: str) -> float:
    """
    @return: rows/s inserting the parsed C{lines} straight into SQLite.
    """
    records, _ = parseLines(lines, "127.0.0.1", time.time_ns() // 1000)
    conn = connect(os.path.join(directory, "raw.sqlite3"))
    createSchema(conn)
    started = time.perf_counter()
    for i in range(0, len(records), 10_000):
        conn.execute("BEGIN")
        conn.executemany(INSERT_SQL, records[i : i + 10_000])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(records) / elapsed


def tcpIngest(server: Server, lines: list[bytes], connections: int = 4) -> tuple[float, float]:
    """
    @return: records/s from the first byte sent until the store holds them
        all (durable), and until the search index holds them too (indexed).
    """
    payloads = [lineChunks(lines[i::connections]) for i in range(connections)]
    started = time.perf_counter()
    durable = timedTCPIngest(server, payloads, len(lines))
    return durable, len(lines) / (server.waitForIndex() - started)


def httpIngest(server: Server, lines: list[bytes], clients: int = 8, batch: int = 1000) -> tuple[float, float]:
    """
    @return: records/s posting NDJSON batches until every batch is
        acknowledged (durable), and until the search index holds them too
        (indexed).
    """
    docs = [
        line if line.startswith(b"{") else orjson.dumps({"message": line.decode()}) for line in lines
    ]
    bodies = [b"\n".join(docs[i : i + batch]) + b"\n" for i in range(0, len(docs), batch)]
    started = time.perf_counter()
    elapsed = timedPosts(server, "/logs", bodies, lambda status, _: status == 201, clients=clients)
    return len(docs) / elapsed, len(docs) / (server.waitForIndex() - started)


def latency(server: Server, params: dict[str, str], runs: int) -> tuple[float, float, int]:
    """
    @return: median and p95 in ms of C{GET /logs?params}, and the hit count.
    """
    conn = http.client.HTTPConnection("127.0.0.1", server.httpPort, timeout=60)
    path = "/logs?" + urlencode(params)
    timings = []
    hits = 0
    for _ in range(runs):
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        timings.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {body[:200]!r}")
        hits = len(orjson.loads(body)["logs"])
    conn.close()
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95) - 1], hits


def flood(server: Server, total: int) -> tuple[float, int]:
    """
    Push C{total} lines over one connection as fast as possible while sampling
    the server's RSS.

    @return: records/s and the peak RSS in bytes.
    """
    chunk = b"".join(line + b"\n" for line in makeLines(20_000, 7))
    lines = chunk.count(b"\n")
    rounds = total // lines
    peak = [server.rss()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], server.rss())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    before = server.count()
    started = time.perf_counter()
    sendTCP(server.tcpPort, [chunk] * rounds)
    done = server.waitForCount(before + rounds * lines)
    stop.set()
    sampler.join()
    return rounds * lines / (done - started), peak[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=500_000, help="records per ingest run")
    parser.add_argument("--flood", type=int, default=2_000_000, help="lines for the RSS run")
    parser.add_argument("--runs", type=int, default=50, help="runs per query")
    parser.add_argument(
        "--server-args", default="", help="extra twistd logsvc options, e.g. '--no-search-index'"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="logsvc-bench-") as directory:
        tcpLines = makeLines(args.records, 1)
        httpLines = makeLines(args.records, 2)
        limit = rawLimit(tcpLines, directory)
        print(f"raw SQLite executemany limit: {limit:,.0f} rows/s")

        server = Server(*args.server_args.split(), directory=directory)
        try:
            # Each run starts with the search index caught up with the
            # previous one, and reports its rate both to durable (the
            # spine's measure) and to indexed (the sustained rate).
            tcp, tcpIndexed = tcpIngest(server, tcpLines)
            print(f"TCP ingest (4 connections, {args.records:,} lines): {tcp:,.0f} records/s"
                  f" = {tcp / limit:.2f} of the raw limit; {tcpIndexed:,.0f} records/s to indexed")
            http, httpIndexed = httpIngest(server, httpLines)
            print(f"HTTP NDJSON ingest (batches of 1000, 8 clients): {http:,.0f} records/s"
                  f" = {http / limit:.2f} of the raw limit; {httpIndexed:,.0f} records/s to indexed")
            stored = server.count()
            print(f"store holds {stored:,} records")
            for name, params in [
                ("level=error&service=api newest 100", {"level": "error", "service": "api", "limit": "100"}),
                ("q=checkout newest 100", {"q": "checkout", "limit": "100"}),
                ("q=rareword (no match, full scan)", {"q": "zebra", "limit": "100"}),
            ]:
                median, p95, hits = latency(server, params, args.runs)
                print(f"GET /logs {name}: median {median:.1f} ms, p95 {p95:.1f} ms ({hits} hits)")
            rate, peak = flood(server, args.flood)
            print(f"flood {args.flood:,} lines over one connection: {rate:,.0f} records/s,"
                  f" peak server RSS {peak / 2**20:.0f} MiB")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
