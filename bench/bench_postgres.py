"""
PostgreSQL benchmark: the shared store against its engine's limit, with 1, 2
and 3 nodes, next to SQLite.  Runs on a throwaway cluster of its own
(L{tests.pgcluster}, fsync on, shared_buffers 256MB), so the server's CPU
can be counted.

1. Raw COPY limit: one Python client (psycopg, no logsvc) COPYing the
   records into the same schema and indexes as logsvc, in 10,000-record
   transactions that take their ids from the counter as logsvc does; rows
   (with their search vectors) are made before the clock starts.
2. logsvc ingest over TCP and over HTTP with 1, 2 and 3 nodes on one
   database: records/s until all are committed, as a fraction of (1), and
   CPU seconds per record of each node and of PostgreSQL; one SQLite node
   over TCP for the node CPU comparison.
3. Query latencies over HTTP on a store of C{--records} records (the probes
   of C{bench/bench_search.py}), PostgreSQL next to SQLite.  The PostgreSQL
   store is a cluster of its own kept in C{--cache} (C{bench/out/}, ignored
   by git) and reused by later runs with the same C{--records}: filled once
   (the records of C{bench_search.py}'s store, COPYed through logsvc's
   writer rows in 1,000,000-record transactions with the indexes made
   afterwards), marked filled, then only started and stopped.  The SQLite
   store is C{bench_search.py}'s cache (C{--sqlite-db}, by default
   C{search-RECORDS-v1.sqlite3} in C{--cache}), filled the same way if
   missing.
4. Tail latency across nodes: tails on node B, records sent to node A over
   TCP at C{--tail-rate} records/s.
5. Search index choice: tsvector (logsvc's words) + GIN against pg_trgm's
   GIN on the same text: load time, size, query latency.

The machine it runs on may be shared: a few runs, the spread reported.

With C{--window-hours 24} the C{--records} of the query stores are spread
over 24 h instead of 7 days (issue 13's dense stores, each cached under its
own name, e.g. C{pg-search-10000000-24h-v1}); C{--only view} prints only
the UI's default view on the PostgreSQL one.

Usage: python bench/bench_postgres.py [--records 1000000] [--ingest-records 300000]
       [--tail-rate 10000] [--tail-seconds 10] [--runs 15] [--cache bench/out]
       [--sqlite-db PATH] [--window-hours 24] [--only raw,ingest,queries,view,tail,search]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from itertools import islice
from typing import Any

import psycopg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.bench_search import (  # noqa: E402
    DAY,
    END,
    SPAN,
    addWindowOption,
    dayViews,
    defaultView,
    fillStore,
    generate,
    rawLine,
    storePath,
    storeSpan,
    tailLatency,
    timed,
)
from bench.harness import BenchServer  # noqa: E402
from logsvc.record import Record  # noqa: E402
from logsvc.store.postgres.connection import connect, createSchema, fillCounts  # noqa: E402
from logsvc.store.postgres.search import vectorText  # noqa: E402
from logsvc.store.postgres.store import _COPY, copyRows, reserveIds  # noqa: E402
from tests.e2e.server import TwistdServer  # noqa: E402
from tests.pgcluster import Cluster  # noqa: E402
from tests.ports import freePort  # noqa: E402

SETTINGS = "-c shared_buffers=256MB -c max_wal_size=4GB -c checkpoint_timeout=15min -c synchronous_commit=on"
#: The senders, the tails and the nodes share 127.0.0.1, as a load
#: balancer's connections share its address: many connections open at once
#: from it are not held to one address's share.
SERVER_OPTIONS = ("--min-free-disk", "1MiB", "--trusted-proxies", "127.0.0.1")


def database(cluster: Cluster, name: str) -> str:
    with psycopg.connect(cluster.url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    url = cluster.url.rsplit("/", 1)[0] + "/" + name
    with connect(url) as conn:
        createSchema(conn, now=END)
        # Partitions for the generated week.
        from logsvc.store.postgres.connection import ensurePartitions

        ensurePartitions(conn, now=END - SPAN, ahead=9)
    return url


def copyRecords(url: str, records: Iterator[Record], batch: int = 10_000) -> tuple[int, float]:
    """
    COPY records as logsvc's writer does (counter, COPY, commit), rows made
    before the clock starts.

    @return: the count and the seconds the COPYs took.
    """
    rows = [(r, vectorText(r.message, r.service)) for r in records]
    started = time.perf_counter()
    with connect(url) as conn:
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            with conn.transaction():
                first = reserveIds(conn, len(chunk))
                with conn.cursor() as cursor, cursor.copy(_COPY) as copy:
                    for offset, (r, words) in enumerate(chunk):
                        copy.write_row((first + offset, *r, words))
    return len(rows), time.perf_counter() - started


#: The database of the cached query store, in its own cluster.
QUERY_DATABASE = "queries"

#: Records per transaction when filling the cached query store.
FILL_TRANSACTION = 1_000_000


def fillQueryStore(url: str, count: int, span: int = SPAN) -> None:
    """
    Fill an empty logsvc database with C{count} records of
    L{bench.bench_search.generate} spread over the C{span} microseconds
    ending at L{END} (the same as C{bench_search.py}'s store):
    the indexes are dropped, the rows COPYed as logsvc's writer makes them
    (L{copyRows}: ids from the counter, search vectors) in
    L{FILL_TRANSACTION}-record transactions, then the schema is made again
    (L{createSchema} remakes the indexes it names, each built once over
    every row rather than row by row), and the tables vacuumed and analysed.
    """
    started = time.perf_counter()
    records = (r for r, _ in generate(count, END - span, span=span))
    with connect(url) as conn:
        indexes = [row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'logs'")]
        for name in indexes:
            conn.execute(f"DROP INDEX {name}")
        conn.commit()
        done = 0
        while chunk := list(islice(records, FILL_TRANSACTION)):
            with conn.transaction():
                first = reserveIds(conn, len(chunk))
                with conn.cursor() as cursor:
                    copyRows(cursor, first, chunk)
            done += len(chunk)
            elapsed = time.perf_counter() - started
            print(f"   {done:,} records COPYed in {elapsed:,.0f} s ({done / elapsed:,.0f} records/s)", flush=True)
        conn.execute("SET maintenance_work_mem = '1GB'")
        indexed = time.perf_counter()
        createSchema(conn, now=END)
        # The COPY bypassed logsvc's writer, which keeps the counts.
        fillCounts(conn)
        conn.commit()
        print(f"   indexes and counts made in {time.perf_counter() - indexed:,.0f} s", flush=True)
    with connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


def cachedQueryStore(options: Any) -> tuple[Cluster, str]:
    """
    Start the cluster that holds the query store of C{options.records}
    records (over C{options.window_hours}, by default the week:
    L{storeSpan}), kept in C{options.cache} and reused; the first time,
    make it and fill it (L{fillQueryStore}), then mark it filled.  A
    cluster without the mark (an interrupted fill) is made again.

    @return: the running cluster (the caller stops it) and the store's URL.
    """
    os.makedirs(options.cache, exist_ok=True)
    name, span = storeSpan(options)
    count = options.records
    directory = os.path.join(options.cache, f"pg-search-{name}")
    filled = os.path.join(directory, "filled")
    if os.path.exists(filled):
        print(f"== reusing {directory}")
        cluster = Cluster(directory, port=freePort())
        cluster.start(SETTINGS)
        return cluster, cluster.url.rsplit("/", 1)[0] + "/" + QUERY_DATABASE
    shutil.rmtree(directory, ignore_errors=True)
    cluster = Cluster(directory)
    cluster.create()
    cluster.start(SETTINGS)
    try:
        url = database(cluster, QUERY_DATABASE)
        print(f"== filling {count:,} records over {span / 3.6e9:g} h into {directory}", flush=True)
        started = time.perf_counter()
        fillQueryStore(url, count, span)
        print(f"filled in {time.perf_counter() - started:,.0f} s", flush=True)
    except BaseException:
        cluster.stop()
        raise
    open(filled, "w").close()
    return cluster, url


def cachedSqliteStore(path: str, count: int, span: int = SPAN) -> str:
    """
    @return: C{path}, the SQLite store of C{bench_search.py} with C{count}
        records over the C{span} microseconds ending at L{END}, filled
        first (as C{bench_search.py} does) unless marked filled
        (C{PATH.done}).
    """
    if not os.path.exists(path + ".done"):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        print(f"== filling {count:,} records into {path}", flush=True)
        fillStore(path, (r for r, _ in generate(count, END - span, span=span)))
        open(path + ".done", "w").close()
    return path


def lastId(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT last_id FROM logsvc_position").fetchone()
        return int(row[0]) if row else 0


def processCPU(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sendTCP(port: int, lines: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        for start in range(0, len(lines), 2000):
            s.sendall(b"".join(lines[start : start + 2000]))


def sendHTTP(port: int, lines: list[bytes], size: int = 1000) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    for start in range(0, len(lines), size):
        conn.request("POST", "/logs", b"".join(lines[start : start + size]), {"content-type": "application/x-ndjson"})
        response = conn.getresponse()
        response.read()
        if response.status != 201:
            raise RuntimeError(f"POST answered {response.status}")
    conn.close()


def ingest(
    cluster: Cluster, nodes: int, transport: str, lines: list[bytes], work: str, senders: int
) -> tuple[float, list[float], float]:
    """
    @param senders: TCP connections or keep-alive HTTP clients per node.
    @return: records/s to committed, CPU seconds per record of each node,
        and of PostgreSQL.
    """
    url = database(cluster, f"ingest_{transport}_{nodes}")
    servers = [TwistdServer(os.path.join(work, f"{transport}{nodes}-{n}"), *SERVER_OPTIONS, db=url) for n in range(nodes)]
    for server in servers:
        server.start(60)
    try:
        before = [processCPU(s.process.pid) for s in servers]  # type: ignore[union-attr]
        pgBefore = cluster.cpuSeconds()
        threads = []
        failures: list[BaseException] = []

        def send(target: Any, *args: Any) -> None:
            try:
                target(*args)
            except BaseException as e:
                failures.append(e)

        parts = nodes * senders
        for n in range(parts):
            server = servers[n % nodes]
            part = lines[n::parts]
            if transport == "tcp":
                threads.append(threading.Thread(target=send, args=(sendTCP, server.tcpPort, part)))
            else:
                threads.append(threading.Thread(target=send, args=(sendHTTP, server.httpPort, part)))
        started = time.perf_counter()
        for t in threads:
            t.start()
        while lastId(url) < len(lines):
            if failures:
                raise RuntimeError(f"a sender failed: {failures[0]!r}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        for t in threads:
            t.join()
        # Each node took an equal share of the records.
        cpu = [(processCPU(s.process.pid) - b) / (len(lines) / nodes) for s, b in zip(servers, before, strict=True)]  # type: ignore[union-attr]
        pg = (cluster.cpuSeconds() - pgBefore) / len(lines)
        return len(lines) / elapsed, cpu, pg
    finally:
        for server in servers:
            server.stop()


def sqliteIngest(lines: list[bytes], work: str) -> tuple[float, float]:
    """
    @return: records/s and node CPU seconds per record of one SQLite node over TCP.
    """
    server = BenchServer(*SERVER_OPTIONS, directory=os.path.join(work, "sqlite-ingest"))
    try:
        before = processCPU(server.process.pid)  # type: ignore[union-attr]
        senders = [threading.Thread(target=sendTCP, args=(server.tcpPort, lines[n::2])) for n in range(2)]
        started = time.perf_counter()
        for t in senders:
            t.start()
        done = server.waitForCount(len(lines))
        for t in senders:
            t.join()
        # Let the search indexer finish: its CPU is the node's too.
        server.waitForIndex()
        cpu = (processCPU(server.process.pid) - before) / len(lines)  # type: ignore[union-attr]
        return len(lines) / (done - started), cpu
    finally:
        server.stop()


PROBES = [
    ("newest 100, level=error service=billing", "/logs", {"level": "error", "service": "billing", "limit": "100"}),
    ("rare word (segfault)", "/logs", {"q": "segfault", "limit": "100"}),
    ("rare word, newest 100 (deadlock)", "/logs", {"q": "deadlock", "limit": "100"}),
    ('phrase ("no route to host")', "/logs", {"q": '"no route to host"', "limit": "100"}),
    ("field filter (field.user=u4242)", "/logs", {"field.user": "u4242", "limit": "100"}),
    ("24h /stats histogram (1h)", "/stats", {"since": str((END - DAY) / 1e6), "until": str(END / 1e6), "interval": "1h"}),
    # The rest of the UI's default view from the counts per minute: the
    # histogram at the UI's interval and the facets, over a day whose edges
    # fall inside minutes (as "the last 24 h" does).
    *(
        (label, "/stats", {"since": str((END - DAY + 29_500_000) / 1e6), "until": str((END + 29_500_000) / 1e6), **extra})
        for label, extra in (
            ("24h /stats histogram (auto), mid-minute edges", {}),
            ("24h facet level, mid-minute edges", {"by": "level"}),
            ("24h facet service, mid-minute edges", {"by": "service"}),
            ("24h facet source, mid-minute edges", {"by": "source"}),
        )
    ),
    # The query language, newest 100 of the last 24 h (as bench_search.py's).
    *(
        (label, "/logs", {"since": str((END - DAY) / 1e6), "until": str(END / 1e6), "q": q, "limit": "100"})
        for label, q in (
            ("q=user:u4242 (24h, rare field term)", "user:u4242"),
            ("q=status:500 (24h, field term, 20%)", "status:500"),
            ("q=status>=500 (24h, comparison, 20%)", "status>=500"),
            ("q=pid>39600 (24h, comparison, 1%)", "pid>39600"),
            ("q=service:billing level>=error (24h)", "service:billing level>=error"),
        )
    ),
]


def probe(server: Any, runs: int, cluster: Cluster | None = None) -> list[tuple[str, float, float, int, float]]:
    """
    Time each of L{PROBES} C{runs} times over HTTP (after one untimed run).

    @return: per probe: its label, median and p95 milliseconds, the records
        (or total) found, and the CPU milliseconds per request spent by the
        node and, given its C{cluster}, by PostgreSQL (all its processes).
    """
    found = []
    for label, path, params in PROBES:
        server.get(path, params)
        cpu = processCPU(server.process.pid) + (cluster.cpuSeconds() if cluster else 0.0)
        median, p95, n = timed(server, path, params, runs)
        cpu = processCPU(server.process.pid) + (cluster.cpuSeconds() if cluster else 0.0) - cpu
        found.append((label, median, p95, n, cpu * 1000 / runs))
    return found


def compareSearch(cluster: Cluster, count: int) -> None:
    """
    tsvector + GIN (logsvc's) against pg_trgm's GIN on the same text.
    """
    url = database(cluster, "search_compare")
    records = [r for r, _ in generate(count, END - SPAN, seed=5)]
    with connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        conn.execute(
            "CREATE TABLE trgm (id bigint, ts bigint, received bigint, level smallint, source text, service text,"
            " message text, fields text)"
        )
        conn.execute("CREATE INDEX trgm_ts ON trgm (ts, id)")
        conn.execute("CREATE INDEX trgm_text ON trgm USING gin (lower(message || ' ' || service) gin_trgm_ops)")
    n, vectorSeconds = copyRecords(url, iter(records))
    started = time.perf_counter()
    with connect(url) as conn, conn.cursor() as cursor:
        for start in range(0, len(records), 10_000):
            with cursor.copy("COPY trgm FROM STDIN") as copy:
                for offset, r in enumerate(records[start : start + 10_000]):
                    copy.write_row((start + offset, *r))
        conn.commit()
    trgmSeconds = time.perf_counter() - started
    with connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        vectorIndex = conn.execute(
            "SELECT sum(pg_relation_size(indexrelid)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname LIKE '%words%'"
        ).fetchone()[0]
        vectorColumn = conn.execute("SELECT sum(pg_column_size(words)) FROM logs").fetchone()[0]
        trgmIndex = conn.execute("SELECT pg_relation_size('trgm_text')").fetchone()[0]
        print(f"== search index on {n:,} records: tsvector+GIN (logs, with all of logsvc's indexes) vs pg_trgm GIN (a table with only (ts, id) beside it)")
        print(f"load (COPY, all indexes): tsvector {n / vectorSeconds:,.0f} records/s, pg_trgm {n / trgmSeconds:,.0f} records/s")
        print(f"size: tsvector column {vectorColumn / n:,.0f} + GIN {vectorIndex / n:,.0f} bytes/record;"
              f" pg_trgm GIN {trgmIndex / n:,.0f} bytes/record")
        for label, vector, like in (
            ("rare word segfault", "'segfault'", "%segfault%"),
            ('phrase "no route to host"', "'no' <-> 'route' <-> 'to' <-> 'host'", "%no route to host%"),
            ("common word completed", "'completed'", "%completed%"),
        ):
            times = {}
            for name, sql, param in (
                ("tsvector", "SELECT id FROM logs WHERE words @@ %s::tsquery ORDER BY ts DESC, id DESC LIMIT 100", vector),
                ("pg_trgm", "SELECT id FROM trgm WHERE lower(message || ' ' || service) LIKE %s ORDER BY ts DESC, id DESC LIMIT 100", like),
            ):
                samples = []
                for _ in range(7):
                    started = time.perf_counter()
                    conn.execute(sql, [param]).fetchall()
                    samples.append((time.perf_counter() - started) * 1000)
                samples.sort()
                times[name] = samples[len(samples) // 2]
            print(f"{label:32s} newest 100: tsvector {times['tsvector']:8.1f} ms   pg_trgm {times['pg_trgm']:8.1f} ms (superset, to confirm)")


def queries(options: Any, work: str) -> None:
    """
    Print the query probes' latencies on the cached stores, PostgreSQL next
    to SQLite.
    """
    cluster, url = cachedQueryStore(options)
    try:
        print(f"== HTTP latency on {options.records:,} records ({options.runs} runs each): median / p95 ms,"
              " PostgreSQL | SQLite", flush=True)
        pgServer = BenchServer(*SERVER_OPTIONS, directory=os.path.join(work, "pg-queries"), db=url, timeout=900)
        try:
            pgFigures = probe(pgServer, options.runs, cluster)
        finally:
            pgServer.stop()
    finally:
        cluster.stop()
    for label, median, p95, found, cpu in pgFigures:
        print(f"{label:44s} {median:8.1f} {p95:8.1f} {cpu:6.1f} | (PostgreSQL; {found:,} found)", flush=True)
    sqlitePath, span = storePath(options)
    sqliteServer = BenchServer(*SERVER_OPTIONS, directory=os.path.join(work, "sqlite-queries"),
                               db=cachedSqliteStore(options.sqlite_db or sqlitePath, options.records, span), timeout=900)
    try:
        sqliteFigures = probe(sqliteServer, options.runs)
    finally:
        sqliteServer.stop()
    print("== median / p95 / CPU ms per request (node and server), PostgreSQL | SQLite", flush=True)
    for (label, m1, p1, n1, c1), (_, m2, p2, n2, c2) in zip(pgFigures, sqliteFigures, strict=True):
        print(f"{label:44s} {m1:8.1f} {p1:8.1f} {c1:6.1f} | {m2:8.1f} {p2:8.1f} {c2:6.1f}   ({n1:,} | {n2:,} found)")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def view(options: Any, work: str) -> None:
    """
    Print the UI's default view (L{bench.bench_search.defaultView}: the
    histogram at the auto interval, the newest 100, the facets, the field
    names and a field's top values) on the cached PostgreSQL query store,
    over the 24 h ending at its newest record and the same starting half a
    minute into a minute (the view's worst case at now), with the CPU per
    view of the node and of PostgreSQL (all its processes) together.
    """
    cluster, url = cachedQueryStore(options)
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT max(ts) FROM logs").fetchone()
        until = int(row[0]) + 1
        server = BenchServer(*SERVER_OPTIONS, directory=os.path.join(work, "pg-view"), db=url, timeout=900)
        try:
            figures = [
                defaultView(server, f"PostgreSQL, {options.records:,} records, {label}", window, options.runs,
                            lambda: server.cpuSeconds() + cluster.cpuSeconds())
                for label, window in dayViews(until)[:2]
            ]
        finally:
            server.stop()
    finally:
        cluster.stop()
    print("== default view, sum of medians / node and PostgreSQL CPU ms per view: "
          + "; ".join(f"{total:.1f} / {cpu:.1f}" for total, cpu in figures))
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def liveRecords(count: int, rate: float) -> list[tuple[Record, dict[str, Any]]]:
    """
    @return: C{count} records of L{generate} (with their fields) timed as
        live ingest at C{rate} records/s times them: one after another
        over C{count / rate} seconds ending at L{END}, rather than spread
        over the week (3 s apart for 200,000), which would make each batch
        span hundreds of minutes, and so hundreds of rows of the counts per
        minute to update, where live ingest touches a minute or two.
    """
    span = int(count / rate * 1e6)
    found = []
    for n, (r, fields) in enumerate(generate(count, END - SPAN, seed=3)):
        ts = END - span + n * span // count
        found.append((r._replace(ts=ts, received=ts + (r.received - r.ts)), fields))
    return found


def _counts(text: str) -> list[int]:
    return [int(n) for n in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--ingest-records", type=int, default=300_000)
    parser.add_argument("--search-records", type=int, default=300_000)
    parser.add_argument("--tail-rate", type=int, default=10_000)
    parser.add_argument("--tail-seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--only", default="raw,ingest,queries,tail,search",
                        help="parts to run (comma-separated): raw, ingest, queries, view (only the UI's default"
                             " view on the cached store), tail, search")
    parser.add_argument("--tcp-connections", type=_counts, default=[2], help="TCP senders per node (a list: a run each)")
    parser.add_argument("--http-clients", type=_counts, default=[8],
                        help="keep-alive HTTP clients per node, each posting 1,000-record bodies (a list: a run each)")
    parser.add_argument("--ingest-rate", type=float, default=20_000,
                        help="records/s the ingest records are timed as arriving at (their ts)")
    parser.add_argument("--nodes", default="1,2,3", help="node counts of the ingest runs")
    parser.add_argument("--transports", default="tcp,http", help="transports of the ingest runs")
    parser.add_argument("--cache", default=os.path.join(ROOT, "bench", "out"),
                        help="where the query stores are kept between runs")
    parser.add_argument("--sqlite-db", help="the SQLite query store (default: bench_search.py's, in --cache)")
    addWindowOption(parser)
    options = parser.parse_args()
    only = set(options.only.split(","))
    work = tempfile.mkdtemp(prefix="logsvc-bench-pg-")
    try:
        if only - {"queries", "view"}:
            onThrowawayCluster(options, only, work)
        if "queries" in only:
            queries(options, work)
        if "view" in only:
            view(options, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def onThrowawayCluster(options: Any, only: set[str], work: str) -> None:
    """
    Run the parts other than the queries on a cluster made for this run and
    removed after it.
    """
    cluster = Cluster(tempfile.mkdtemp(prefix="logsvc-bench-pgdata-"))
    cluster.create()
    cluster.start(SETTINGS)
    try:
        pairs = liveRecords(options.ingest_records, options.ingest_rate)
        lines = [rawLine(r, f) for r, f in pairs]
        limit = None
        if "raw" in only:
            url = database(cluster, "raw")
            pgBefore = cluster.cpuSeconds()
            n, seconds = copyRecords(url, (r for r, _ in pairs))
            limit = n / seconds
            print(f"== raw COPY limit (one Python client, logsvc's schema and indexes): {limit:,.0f} records/s;"
                  f" PostgreSQL {(cluster.cpuSeconds() - pgBefore) / n * 1e6:.1f} us CPU/record")
        if "ingest" in only:
            print(f"== logsvc ingest of {len(lines):,} records (senders on the same machine)")
            rate, cpu = sqliteIngest(lines, work)
            print(f"SQLite, 1 node, TCP: {rate:,.0f} records/s; node {cpu * 1e6:.1f} us CPU/record (indexing included)")
            runs = [
                (transport, nodes, senders)
                for transport in options.transports.split(",")
                for nodes in (int(n) for n in options.nodes.split(","))
                for senders in (options.tcp_connections if transport == "tcp" else options.http_clients)
            ]
            for transport, nodes, senders in runs:
                rate, cpus, pg = ingest(cluster, nodes, transport, lines, work, senders)
                share = f" ({rate / limit:.2f} of the COPY limit)" if limit else ""
                print(f"PostgreSQL, {nodes} node(s), {transport.upper()} ({senders} per node): {rate:,.0f} records/s{share};"
                      f" nodes {', '.join(f'{c * 1e6:.1f}' for c in cpus)} us CPU/record; PostgreSQL {pg * 1e6:.1f} us CPU/record",
                      flush=True)
        if "tail" in only:
            url = database(cluster, "tail")
            a = BenchServer(*SERVER_OPTIONS, directory=os.path.join(work, "tail-a"), db=url)
            b = BenchServer(*SERVER_OPTIONS, directory=os.path.join(work, "tail-b"), db=url)
            try:
                across = type("Across", (), {"httpPort": b.httpPort, "tcpPort": a.tcpPort})()
                p50, p99, sent, least = tailLatency(across, 10, options.tail_rate, options.tail_seconds)  # type: ignore[arg-type]
                print(f"== tail across nodes (10 tails on B, {options.tail_rate:,} records/s into A over TCP):"
                      f" p50 {p50:.0f} ms, p99 {p99:.0f} ms; {least:,} of {sent:,} received by the slowest tail")
            finally:
                a.stop()
                b.stop()
        if "search" in only:
            compareSearch(cluster, options.search_records)
    finally:
        cluster.stop()
        cluster.remove()


if __name__ == "__main__":
    main()
