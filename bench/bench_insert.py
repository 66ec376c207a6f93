"""
The writer's insert statement, alone and beside a busy thread.

Inserts the same parsed records into a fresh store file (logsvc's schema) with
C{executemany}, with one statement over a JSON array of the rows (what the
writer used first), with multi-row statements of power-of-two sizes (what it
used next: a batch of 3,960 takes eight statements) and with logsvc's
padded multi-row statements (L{insertRecords}: one statement per 4,096
records), first alone, then while another thread parses lines as fast as it
can (as the reactor thread does under load).  Transactions hold 10,000
records (as under TCP load) or 3,960 (as under HTTP load, 8 clients posting
1,000 each).  Each run stops after C{--seconds} or when every record is in,
and prints rows/s.

Usage: python bench/bench_insert.py [--records 200000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from itertools import chain

import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.bench_spine import makeLines  # noqa: E402
from logsvc.formats.detect import parseLines  # noqa: E402
from logsvc.record import Record  # noqa: E402
from logsvc.store.sqlite.connection import (  # noqa: E402
    INSERT_SQL,
    MAX_STATEMENT_ROWS,
    connect,
    createSchema,
    insertRecords,
    stopMemoryStatistics,
)

#: Records per transaction: as under TCP load, and as under HTTP load.
BATCHES = (10_000, 3_960)


def rate(directory: str, records: list[Record], insert: Callable[..., object], seconds: float, batch: int) -> float:
    path = os.path.join(directory, f"insert-{time.monotonic_ns()}.sqlite3")
    conn = connect(path)
    createSchema(conn)
    done = 0
    started = time.perf_counter()
    for i in range(0, len(records), batch):
        conn.execute("BEGIN")
        insert(conn, records[i : i + batch])
        conn.execute("COMMIT")
        done += len(records[i : i + batch])
        if time.perf_counter() - started > seconds:
            break
    elapsed = time.perf_counter() - started
    conn.close()
    return done / elapsed


def executemany(conn: sqlite3.Connection, records: list[Record]) -> None:
    conn.executemany(INSERT_SQL, records)


JSON_INSERT_SQL = (
    "INSERT INTO logs (ts, received, level, source, service, message, fields)"
    " SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6"
    " FROM json_each(?)"
)


def jsonArray(conn: sqlite3.Connection, records: list[Record]) -> None:
    conn.execute(JSON_INSERT_SQL, (orjson.dumps(records, default=tuple).decode(),))


def powersOfTwo(conn: sqlite3.Connection, records: list[Record]) -> None:
    start, total = 0, len(records)
    while start < total:
        size = min(MAX_STATEMENT_ROWS, 1 << ((total - start).bit_length() - 1))
        sql = INSERT_SQL + ", (?, ?, ?, ?, ?, ?, ?)" * (size - 1)
        conn.execute(sql, list(chain.from_iterable(records[start : start + size])))
        start += size


def parseUntil(stop: threading.Event, lines: list[bytes]) -> None:
    while not stop.is_set():
        parseLines(lines, "p", 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="longest run")
    args = parser.parse_args()
    # As twistd logsvc runs.
    stopMemoryStatistics()
    lines = makeLines(args.records, 1)
    records, _ = parseLines(lines, "127.0.0.1", time.time_ns() // 1000)
    variants = (
        ("executemany", executemany),
        ("JSON array", jsonArray),
        ("powers of two", powersOfTwo),
        ("padded", insertRecords),
    )
    with tempfile.TemporaryDirectory(prefix="logsvc-bench-insert-") as directory:
        results = {}
        for batch in BATCHES:
            for busy in (False, True):
                for name, insert in variants:
                    stop = threading.Event()
                    thread = threading.Thread(target=parseUntil, args=(stop, lines[:5000]))
                    if busy:
                        thread.start()
                    try:
                        results[(batch, busy, name)] = rate(directory, records, insert, args.seconds, batch)
                    finally:
                        stop.set()
                        if busy:
                            thread.join()
                    label = "beside a parsing thread" if busy else "alone"
                    print(f"{batch:>6} a transaction  {name:<14} {label:<24} {results[(batch, busy, name)]:>10,.0f} rows/s")
        for batch in BATCHES:
            for name, _ in variants[1:]:
                print(
                    f"{batch:>6} a transaction  {name} / executemany: alone"
                    f" {results[(batch, False, name)] / results[(batch, False, 'executemany')]:.2f},"
                    f" beside a parsing thread"
                    f" {results[(batch, True, name)] / results[(batch, True, 'executemany')]:.1f}"
                )


if __name__ == "__main__":
    main()
