"""
Tests for L{logsvc.pagesize}: where a page bounded in records and bytes
ends, and whether more follows.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from logsvc.pagesize import ROW_OVERHEAD, pageCut, rowBytes, takeRows


def row(n: int, size: int) -> tuple[object, ...]:
    return (n, 0, 0, 6, "", "", "x" * (size - ROW_OVERHEAD), None)


class PageSizeTests(SynchronousTestCase):
    def test_rowBytes(self) -> None:
        """A row's size is its text columns' length plus a fixed overhead."""
        self.assertEqual(rowBytes((1, 0, 0, 6, "host", "svc", "message", '{"a":1}')), ROW_OVERHEAD + 4 + 3 + 7 + 7)

    def test_cutByRecords(self) -> None:
        """With small rows, limit + 1 rows are taken and the page is the first limit."""
        rows = takeRows(iter([row(n, 200) for n in range(10)]), 3, 10_000)
        self.assertEqual(len(rows), 4)
        self.assertEqual(pageCut(rows, 3, 10_000), (rows[:3], True))

    def test_cutByBytes(self) -> None:
        """Taking stops after the row that passes the budget; the page ends before it, and more follows."""
        source = iter([row(n, 400) for n in range(10)])
        rows = takeRows(source, 100, 1000)
        self.assertEqual([r[0] for r in rows], [0, 1, 2])
        self.assertEqual(next(source)[0], 3)  # read lazily: nothing more was read
        page, more = pageCut(rows, 100, 1000)
        self.assertEqual(([r[0] for r in page], more), ([0, 1], True))

    def test_loneBigRow(self) -> None:
        """A row bigger than the budget is a page of its own."""
        rows = takeRows([row(0, 5000), row(1, 10)], 100, 1000)
        self.assertEqual(pageCut(rows, 100, 1000), (rows, True))
        self.assertEqual(len(rows), 1)

    def test_end(self) -> None:
        """Rows that fit both bounds are the whole rest: nothing follows."""
        rows = takeRows([row(0, 200), row(1, 200)], 5, 1000)
        self.assertEqual(pageCut(rows, 5, 1000), (rows, False))
