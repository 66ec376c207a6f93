"""
Search benchmark: queries, stats, export and live tail on a store of 10M
records, and what the search index costs ingest.

1. Fills a store with realistic records (8 services, 15 hosts, errors rare,
   messages from a few hundred templates with variable parts, structured
   fields) through the store's own write path (L{SqliteStore.append}, 50k
   records per call) and indexes it.  The file is kept in C{bench/out/}
   (ignored by git) and reused by later runs with the same C{--records}.
2. Starts ``twistd -n logsvc`` on it and prints median and p95 over HTTP of:
   newest 100 with level+service filter; a rare word; a phrase; a field
   filter; a 24h C{/stats} histogram; then NDJSON export records/s.  Then
   the UI's default view (the last 24 h of the store: histogram, newest
   100, facets of level, service, source, field names and a field's top
   values), each request and their total, for 24 h (ending at the store's
   newest record, the same starting half a minute into a minute, and 24 h
   ending half a minute into a minute: the partial minutes' worst cases)
   and, on a store spanning more, for the week; and the query
   language over the last 24 h: field terms, comparisons holding for 1 % to
   20 % of the records, OR, a narrowed regular expression, and a regular
   expression alone (past the work limit: the time to its 400).
3. Live tail latency (sender's clock at send to event received, so it
   includes batching and commit): p50/p99 with C{--tails} tails open while
   C{--tail-rate} records/s go in over TCP; checks every tail got every record.
4. Ingest through C{SqliteStore.append} into fresh stores, search index on
   (timed until indexed too) vs. off (the spine), in the same run.
5. Store size on disk per record vs. the records' raw NDJSON size.

With C{--window-hours 24} the C{--records} are spread over 24 h instead of
7 days (issue 13's dense stores: C{--records 1000000} and C{10000000}, each
cached under its own name); C{--parts view} prints only the default view.

Usage: python bench/bench_search.py [--records 10000000] [--ingest-records 1000000]
       [--tails 50] [--tail-rate 10000] [--tail-seconds 10] [--runs 30]
       [--window-hours 24] [--parts ingest,queries,view,tail]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import selectors
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import orjson

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.bench_spine import tcpIngest as spineTCPIngest  # noqa: E402
from bench.harness import BenchServer as Server  # noqa: E402
from logsvc.record import LEVEL_NAMES, Record, formatMicros  # noqa: E402
from logsvc.store.sqlite.connection import connect, stopMemoryStatistics  # noqa: E402
from logsvc.store.sqlite.searchindex import searchPath  # noqa: E402
from logsvc.store.sqlite.store import SqliteStore  # noqa: E402
from tests.fakes import DirectReactor  # noqa: E402

#: twistd logsvc options of every server here: the temporary directories
#: these stores live in may be on a fuller disk than the default allows.
SERVER_OPTIONS = ("--min-free-disk", "1MiB")
GENERATOR_VERSION = 1

SERVICES = ["api", "auth", "billing", "search", "worker", "gateway", "scheduler", "mailer"]
HOSTS = [f"web-{i:02d}" for i in range(12)] + [f"db-{i}" for i in range(3)]
VERBS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
PATHS = [
    "/api/users", "/api/orders", "/api/items", "/login", "/logout", "/api/search", "/api/cart",
    "/health", "/api/invoices", "/api/payments", "/static/app.js", "/api/sessions",
]
ACTIONS = ["started", "finished", "retrying", "queued", "completed", "skipped", "scheduled", "cancelled"]
JOBS = ["cleanup", "reindex", "thumbnail", "export", "digest", "sync", "backup", "report", "invoice-run", "rollup"]
OBJECTS = ["user", "order", "session", "cache entry", "token", "invoice", "payment", "cart", "mailbox", "shard"]
PROBLEMS = [
    "timed out", "connection refused", "connection reset by peer", "deadlock detected", "permission denied",
    "not found", "rate limited", "checksum mismatch", "disk quota exceeded", "invalid signature",
]
#: Share of records per level (percent); errors are rare, critical rarer.
LEVEL_SHARE = {"debug": 10.0, "info": 80.0, "notice": 5.0, "warning": 4.0, "error": 0.9, "critical": 0.01}
LEVEL_NUMBER = {name: n for n, name in enumerate(LEVEL_NAMES)}

#: The stored records span the week before this instant (2025-11-20T00:00Z).
END = 1_763_596_800_000_000
SPAN = 7 * 86400 * 1_000_000
DAY = 86400 * 1_000_000
MINUTE = 60 * 1_000_000


def templates() -> dict[str, list[str]]:
    """
    @return: message templates by level name (a few hundred in all).
    """
    byLevel: dict[str, list[str]] = {name: [] for name in LEVEL_SHARE}
    for verb in VERBS:
        for path in PATHS:
            byLevel["info"].append(f"{verb} {path}/{{id}} {{status}} in {{ms}} ms")
    for action in ACTIONS:
        for job in JOBS:
            byLevel["info"].append(f"job {job} {action} after {{ms}} ms (attempt {{n}})")
    for thing in OBJECTS:
        byLevel["debug"].append(f"loaded {thing} {{id}} from cache")
        byLevel["debug"].append(f"evicted {thing} {{id}} from cache")
        byLevel["notice"].append(f"{thing} {{id}} updated by user {{user}}")
        for problem in PROBLEMS:
            byLevel["warning"].append(f"retrying {thing} {{id}}: {problem}")
            byLevel["error"].append(f"failed to save {thing} {{id}}: {problem}")
    byLevel["error"].append("upstream {host} unreachable: no route to host")
    byLevel["critical"].append("worker {n} crashed: segfault in libxml2 at 0x{hex}")
    return byLevel


def generate(count: int, start: int, *, seed: int = 1, first: int = 0,
             span: int = SPAN) -> Iterator[tuple[Record, dict[str, Any]]]:
    """
    Yield C{count} records spread evenly over C{span} microseconds from
    C{start}, each with the fields dict it carries.
    """
    rng = random.Random(seed * 1_000_003 + first)
    byLevel = templates()
    levels = list(LEVEL_SHARE)
    weights = [LEVEL_SHARE[name] for name in levels]
    step = span / max(count, 1)
    choice, randrange = rng.choice, rng.randrange
    for i, level in zip(range(count), rng.choices(levels, weights, k=count), strict=False):
        message = choice(byLevel[level]).format(
            id=randrange(1, 10_000_000),
            status=choice((200, 200, 200, 201, 204, 304, 400, 404, 500)),
            ms=randrange(1, 5000),
            n=randrange(1, 9),
            user=f"u{randrange(1, 50_000)}",
            host=choice(HOSTS),
            hex=f"{randrange(0, 1 << 32):08x}",
        )
        ts = start + int((first + i) * step) + randrange(0, 1_000_000)
        fields: dict[str, Any] = {
            "request_id": f"{randrange(0, 1 << 48):012x}",
            "status": choice((200, 200, 201, 404, 500)),
            "region": choice(("eu-west-1", "us-east-1", "ap-south-1")),
            "pid": randrange(100, 40000),
        }
        if randrange(0, 5) == 0:
            fields["user"] = f"u{randrange(1, 50_000)}"
        record = Record(ts, ts + randrange(0, 2000), LEVEL_NUMBER[level], choice(HOSTS), choice(SERVICES), message,
                        orjson.dumps(fields).decode())
        yield record, fields


def rawLine(record: Record, fields: dict[str, Any]) -> bytes:
    """
    @return: the record as a sender would write it (one NDJSON line).
    """
    return orjson.dumps(
        {"ts": formatMicros(record.ts), "level": LEVEL_NAMES[record.level], "host": record.source,
         "service": record.service, "message": record.message, **fields}
    ) + b"\n"


def fillStore(path: str, records: Iterator[Record], *, searchIndex: bool = True, batch: int = 50_000,
              inFlight: int = 4) -> tuple[int, float]:
    """
    Append C{records} through L{SqliteStore.append}, C{batch} at a time with
    at most C{inFlight} appends queued, then wait until they are indexed.

    @return: the count and the seconds it took (to durable and indexed).
    """
    store = SqliteStore(path, reactor=DirectReactor(), searchIndex=searchIndex, readers=(1, 1))
    store.startService()
    slots = threading.Semaphore(inFlight)
    done = threading.Event()
    count = 0
    started = time.perf_counter()
    chunk: list[Record] = []

    def release(_: object) -> None:
        slots.release()

    for record in records:
        chunk.append(record)
        if len(chunk) == batch:
            slots.acquire()
            store.append(chunk).addBoth(release)
            count += len(chunk)
            chunk = []
    if chunk:
        slots.acquire()
        store.append(chunk).addBoth(release)
        count += len(chunk)
    for _ in range(inFlight):
        slots.acquire()
    store.whenIndexed().addBoth(lambda _: done.set())
    done.wait()
    elapsed = time.perf_counter() - started
    stopped = threading.Event()
    store.stopService().addBoth(lambda _: stopped.set())
    stopped.wait()
    return count, elapsed


def onDisk(path: str) -> int:
    """
    @return: bytes of the database and its search index after a WAL checkpoint.
    """
    total = 0
    for name in (path, searchPath(path)):
        if not os.path.exists(name):
            continue
        conn = connect(name)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        total += sum(os.path.getsize(name + suffix) for suffix in ("", "-wal") if os.path.exists(name + suffix))
    return total


def tcpIngest(server: Server, lines: list[bytes], *, indexed: bool, connections: int = 4) -> float:
    """
    Send C{lines} (each ending in a newline) over C{connections} TCP
    connections at once and wait until the store holds them all (and, when
    C{indexed}, has indexed them).

    @return: records/s from the first byte sent to that point.
    """
    durable, toIndexed = spineTCPIngest(server, [line.rstrip(b"\n") for line in lines], connections)
    return toIndexed if indexed else durable


def timed(server: Server, path: str, params: dict[str, str], runs: int) -> tuple[float, float, int]:
    """
    @return: median and p95 milliseconds of C{runs} requests, and the number
        of records (or total) the last answered.
    """
    samples = []
    found = 0
    for _ in range(runs):
        started = time.perf_counter()
        status, body = server.get(path, params)
        samples.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"{path} {params}: HTTP {status}: {body[:200]!r}")
        decoded = orjson.loads(body)
        found = len(decoded["logs"]) if "logs" in decoded else decoded["total"]
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))], found


def export(server: Server, params: dict[str, str]) -> tuple[int, float]:
    """
    @return: records streamed by an NDJSON export and records/s.
    """
    conn = http.client.HTTPConnection("127.0.0.1", server.httpPort, timeout=600)
    started = time.perf_counter()
    conn.request("GET", "/logs?" + urlencode(params), headers={"Accept": "application/x-ndjson"})
    response = conn.getresponse()
    lines = 0
    while True:
        chunk = response.read(1 << 20)
        if not chunk:
            break
        lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    conn.close()
    return lines, lines / elapsed


_SENT = re.compile(rb'"sent":([0-9.]+)')


def tailLatency(server: Server, tails: int, rate: int, seconds: float) -> tuple[float, float, int, int]:
    """
    Open C{tails} SSE tails, send C{rate} records/s over TCP for C{seconds},
    and time each event from the sender's stamp to its arrival.

    @return: p50 and p99 milliseconds, records sent, and the fewest records
        any tail received.
    """
    selector = selectors.DefaultSelector()
    received = [0] * tails
    partial = [b""] * tails
    overflows = [0]
    latencies: list[float] = []
    socks = []
    for n in range(tails):
        s = socket.create_connection(("127.0.0.1", server.httpPort))
        # HTTP/1.0: the stream comes without chunked framing.
        s.sendall(b"GET /logs/tail?service=bench HTTP/1.0\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ, n)
        socks.append(s)
    total = int(rate * seconds)
    stopAt = [float("inf")]

    def read() -> None:
        while time.monotonic() < stopAt[0]:
            for key, _ in selector.select(0.2):
                data = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
                now = time.time()
                # Only whole events: one may be split across reads.
                data = partial[key.data] + data
                end = data.rfind(b"\n\n")
                end = end + 2 if end >= 0 else 0
                data, partial[key.data] = data[:end], data[end:]
                stamps = _SENT.findall(data)
                overflows[0] += data.count(b"event: overflow")
                received[key.data] += len(stamps)
                latencies.extend(now - float(s) for s in stamps)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(1.0)
    sender = socket.create_connection(("127.0.0.1", server.tcpPort))
    burst = max(1, rate // 100)
    started = time.monotonic()
    for sent in range(0, total, burst):
        due = started + sent / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = time.time()
        sender.sendall(b"".join(
            b'{"service":"bench","message":"tail probe %d","sent":%.6f}\n' % (sent + i, now)
            for i in range(min(burst, total - sent))
        ))
    sender.close()
    deadline = time.monotonic() + 30
    while min(received) < total and time.monotonic() < deadline:
        time.sleep(0.1)
    stopAt[0] = 0
    reader.join()
    for s in socks:
        s.close()
    if overflows[0]:
        print(f"({overflows[0]} tails were cut off as too slow)")
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000 if latencies else float("nan")
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan")
    return p50, p99, total, min(received)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--ingest-records", type=int, default=1_000_000)
    parser.add_argument("--tails", type=int, default=50)
    parser.add_argument("--tail-rate", type=int, default=10_000)
    parser.add_argument("--tail-seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--cache", default=os.path.join(ROOT, "bench", "out"))
    addWindowOption(parser)
    parser.add_argument("--parts", default="ingest,queries,tail",
                        help="which parts to run (comma-separated): ingest, queries, view (fill or reuse the"
                             " store and print only the default view over its last 24 h), tail")
    options = parser.parse_args()
    # As twistd logsvc runs: the stores below run in this process.
    stopMemoryStatistics()
    os.makedirs(options.cache, exist_ok=True)
    work = tempfile.mkdtemp(prefix="logsvc-bench-search-")
    start = END - SPAN

    parts = set(options.parts.split(","))
    if "ingest" in parts:
        ingest(options, work, start)
    if "queries" in parts or "view" in parts:
        queries(options, work, "queries" in parts)
    if "tail" in parts:
        # The tail runs on a fresh store so the cached one stays as generated.
        server = Server(*SERVER_OPTIONS, directory=work, db=os.path.join(work, "tail.sqlite3"))
        try:
            p50, p99, sent, fewest = tailLatency(server, options.tails, options.tail_rate, options.tail_seconds)
            print(f"tail latency, {options.tails} tails at {options.tail_rate:,} records/s: p50 {p50:.1f} ms,"
                  f" p99 {p99:.1f} ms; {sent:,} sent, every tail got {fewest:,}")
        finally:
            server.stop()


def ingest(options: Any, work: str, start: int) -> None:
    """
    Print ingest rates with the search index on and off, store-level and
    end to end.
    """
    print(f"== ingest through SqliteStore.append, {options.ingest_records:,} records, fresh stores")
    sample = [r for r, _ in generate(options.ingest_records, start, seed=7)]
    rates = {}
    for label, indexed in (("spine (search index off)", False), ("search index on", True), ("spine again", False)):
        path = os.path.join(work, f"ingest-{label.split()[0]}-{indexed}.sqlite3")
        count, elapsed = fillStore(path, iter(sample), searchIndex=indexed, batch=10_000, inFlight=8)
        rates[label] = count / elapsed
        print(f"{label:28s} {count / elapsed:>12,.0f} records/s")
    spine = (rates["spine (search index off)"] + rates["spine again"]) / 2
    print(f"{'index on / spine':28s} {rates['search index on'] / spine:>12.2f}")
    lines = [rawLine(r, f) for r, f in generate(options.ingest_records, start, seed=7)]
    del sample
    print(f"== ingest end to end: {len(lines):,} NDJSON lines over 4 TCP connections into twistd logsvc")
    rates = {}
    for label, extra in (("spine (--no-search-index)", ("--no-search-index",)), ("search index on", ()),
                         ("spine again", ("--no-search-index",))):
        directory = tempfile.mkdtemp(dir=work)
        server = Server(*SERVER_OPTIONS, *extra, directory=directory, db=os.path.join(directory, "ingest.sqlite3"))
        try:
            rates[label] = tcpIngest(server, lines, indexed=not extra)
        finally:
            server.stop()
        print(f"{label:28s} {rates[label]:>12,.0f} records/s (durable{'' if extra else ' and indexed'})")
    spine = (rates["spine (--no-search-index)"] + rates["spine again"]) / 2
    print(f"{'index on / spine':28s} {rates['search index on'] / spine:>12.2f}")
    del lines


def addWindowOption(parser: argparse.ArgumentParser) -> None:
    """
    Add C{--window-hours} (read by L{storeSpan}) to C{parser}.
    """
    parser.add_argument("--window-hours", type=float, default=None,
                        help="spread --records over this many hours instead of 7 days (a dense store, cached"
                             " under its own name)")


def storeSpan(options: Any) -> tuple[str, int]:
    """
    @return: the name of the cached store for C{options} without its
        suffix (its record count and, for a dense store, its span in
        hours) and the span of its records in microseconds, which end at
        L{END}.
    """
    if options.window_hours is None:
        return f"{options.records}-v{GENERATOR_VERSION}", SPAN
    hours = f"{options.window_hours:g}"
    return f"{options.records}-{hours}h-v{GENERATOR_VERSION}", int(options.window_hours * 3600 * 1_000_000)


def storePath(options: Any) -> tuple[str, int]:
    """
    @return: the cached store's path for C{options} (L{storeSpan}'s name)
        and the span of its records in microseconds.
    """
    name, span = storeSpan(options)
    return os.path.join(options.cache, f"search-{name}.sqlite3"), span


def newestTime(db: str) -> int:
    """
    @return: the newest event time in the store at C{db} (microseconds).
    """
    conn = connect(db)
    try:
        (newest,) = conn.execute("SELECT max(ts) FROM logs").fetchone()
    finally:
        conn.close()
    return int(newest)


def queries(options: Any, work: str, everything: bool) -> None:
    """
    Fill (or reuse) the big store and print the UI's default view over its
    last 24 h and, when C{everything}, query, stats and export figures.

    The store's timestamps are fixed at generation (its records end at
    L{END}, whenever it was filled), so "the last 24 h" here is the 24 h
    before its newest record plus one microsecond, as a user opening the
    UI the moment that record arrived would ask for: the window's edges
    fall inside minutes, as a real "now" does.
    """
    db, span = storePath(options)
    start = END - span
    if not os.path.exists(db + ".done"):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.remove(db + suffix)
        print(f"== generating {options.records:,} records over {span / 3.6e9:g} h into {db}")
        count, elapsed = fillStore(db, (r for r, _ in generate(options.records, start, span=span)))
        print(f"filled and indexed in {elapsed:,.0f} s ({count / elapsed:,.0f} records/s incl. generation)")
        open(db + ".done", "w").close()
    else:
        print(f"== reusing {db}")
    if everything:
        raw = sum(len(rawLine(r, f)) for r, f in generate(100_000, start, seed=99)) / 100_000
        size = onDisk(db)
        print(f"store size: {size / options.records:,.0f} bytes/record on disk; raw NDJSON input {raw:,.0f}"
              f" bytes/record (ratio {size / options.records / raw:.2f})")

    until = newestTime(db) + 1
    server = Server(*SERVER_OPTIONS, directory=work, db=db)
    try:
        views = dayViews(until)
        day = views[0][1]
        if span > DAY:
            views.append(("7d to the newest record", {"since": formatMicros(until - 7 * DAY), "until": day["until"]}))
        if not everything:
            for label, window in views:
                defaultView(server, label, window, options.runs)
            return
        probes = [
            ("newest 100, level=error service=billing", "/logs", {"level": "error", "service": "billing", "limit": "100"}),
            ("rare word (segfault)", "/logs", {"q": "segfault", "limit": "100"}),
            ("rare word, newest 100 (deadlock)", "/logs", {"q": "deadlock", "limit": "100"}),
            ('phrase ("no route to host")', "/logs", {"q": '"no route to host"', "limit": "100"}),
            ("field filter (field.user=u4242)", "/logs", {"field.user": "u4242", "limit": "100"}),
            ("24h /stats histogram (1h)", "/stats", {**day, "interval": "1h"}),
            ("24h /stats histogram (auto)", "/stats", day),
        ]
        print(f"== HTTP latency on {options.records:,} records ({options.runs} runs each): median / p95 ms")
        for label, path, params in probes:
            server.get(path, params)
            median, p95, found = timed(server, path, params, options.runs)
            print(f"{label:44s} {median:8.1f} {p95:8.1f}   ({found:,} found)")
        for label, window in views:
            defaultView(server, label, window, options.runs)
        languageProbes(server, day, options.runs)
        lines, rate = export(server, {"since": day["since"], "until": day["until"], "order": "asc"})
        print(f"{'NDJSON export (24h, ' + format(lines, ',') + ' records)':44s} {rate:>12,.0f} records/s")
    finally:
        server.stop()


def dayViews(until: int) -> list[tuple[str, dict[str, str]]]:
    """
    @param until: one microsecond after the store's newest record (the
        moment a user opening the UI as it arrived would call "now").
    @return: the windows of the default view measured, labelled: the 24 h
        ending at C{until}; the same starting half a minute into a minute;
        24 h in the past with both ends half a minute into a minute.
    """
    day = {"since": formatMicros(until - DAY), "until": formatMicros(until)}
    # The partial minutes at a window's edges are read from the records,
    # at most half a minute each, none at an edge with no record beyond
    # it (see logsvc.store.rollup.edgeParts): a view ending now costs
    # the most when it starts half a minute into a minute; a window
    # ending in the past, when both of its ends do.
    halfway = (until - 1) // MINUTE * MINUTE + MINUTE // 2
    if halfway > until:
        halfway -= MINUTE
    # (Half a minute into the window's first minute, so that on a store
    # whose records begin 24 h before its newest there are records
    # before the start.)
    startHalfway = {"since": formatMicros((until - DAY) // MINUTE * MINUTE + MINUTE // 2), "until": day["until"]}
    dayHalfway = {"since": formatMicros(halfway - DAY), "until": formatMicros(halfway)}
    return [
        ("24h to the newest record", day),
        ("the same, starting half a minute into a minute", startHalfway),
        ("24h in the past, both ends half a minute in", dayHalfway),
    ]


def defaultView(server: Server, label: str, window: dict[str, str], runs: int,
                cpuSeconds: Callable[[], float] | None = None) -> tuple[float, float]:
    """
    Print the UI's default view over C{window}: each request's median and
    p95, and the sum of the medians (the view's server time, requests one
    after another).

    @param cpuSeconds: the CPU seconds the server used so far; by default
        the node's (L{Server.cpuSeconds}), with a database server its
        processes' too.
    @return: the sum of the medians and the server CPU milliseconds per
        view.
    """
    cpuSeconds = cpuSeconds or server.cpuSeconds
    parts = [
        ("histogram (auto interval)", "/stats", window),
        ("newest 100", "/logs", {**window, "limit": "100"}),
        ("facet level", "/stats", {**window, "by": "level"}),
        ("facet service", "/stats", {**window, "by": "service"}),
        ("facet source", "/stats", {**window, "by": "source"}),
        ("field names (newest 1,000)", "/fields", window),
        ("facet field.region (newest 1,000)", "/stats", {**window, "by": "field.region"}),
    ]
    print(f"== default view, {label}: median / p95 ms")
    total = 0.0
    cpu = 0.0
    for name, path, params in parts:
        server.get(path, params)
        before = cpuSeconds()
        median, p95, found = timed(server, path, params, runs)
        cpu += cpuSeconds() - before
        total += median
        print(f"{name:44s} {median:8.1f} {p95:8.1f}   ({found:,})")
    print(f"{'default view total (sum of medians)':44s} {total:8.1f}")
    # CPU time changes much less than wall-clock time on a loaded machine.
    print(f"{'server CPU per view (mean of ' + str(runs) + ')':44s} {cpu * 1000 / runs:8.1f}")
    return total, cpu * 1000 / runs


def languageProbes(server: Server, window: dict[str, str], runs: int) -> None:
    """
    Print the newest 100 of query language terms over C{window}.
    """
    probes = [
        ("field term region:eu-west-1 (33%)", "region:eu-west-1"),
        ("field term status:500 (20%)", "status:500"),
        ("field term user:u4242 (rare)", "user:u4242"),
        ("comparison pid>39600 (1%)", "pid>39600"),
        ("comparison pid>39000 (2.5%)", "pid>39000"),
        ("comparison status>=500 (20%)", "status>=500"),
        ("columns service:billing level>=error", "service:billing level>=error"),
        ("OR of words (deadlock OR segfault)", "deadlock OR segfault"),
        ('regex narrowed (segfault ~"0x[0-9a-f]{8}")', 'segfault ~"0x[0-9a-f]{8}"'),
    ]
    print(f"== query language, newest 100 in the last 24 h ({runs} runs each): median / p95 ms")
    for label, q in probes:
        params = {**window, "q": q, "limit": "100"}
        server.get("/logs", params)
        median, p95, found = timed(server, "/logs", params, runs)
        print(f"{label:44s} {median:8.1f} {p95:8.1f}   ({found:,} found)")
    params = {**window, "q": '~"crashed: segfault"'}
    started = time.perf_counter()
    status, body = server.get("/stats", params)
    elapsed = (time.perf_counter() - started) * 1000
    print(f"{'24h histogram of a regex alone (work limit)':44s} {elapsed:8.1f}            (HTTP {status}: {body[:70]!r})")


if __name__ == "__main__":
    main()
