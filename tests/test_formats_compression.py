"""Tests for L{logsvc.formats.compression}: bounded inflating."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats.compression import _STEP, InflateError, _inflateSteps, inflate


def _outcome(decode: Callable[[bytes, str, int], bytes], data: bytes, kind: str, limit: int) -> tuple[str, object]:
    try:
        return "bytes", decode(data, kind, limit)
    except InflateError as e:
        return "error", (str(e), e.tooLarge)


@st.composite
def _payloads(draw: st.DrawFn) -> tuple[bytes, str]:
    plain = draw(st.binary(max_size=300) | st.just(b"a" * 5000))
    kind = draw(st.sampled_from(["zlib", "gzip", "raw"]))
    if kind == "zlib":
        data = zlib.compress(plain)
    elif kind == "gzip":
        data = gzip.compress(plain) * draw(st.integers(1, 2))
    else:
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        data = compressor.compress(plain) + compressor.flush()
    how = draw(st.sampled_from(["whole", "whole", "cut", "padded", "garbage", "flipped"]))
    if how == "cut":
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    elif how == "padded":
        data += draw(st.sampled_from([b"\x00", b"\x00\x00\x00", b"x"]))
    elif how == "garbage":
        data = draw(st.binary(max_size=40))
    elif how == "flipped" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    return data, kind


class InflateTests(SynchronousTestCase):
    def test_bomb(self) -> None:
        """A payload inflating past the limit is refused as too large."""
        error = self.assertRaises(InflateError, inflate, zlib.compress(b"\x00" * 100_000), "zlib", 1000)
        self.assertTrue(error.tooLarge)

    def test_largePayload(self) -> None:
        """A payload over one step is inflated whole, step by step."""
        plain = bytes(range(256)) * 2000
        data = zlib.compress(plain, 0)
        self.assertGreater(len(data), _STEP)
        self.assertEqual(inflate(data, "zlib", len(plain)), plain)

    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_payloads(), st.sampled_from([0, 10, 299, 300, 5000, 1 << 20]))
    @example((gzip.compress(b"m") + b"\x00", "gzip"), 100)
    @example((gzip.compress(b"m") * 2, "gzip"), 100)
    @example((zlib.compress(b"m") + b"x", "zlib"), 100)
    @example((zlib.compress(b"m" * 300), "zlib"), 299)
    def test_sameAsSteps(self, payload: tuple[bytes, str], limit: int) -> None:
        """A payload of one step (a datagram) inflated in one call gives what the step-by-step way gives, bytes or error."""
        data, kind = payload
        self.assertEqual(_outcome(inflate, data, kind, limit), _outcome(_inflateSteps, data, kind, limit))
