"""
What live tails cost, at the query limits (``logsvc.query.MAX_QUERY_*``).

1. In process: the CPU time (``time.process_time``) of handing committed
   batches of 50 records (what 10,000 records/s makes of the pipeline's 5 ms
   batching) to 50 tails with distinct largest-allowed queries, per tail per
   record.
2. End to end: ``twistd logsvc`` with an acknowledged TCP listener, 50 live
   tails of distinct largest-allowed queries reading, one acknowledged TCP
   sender at a steady rate, and ``GET /health`` polled every 100 ms: the
   longest any record waited for its acknowledgement, and ``/health``'s
   slowest answer.

    python bench/bench_tails.py [--seconds 10] [--tails 50] [--rate 10000]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import selectors
import socket
import sys
import threading
import time
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import BenchServer  # noqa: E402
from logsvc.query import MAX_QUERY_REGEXES, MAX_QUERY_SLOW_TERMS, MAX_QUERY_TERMS  # noqa: E402
from tests.ports import freePort  # noqa: E402

VOCABULARY = [f"w{n}" for n in range(5000)]


def largestQuery(tail: int, regexes: int = MAX_QUERY_REGEXES) -> str:
    """
    @return: a q at every limit, distinct for each tail: record-by-record
        terms (C{regexes} regular expressions, then phrases) up to their
        limit, the rest word exclusions and prefixes.
    """
    terms = [f'-~"t{tail}r{n}[a-z]+"' for n in range(regexes)]
    terms += [f'-"t{tail} p{n}"' for n in range(MAX_QUERY_SLOW_TERMS - regexes)]
    while len(terms) < MAX_QUERY_TERMS:
        n = len(terms)
        terms.append(f"-t{tail}x{n}*" if n % 4 == 0 else f"-t{tail}w{n}")
    return " ".join(terms)


def message(rnd: random.Random) -> str:
    return " ".join(rnd.choice(VOCABULARY) for _ in range(12))


def inProcessCost(tails: int, records: int = 20_000, batch: int = 50, regexes: int = MAX_QUERY_REGEXES) -> float:
    """
    @return: CPU microseconds per tail per record of matching and writing
        committed batches for C{tails} tails.
    """
    from twisted.internet.task import Clock

    from logsvc.pipeline import Pipeline
    from logsvc.query import parseQuery
    from logsvc.record import Record
    from logsvc.store.memory import MemoryStore
    from logsvc.web.tail import TailHub, TailSession
    from tests.fakes import FakeStreamingRequest

    hub = TailHub(Pipeline(MemoryStore(), reactor=Clock()), clock=Clock())
    for tail in range(tails):
        query = parseQuery({b"q": [largestQuery(tail, regexes).encode()]}, allowUnlimited=True)
        TailSession(hub, MemoryStore(), FakeStreamingRequest(), query, None).start()  # type: ignore[arg-type]
    rnd = random.Random(1)
    now = time.time_ns() // 1000
    rows = [Record(now, now, 6, "host", "svc", message(rnd), '{"status": 200}') for _ in range(records)]
    started = time.process_time()
    for first in range(0, records, batch):
        hub._committed(first + 1, rows[first : first + batch])
    return (time.process_time() - started) / (tails * records) * 1e6


def endToEnd(seconds: float, tails: int, rate: int, regexes: int) -> dict[str, float]:
    acked = freePort()
    server = BenchServer("--tcp-acked", f"tcp:{acked}:interface=127.0.0.1")
    stop = threading.Event()
    health: list[float] = []
    try:
        readers = selectors.DefaultSelector()
        for tail in range(tails):
            s = socket.create_connection(("127.0.0.1", server.httpPort))
            s.sendall(b"GET /logs/tail?q=" + quote(largestQuery(tail, regexes)).encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            s.setblocking(False)
            readers.register(s, selectors.EVENT_READ)
        tailBytes = [0]
        cutOff: set[int] = set()

        def readTails() -> None:
            while not stop.is_set():
                for key, _ in readers.select(0.1):
                    try:
                        data = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
                    except BlockingIOError:
                        continue
                    tailBytes[0] += len(data)
                    if b"event: overflow" in data or not data:
                        cutOff.add(key.fd)
                        readers.unregister(key.fileobj)

        def pollHealth() -> None:
            while not stop.is_set():
                conn = http.client.HTTPConnection("127.0.0.1", server.httpPort, timeout=30)
                started = time.perf_counter()
                conn.request("GET", "/health")
                conn.getresponse().read()
                health.append(time.perf_counter() - started)
                conn.close()
                stop.wait(0.1)

        sender = socket.create_connection(("127.0.0.1", acked))
        sentAt: list[float] = []
        waits: list[float] = []

        def readAcks() -> None:
            buffer = b""
            done = 0
            while True:
                data = sender.recv(65536)
                if not data:
                    return
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                now = time.perf_counter()
                for line in lines:
                    n = int(line.split()[1])
                    # Each batch's first line waited longest.
                    for i in range(done, n, 100):
                        waits.append(now - sentAt[i])
                    done = n

        threads = [threading.Thread(target=f, daemon=True) for f in (readTails, pollHealth, readAcks)]
        for thread in threads:
            thread.start()
        rnd = random.Random(2)
        perTick = max(1, rate // 100)
        started = time.perf_counter()
        tick = 0
        while time.perf_counter() - started < seconds:
            chunk = b"".join(b'{"message": "%s"}\n' % message(rnd).encode() for _ in range(perTick))
            now = time.perf_counter()
            sentAt.extend([now] * perTick)
            sender.sendall(chunk)
            tick += 1
            delay = started + tick * 0.01 - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        sent = len(sentAt)
        elapsed = time.perf_counter() - started
        deadline = time.monotonic() + 60
        while len(waits) * 100 < sent and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        sender.close()
        waits.sort()
        health.sort()
        return {
            "rate": sent / elapsed,
            "ack_max": waits[-1] if waits else float("nan"),
            "ack_p99": waits[int(len(waits) * 0.99)] if waits else float("nan"),
            "health_max": health[-1] if health else float("nan"),
            "health_p99": health[int(len(health) * 0.99)] if health else float("nan"),
            "tail_mib": tailBytes[0] / 2**20,
            "cut_off": len(cutOff),
        }
    finally:
        stop.set()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--tails", type=int, default=50)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--regexes", type=int, default=MAX_QUERY_REGEXES, help="regular expressions per tail's q")
    args = parser.parse_args()
    print(f"query limits: {MAX_QUERY_TERMS} terms, {MAX_QUERY_SLOW_TERMS} record by record, {MAX_QUERY_REGEXES} regexes")
    cost = inProcessCost(args.tails, regexes=args.regexes)
    print(f"in process: {cost:.2f} us CPU per tail per record ({args.tails} tails, {args.regexes} regexes each, batches of 50)")
    if args.skip_e2e:
        return
    found = endToEnd(args.seconds, args.tails, args.rate, args.regexes)
    print(
        f"end to end: {found['rate']:,.0f} records/s sent for {args.seconds:g} s with {args.tails} tails"
        f" ({found['tail_mib']:.1f} MiB streamed to them, {found['cut_off']} cut off for falling behind); longest wait for an ack {found['ack_max'] * 1000:.0f} ms"
        f" (p99 {found['ack_p99'] * 1000:.0f} ms); /health slowest {found['health_max'] * 1000:.0f} ms"
        f" (p99 {found['health_p99'] * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
