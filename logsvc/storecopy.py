# -*- test-case-name: tests.test_storecopy -*-
"""
C{logsvc copy SOURCE DEST}: copy every record of one store into another
(SQLite to PostgreSQL and back; each named as C{--db} names it), keeping
C{ts}, C{received}, C{level}, C{source}, C{service}, C{message} and
C{fields}.  The destination gives the records ids of its own, in the
source's id order.

Resumable: records go in the source's id order, a batch per destination
transaction, and a state file (C{--state}, by default named after both
stores in the current directory) holds the last source id and destination
id copied.  After an interruption, a run with the same arguments reads it,
counts what the destination committed beyond it (the batch whose commit the
state file missed), and goes on after exactly that many source records: no
record is copied twice or left out, provided nothing else writes to the
destination during the copy.  At the end the destination's count is checked
against the source's.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Generator
from typing import IO, Any

from twisted.internet.defer import Deferred, inlineCallbacks

from logsvc.query import Query
from logsvc.record import Record
from logsvc.store.choose import displayDatabase, openStore

#: Records read from the source and appended to the destination at a time.
BATCH = 10_000

EVERYTHING = Query(limit=None)


class CopyError(Exception):
    """
    The copy cannot go on (its message is one line for the user).
    """


def defaultStatePath(source: str, dest: str) -> str:
    """
    @return: the state file of copying C{source} to C{dest}, in the current
        directory.
    """
    digest = hashlib.sha256(f"{source}\0{dest}".encode()).hexdigest()[:12]
    return f"logsvc-copy-{digest}.json"


def readState(path: str) -> tuple[int, int, int]:
    """
    @return: C{(sourceId, destId, copied)} from the state file, zeros when
        there is none.
    """
    if not os.path.exists(path):
        return 0, 0, 0
    with open(path) as f:
        state = json.load(f)
    return int(state["source_id"]), int(state["dest_id"]), int(state["copied"])


def writeState(path: str, sourceId: int, destId: int, copied: int) -> None:
    """
    Replace the state file atomically (and durably: written, synced,
    renamed).
    """
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        json.dump({"source_id": sourceId, "dest_id": destId, "copied": copied}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


class Progress:
    """
    A one-line progress bar on C{out} (a terminal's standard error),
    redrawn at most ten times a second.
    """

    def __init__(self, out: IO[str], total: int, done: int = 0) -> None:
        self.out = out
        self.total = total
        self.started = time.monotonic()
        self.first = done
        self._drawn = 0.0

    def show(self, done: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._drawn < 0.1:
            return
        self._drawn = now
        share = done / self.total if self.total else 1.0
        width = 30
        bar = "#" * int(share * width) + "-" * (width - int(share * width))
        rate = (done - self.first) / max(now - self.started, 1e-6)
        self.out.write(f"\r[{bar}] {done:,}/{self.total:,} ({share:.0%}) {rate:,.0f} records/s")
        if final:
            self.out.write("\n")
        self.out.flush()


@inlineCallbacks
def copyStore(
    source: str,
    dest: str,
    *,
    reactor: Any,
    progress: IO[str],
    statePath: str | None = None,
    batch: int = BATCH,
) -> Generator[Deferred[Any], Any, int]:
    """
    Copy every record of C{source} into C{dest} (see the module docstring).

    @return: a Deferred firing with the number of records the destination
        holds from the source, or failing with L{CopyError} (a count that
        does not match included).
    """
    if statePath is None:
        statePath = defaultStatePath(source, dest)
    sourceStore = openStore(source, reactor=reactor)
    destStore = openStore(dest, reactor=reactor)
    sourceStore.startService()
    try:
        destStore.startService()
    except BaseException:
        yield sourceStore.stopService()
        raise
    try:
        resuming = os.path.exists(statePath)
        sourceId, destId, copied = readState(statePath)
        # The batch whose commit the state file missed, if any.
        unrecorded = yield destStore.afterId(EVERYTHING, destId, batch + 1)
        if unrecorded and not resuming:
            raise CopyError(f"{displayDatabase(dest)} is not empty; copy into an empty store")
        writeState(statePath, sourceId, destId, copied)
        if unrecorded:
            if len(unrecorded) > batch:
                raise CopyError(
                    f"{displayDatabase(dest)} holds records the copy did not write; copy into an empty store"
                )
            done = yield sourceStore.afterId(EVERYTHING, sourceId, len(unrecorded))
            if len(done) != len(unrecorded):
                raise CopyError("the source lost records since the interrupted copy; start again")
            sourceId, destId, copied = done[-1][0], unrecorded[-1][0], copied + len(unrecorded)
            writeState(statePath, sourceId, destId, copied)
        total = yield sourceStore.count()
        bar = Progress(progress, total, copied)
        bar.show(copied)
        while True:
            rows = yield sourceStore.afterId(EVERYTHING, sourceId, batch)
            if not rows:
                break
            first = yield destStore.append([Record(*row[1:]) for row in rows])
            sourceId, destId, copied = rows[-1][0], first + len(rows) - 1, copied + len(rows)
            writeState(statePath, sourceId, destId, copied)
            bar.show(copied)
        bar.show(copied, final=True)
        have = yield sourceStore.count()
        got = yield destStore.count()
        if got < have or copied != have:
            raise CopyError(
                f"count check failed: {displayDatabase(source)} holds {have:,} records,"
                f" {displayDatabase(dest)} {got:,}, {copied:,} copied"
            )
        os.remove(statePath)
        return copied
    finally:
        yield destStore.stopService()
        yield sourceStore.stopService()
