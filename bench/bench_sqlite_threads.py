"""
What SQLite's memory statistics cost threads that run statements at once.

Most SQLite builds (Debian's among them) keep memory statistics, and every
allocation takes one process-wide mutex to update them.  logsvc's store runs
SQLite on several threads at once (the writer, the search indexer, the
readers), so C{twistd logsvc} turns the statistics off at start
(L{logsvc.store.sqlite.stopMemoryStatistics}).

This benchmark fills a store with C{--records} realistic records (the search
benchmark's generator), then renders all of them as export pages
(L{logsvc.store.sqlite.selectNDJSON}, 10,000 records a page) on 1 and on 2
threads, each with a connection of its own and an equal share of the time
range, with statistics on and off, each case in a fresh process, best of
C{--runs}.  It prints records/s and the ratios against one thread with
statistics on (the baseline, run in the same invocation).

Usage: python bench/bench_sqlite_threads.py [--records 400000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from bench_search import fillStore, generate  # noqa: E402

from logsvc.query import Query  # noqa: E402
from logsvc.store.sqlite.connection import connect, stopMemoryStatistics  # noqa: E402
from logsvc.store.sqlite.plan import selectNDJSON  # noqa: E402


def exportRate(db: str, threads: int) -> float:
    """
    @return: records/s rendering every record of C{db} as export pages on
        C{threads} threads, each exporting an equal share of the time range.
    """
    (low, high) = connect(db, readonly=True).execute("SELECT min(ts), max(ts) + 1 FROM logs").fetchone()
    width = -(-(high - low) // threads)
    counts: list[int] = []

    def export(since: int) -> None:
        conn = connect(db, readonly=True)
        query = Query(since=since, until=min(high, since + width), order="asc", limit=10_000)
        count = 0
        while True:
            _, n, last = selectNDJSON(conn, query, useIndex=False)
            count += n
            if last is None:
                break
            query = query.after(*last)
        conn.close()
        counts.append(count)

    workers = [threading.Thread(target=export, args=(low + n * width,)) for n in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - started)


def child(db: str, threads: int, statistics: str) -> None:
    if statistics == "off" and not stopMemoryStatistics():
        raise SystemExit("could not turn SQLite's memory statistics off")
    print(exportRate(db, threads))


def measure(db: str, threads: int, statistics: str) -> float:
    output = subprocess.run(
        [sys.executable, __file__, "--child", db, str(threads), statistics], check=True, capture_output=True, text=True
    ).stdout
    return float(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=400_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        db, threads, statistics = options.child
        child(db, int(threads), statistics)
        return
    work = tempfile.mkdtemp(prefix="logsvc-bench-threads-")
    db = os.path.join(work, "threads.sqlite3")
    count, _ = fillStore(db, (r for r, _ in generate(options.records, 1_763_000_000_000_000)), searchIndex=False)
    print(f"== export pages of {count:,} records, best of {options.runs} (records/s)")
    cases = [(1, "on"), (2, "on"), (1, "off"), (2, "off")]
    best = {case: max(measure(db, *case) for _ in range(options.runs)) for case in cases}
    baseline = best[1, "on"]
    for (threads, statistics), rate in best.items():
        print(f"{threads} thread{'s' if threads > 1 else ' '}, statistics {statistics:3s} {rate:>12,.0f}"
              f"   {rate / baseline:5.2f} x baseline")
    for name in os.listdir(work):
        os.remove(os.path.join(work, name))
    os.rmdir(work)


if __name__ == "__main__":
    main()
