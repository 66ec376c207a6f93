# -*- test-case-name: tests.test_pagesize -*-
"""
Pages bounded in bytes as well as records: a read (a page of C{GET /logs},
a tail's replay, an export page) holds at most about L{PAGE_BYTES} of
records, whatever their sizes, so memory stays bounded by the budget times
the reads in flight.  A record bigger than the budget is still returned,
alone.

The rule every store follows (L{takeRows}): read rows in order and stop
after C{limit + 1} rows, or after the first row that takes the rows' total
size past the budget.  The reader then tells where the page ends and whether
more follows from the rows alone (L{pageCut}).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

#: Bytes of records one page holds at most (unless one record alone is
#: bigger).
PAGE_BYTES = 8 * 1024 * 1024

#: Bytes counted per record beside its text: its id, times, level and the
#: JSON keys around them.
ROW_OVERHEAD = 128


def rowBytes(row: Sequence[Any]) -> int:
    """
    @param row: a stored row (id, ts, received, level, source, service,
        message, fields).
    @return: about the bytes the row takes rendered as JSON (its text
        columns' characters, plus L{ROW_OVERHEAD}); cheap, and the same
        figure for the same row everywhere.
    """
    return ROW_OVERHEAD + len(row[4]) + len(row[5]) + len(row[6]) + len(row[7] or "")


def takeRows(rows: Iterable[Sequence[Any]], limit: int | None, maxBytes: int = PAGE_BYTES) -> list[Any]:
    """
    Take rows from C{rows} (a cursor, read lazily) for one page: stop after
    C{limit + 1} rows, or after the first row that takes the total of
    L{rowBytes} past C{maxBytes}.

    @param limit: the page's records, or L{None} for no count limit.
    """
    taken: list[Any] = []
    total = 0
    most = None if limit is None else limit + 1
    for row in rows:
        taken.append(row)
        total += rowBytes(row)
        if total > maxBytes or (most is not None and len(taken) >= most):
            break
    return taken


def pageCut(rows: list[Any], limit: int | None, maxBytes: int = PAGE_BYTES) -> tuple[list[Any], bool]:
    """
    Where the page of rows taken by L{takeRows} ends.

    @return: the page's rows (at least one when C{rows} has any), and whether
        more may follow: the rows beyond C{limit}, or the row that took the
        total past C{maxBytes}, are not in the page; a lone row bigger than
        C{maxBytes} is, and more may follow it.
    """
    if limit is not None and len(rows) > limit:
        return rows[:limit], True
    if sum(rowBytes(row) for row in rows) > maxBytes:
        return (rows[:-1] or rows), True
    return rows, False
