"""
Retention while ingesting: does deleting old records stall ingest, and does the
disk space come back?

Two runs on copies of one prefilled store (``--prefill`` records, all 60 days
old), each a fresh ``twistd -n logsvc`` ingesting ``--records`` new records
over acknowledged TCP (4 connections):

- baseline: no retention;
- ``--retain 30d``: every prefilled record is expired, so retention deletes
  them (at most 10,000 per transaction, logsvc.retention.DEFAULT_CHUNK) while the ingest runs.

Prints for each run the ingest rate (records/s until every record is
acknowledged) and the longest wait between two acks on one connection (a stall
shows there), the retention run's rate as a ratio of the baseline, and the
database file's size before and after retention finished (space returned by
incremental vacuum).

Usage: python bench/bench_retention.py [--prefill 1000000] [--records 500000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_acked import makeLines  # noqa: E402

from bench.harness import BenchServer, sendAcked, timedThreads  # noqa: E402
from logsvc.record import Record  # noqa: E402
from logsvc.store.sqlite.connection import INSERT_SQL, connect, createSchema  # noqa: E402
from tests.ports import freePort  # noqa: E402

DAY = 86_400_000_000


def prefill(db: str, count: int) -> None:
    conn = connect(db)
    createSchema(conn)
    old = int(time.time() * 1_000_000) - 60 * DAY
    conn.execute("BEGIN")
    conn.executemany(
        INSERT_SQL,
        (
            Record(old + i, old + i, 6, f"node-{i % 12}", "svc", f"old record {i} GET /api took {i % 900} ms", None)
            for i in range(count)
        ),
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def prefillCount(db: str) -> int:
    return count(db)


def fileSize(db: str) -> int:
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return os.path.getsize(db)


def count(db: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM logs").fetchone()[0])
    finally:
        conn.close()


def run(template: str, lines: list[bytes], extra: list[str]) -> tuple[float, float, str, subprocess.Popen[bytes]]:
    directory = tempfile.mkdtemp(prefix="logsvc-bench-retention-")
    shutil.copy(template, os.path.join(directory, "logsvc.sqlite3"))
    acked = freePort()
    server = BenchServer("--tcp-acked", f"tcp:{acked}:interface=127.0.0.1", *extra, directory=directory)
    db, process = server.db, server.process
    assert process is not None
    if extra:
        # Let retention get going before the ingest starts.
        while count(db) >= prefillCount(template):
            time.sleep(0.05)
    gaps: list[float] = []
    parts = [lines[i::4] for i in range(4)]
    rate = len(lines) / timedThreads(lambda p: gaps.append(sendAcked(acked, p, 20_000)), [(p,) for p in parts])
    return rate, max(gaps), db, process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefill", type=int, default=1_000_000, help="expired records in the store")
    parser.add_argument("--records", type=int, default=500_000, help="records ingested per run")
    args = parser.parse_args()
    template = os.path.join(tempfile.mkdtemp(prefix="logsvc-bench-retention-"), "template.sqlite3")
    prefill(template, args.prefill)
    before = fileSize(template)
    lines = makeLines(args.records)
    print(f"store: {args.prefill:,} records 60 days old ({before / 2**20:.0f} MiB); ingest {args.records:,} over acked TCP")

    baseRate, baseGap, baseDb, baseProcess = run(template, lines, [])
    baseProcess.terminate()
    baseProcess.wait(120)
    baseAfter = fileSize(baseDb)
    shutil.rmtree(os.path.dirname(baseDb))

    rate, gap, db, process = run(template, lines, ["--retain", "30d"])
    deleted = args.prefill + args.records - count(db)
    deadline = time.monotonic() + 600
    while count(db) > args.records + 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    process.terminate()
    process.wait(120)
    after = fileSize(db)
    print(f"{'no retention (baseline)':34s} {baseRate:10,.0f} records/s   longest ack wait {baseGap * 1000:6.0f} ms")
    print(
        f"{'--retain 30d, deleting meanwhile':34s} {rate:10,.0f} records/s   longest ack wait {gap * 1000:6.0f} ms"
        f"   {rate / baseRate:.2f} x baseline ({deleted:,} deleted during the ingest)"
    )
    print(
        f"database file: {before / 2**20:.0f} MiB prefilled; after the ingest {baseAfter / 2**20:.0f} MiB"
        f" without retention, {after / 2**20:.0f} MiB with it (space returned by incremental vacuum)"
    )
    shutil.rmtree(os.path.dirname(db))
    shutil.rmtree(os.path.dirname(template))


if __name__ == "__main__":
    main()
