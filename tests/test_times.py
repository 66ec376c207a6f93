"""
Tests for L{logsvc.times}: the one datetime conversion and L{Memo}.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from logsvc.times import EPOCH, Memo, datetimeToMicros, microsToDatetime


class ConversionTests(SynchronousTestCase):
    def test_exact(self) -> None:
        """Microseconds are exact, offsets are honoured, a naive datetime is UTC."""
        self.assertEqual(datetimeToMicros(EPOCH), 0)
        self.assertEqual(datetimeToMicros(datetime(2026, 11, 22, 16, 55, 33, 123456, tzinfo=UTC)), 1795366533123456)
        plusTwo = datetime(2026, 11, 22, 18, 55, 33, 123456, tzinfo=timezone(timedelta(hours=2)))
        self.assertEqual(datetimeToMicros(plusTwo), 1795366533123456)
        self.assertEqual(datetimeToMicros(datetime(1970, 1, 1, 0, 0, 1)), 1_000_000)

    @given(st.integers(min_value=-(10**15), max_value=253402300799_999999))
    def test_roundTrip(self, micros: int) -> None:
        """microsToDatetime and datetimeToMicros are inverses, before the epoch too."""
        self.assertEqual(datetimeToMicros(microsToDatetime(micros)), micros)


class MemoTests(SynchronousTestCase):
    def test_computedOnce(self) -> None:
        """A key is computed once; a failing computation keeps nothing."""
        calls: list[int] = []

        def compute(key: int) -> int:
            calls.append(key)
            if key < 0:
                raise ValueError(key)
            return key * 2

        memo: Memo[int, int] = Memo(compute)
        self.assertEqual((memo[3], memo[3]), (6, 6))
        self.assertEqual(calls, [3])
        self.assertRaises(ValueError, memo.__getitem__, -1)
        self.assertNotIn(-1, memo)

    def test_bounded(self) -> None:
        """Past 4,096 keys the memo starts over rather than grow."""
        memo: Memo[int, int] = Memo(lambda key: key)
        for key in range(10_000):
            memo[key]
        self.assertLessEqual(len(memo), 4097)

    def test_limit(self) -> None:
        """A memo made with a smaller limit starts over past that many keys."""
        memo: Memo[int, int] = Memo(lambda key: key, limit=10)
        for key in range(100):
            self.assertEqual(memo[key], key)
        self.assertLessEqual(len(memo), 11)
