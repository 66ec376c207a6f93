"""
Acknowledged TCP ingest next to plain TCP ingest, in the same run.

Each measurement starts a fresh ``twistd -n logsvc`` (with ``--tcp-acked``) on
free loopback ports and counts records back from the store, so loss shows.
Prints records/s for:

- plain lines over TCP, 4 connections (the baseline): from the first byte sent
  until the store holds every record;
- the same lines over acknowledged TCP, 4 connections, each keeping up to
  ``--window`` lines unacknowledged: until every line is acknowledged (an ack
  means durable, so no store polling is needed; the count is checked after);
- the same through ``logsvc.sender.TCPSender`` (one sender, the library's
  default window), until ``flush()`` fires;

and each as a ratio of the plain rate.

Usage: python bench/bench_acked.py [--records 500000] [--window 20000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.harness import BenchServer, lineChunks, sendAcked, timedTCPIngest, timedThreads  # noqa: E402
from tests.ports import freePort  # noqa: E402

SERVICES = ["api", "web", "db", "auth", "billing", "search", "queue", "mailer"]
PATHS = ["/api/v1/items", "/api/v1/users", "/login", "/checkout", "/search"]


class Server(BenchServer):
    """
    A fresh ``twistd -n logsvc`` with plain and acknowledged TCP listeners.
    """

    def __init__(self) -> None:
        self.ackedPort = freePort()
        super().__init__("--tcp-acked", f"tcp:{self.ackedPort}:interface=127.0.0.1")


def makeLines(count: int) -> list[bytes]:
    rng = random.Random(count)
    lines = []
    for i in range(count):
        if i % 2:
            lines.append(
                b'{"message": "GET %s took %d ms", "level": "%s", "service": "%s", "req": %d}'
                % (
                    rng.choice(PATHS).encode(),
                    rng.randint(1, 900),
                    rng.choice((b"info", b"info", b"warn", b"error")),
                    rng.choice(SERVICES).encode(),
                    i,
                )
            )
        else:
            lines.append(
                f"{rng.choice(SERVICES)} GET {rng.choice(PATHS)}?page={rng.randint(1, 50)} "
                f"took {rng.randint(1, 900)} ms".encode()
            )
    return lines


def plainRate(lines: list[bytes], connections: int = 4) -> float:
    server = Server()
    try:
        payloads = [lineChunks(lines[i::connections]) for i in range(connections)]
        return timedTCPIngest(server, payloads, len(lines))
    finally:
        server.stop()


def ackedRate(lines: list[bytes], window: int, connections: int = 4) -> float:
    server = Server()
    try:
        parts = [lines[i::connections] for i in range(connections)]
        elapsed = timedThreads(sendAcked, [(server.ackedPort, p, window) for p in parts])
        stored = server.count()
        if stored != len(lines):
            raise RuntimeError(f"store has {stored} of {len(lines)} acknowledged records")
        return len(lines) / elapsed
    finally:
        server.stop()


def senderRate(lines: list[bytes]) -> float:
    """
    @return: records/s through L{TCPSender}: queue every record, then wait
        for C{flush()}.
    """
    from twisted.internet import task
    from twisted.internet.defer import ensureDeferred

    from logsvc.sender import TCPSender

    server = Server()
    result: list[float] = []

    async def run(reactor: object) -> None:
        sender = TCPSender(
            f"tcp:host=127.0.0.1:port={server.ackedPort}", reactor=reactor, maxQueued=len(lines) + 1
        )
        sender.startService()
        started = time.perf_counter()
        for line in lines:
            sender.sendLine(line + b"\n")
        await sender.flush()
        result.append(len(lines) / (time.perf_counter() - started))
        await sender.stopService()

    try:
        task.react(lambda reactor: ensureDeferred(run(reactor)))
    except SystemExit as e:
        if e.code:
            raise
    finally:
        stored = server.count()
        server.stop()
    if stored != len(lines):
        raise RuntimeError(f"store has {stored} of {len(lines)} records")
    return result[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=500_000, help="records per run")
    parser.add_argument("--window", type=int, default=20_000, help="unacked lines per connection")
    args = parser.parse_args()
    lines = makeLines(args.records)
    print(
        f"records per run: {args.records:,} (half plain, half JSON; fresh twistd logsvc per run,"
        " counted back from the store)"
    )
    plain = plainRate(lines)
    results = [("plain TCP, 4 connections (baseline)", plain)]
    results.append(
        (f"acked TCP, 4 connections, window {args.window:,}", ackedRate(lines, args.window))
    )
    results.append(("acked TCP, one TCPSender", senderRate(lines)))
    for name, rate in results:
        print(f"{name:44s} {rate:12,.0f} records/s   {rate / plain:5.2f} x plain")


if __name__ == "__main__":
    main()
