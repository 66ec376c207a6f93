"""
Tests for L{logsvc.units}: sizes, durations and intervals.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from logsvc.units import formatInterval, formatSize, parseDuration, parseInterval, parseSize


class ParseSizeTests(SynchronousTestCase):
    def test_units(self) -> None:
        """Sizes take no unit, binary units (k, KiB, M, ...) and decimal units (kB, MB, ...)."""
        cases = {
            "100": 100,
            "100b": 100,
            "1k": 1024,
            "64KiB": 65536,
            "64 kib": 65536,
            "10kb": 10_000,
            "1.5MiB": 1_572_864,
            "2M": 2 * 1024**2,
            "2MB": 2_000_000,
            "1g": 1024**3,
            "3GB": 3_000_000_000,
            "1TiB": 1024**4,
            "1tb": 1000**4,
            " 7 ": 7,
            "0": 0,
        }
        for text, expected in cases.items():
            self.assertEqual(parseSize(text), expected, text)

    def test_bad(self) -> None:
        """Anything else is a ValueError showing an accepted form."""
        for text in ("", "k", "abc", "5 parsecs", "-1", "-1k", "1e400", "nan", "inf", "1..2k"):
            with self.assertRaises(ValueError) as caught:
                parseSize(text)
            self.assertIn("e.g. 65536, 64KiB", str(caught.exception))

    @given(st.integers(min_value=0, max_value=2**50))
    def test_formatRoundTrip(self, size: int) -> None:
        """formatSize writes what parseSize reads back to the same number of bytes."""
        self.assertEqual(parseSize(formatSize(size)), size)

    def test_format(self) -> None:
        """formatSize picks the largest binary unit that divides the size."""
        self.assertEqual(
            [formatSize(n) for n in (0, 1000, 65536, 10 * 1024**2, 256 * 1024**2, 3 * 1024**4)],
            ["0", "1000", "64KiB", "10MiB", "256MiB", "3TiB"],
        )


class ParseDurationTests(SynchronousTestCase):
    def test_units(self) -> None:
        """Durations take us/ms/s/m/h/d/w units or plain seconds (or another default unit)."""
        self.assertEqual(parseDuration("30d"), 30 * 86400)
        self.assertEqual(parseDuration("12h"), 12 * 3600)
        self.assertEqual(parseDuration("90"), 90)
        self.assertEqual(parseDuration("1.5m"), 90)
        self.assertEqual(parseDuration("2w"), 14 * 86400)
        self.assertEqual(parseDuration("250ms"), 0.25)
        self.assertEqual(parseDuration("0"), 0)
        self.assertEqual(parseDuration("15", defaultUnit="m"), 900)

    def test_bad(self) -> None:
        """Nonsense, negative and unknown units are a ValueError showing an accepted form."""
        for bad in ("", "d", "3y", "-1d", "1e9999d", "soon", "1 2s"):
            with self.assertRaises(ValueError) as caught:
                parseDuration(bad)
            self.assertIn("e.g. 90s", str(caught.exception))


class ParseIntervalTests(SynchronousTestCase):
    def test_units(self) -> None:
        """Intervals are a whole number and a unit, in microseconds."""
        self.assertEqual(
            [parseInterval(t) for t in ("10s", "1m", "1H", "1d", "1w")],
            [10**7, 6 * 10**7, 3600 * 10**6, 86400 * 10**6, 7 * 86400 * 10**6],
        )

    def test_bad(self) -> None:
        """A fraction, no unit, zero or a sub-second unit is refused."""
        for bad in ("1.5h", "10", "0s", "-1m", "5ms", "h", "1.0h"):
            self.assertRaises(ValueError, parseInterval, bad)

    def test_format(self) -> None:
        """formatInterval uses the largest unit that divides the width."""
        self.assertEqual(formatInterval(90 * 10**6), "90s")
        self.assertEqual(formatInterval(7200 * 10**6), "2h")
        self.assertEqual(formatInterval(1_500_000), "1.5s")
