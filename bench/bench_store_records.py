"""
The store's CPU time per record, by the kind of record: the records
``bench_senders.py`` sends (plain lines, RFC 5424, RFC 3164, zlib GELF),
parsed before the clock starts, appended to a fresh SQLite store in batches
(as the pipeline hands them over) from a reactor that does nothing else, and
timed per thread (``/proc``): the writer, the search indexer, the WAL
checkpointer.  What a record costs once parsed, apart from any listener.

Usage: python bench/bench_store_records.py [--records 100000] [--batch 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, reactor  # noqa: E402

from bench.bench_senders import gelfMessages, makeMessages, plainLine, rfc3164, rfc5424  # noqa: E402
from bench.harness import _cpuSeconds  # noqa: E402
from logsvc.formats.datagram import parseDatagrams  # noqa: E402
from logsvc.record import Record  # noqa: E402
from logsvc.store.sqlite.store import SqliteStore  # noqa: E402

RECEIVED = 1_795_000_000_000_000

KINDS: dict[str, Callable[[int], list[bytes]]] = {
    "plain lines": lambda count: makeMessages(plainLine, count),
    "RFC 5424": lambda count: makeMessages(rfc5424, count),
    "RFC 3164": lambda count: makeMessages(rfc3164, count),
    "GELF": lambda count: [d for (d,) in gelfMessages(count)],
}


def threadSeconds() -> dict[int, float]:
    """
    @return: each thread's CPU seconds so far, by native thread id.
    """
    return {
        int(tid): _cpuSeconds(f"/proc/self/task/{tid}/stat") for tid in os.listdir("/proc/self/task")
    }


@defer.inlineCallbacks
def measure(name: str, records: list[Record], batch: int) -> Generator[Any, Any, None]:
    directory = tempfile.mkdtemp(prefix="logsvc-bench-")
    try:
        store = SqliteStore(os.path.join(directory, "logsvc.sqlite3"), reactor=reactor)
        store.startService()
        yield store.append(records[:10])
        before = threadSeconds()
        started = time.perf_counter()
        yield defer.gatherResults([store.append(records[i : i + batch]) for i in range(10, len(records), batch)])
        yield store.whenIndexed()
        elapsed = time.perf_counter() - started
        after = threadSeconds()
        names = {thread.native_id: thread.name for thread in threading.enumerate()}
        count = len(records) - 10
        used = {
            names.get(tid, str(tid)).removeprefix("logsvc-sqlite-"): (seconds - before.get(tid, 0.0)) * 1e6 / count
            for tid, seconds in after.items()
        }
        total = sum(used.values())
        split = ", ".join(f"{thread} {us:.1f}" for thread, us in sorted(used.items()) if us >= 0.05)
        print(f"{name:12s} {total:5.1f} us/record ({split})   {count / elapsed:9,.0f} records/s")
        yield store.stopService()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@defer.inlineCallbacks
def main(count: int, batch: int) -> Generator[Any, Any, None]:
    print(f"{count:,} records per kind, batches of {batch:,}; CPU per record by thread")
    try:
        for name, make in KINDS.items():
            records, rejected = parseDatagrams([(m, "127.0.0.1") for m in make(count)], RECEIVED)
            assert not rejected
            yield measure(name, records, batch)
    finally:
        reactor.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="records per kind")
    parser.add_argument("--batch", type=int, default=2000, help="records per append")
    args = parser.parse_args()
    reactor.callWhenRunning(main, args.records, args.batch)
    reactor.run()
