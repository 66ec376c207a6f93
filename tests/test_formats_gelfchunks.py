"""
Tests for L{logsvc.formats.gelfchunks}: reassembling chunked GELF.
"""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats.gelfchunks import CHUNK_MAGIC, MAX_CHUNKS, ChunkAssembler, ChunkError


def chunked(message: bytes, size: int, messageId: bytes = b"12345678") -> list[bytes]:
    """Split C{message} into GELF chunks of C{size} bytes of payload."""
    pieces = [message[i : i + size] for i in range(0, len(message), size)] or [b""]
    return [CHUNK_MAGIC + messageId + bytes([n, len(pieces)]) + piece for n, piece in enumerate(pieces)]


class AssemblerTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.dropped: list[tuple[str, int]] = []
        self.assembler = ChunkAssembler(onDrop=lambda reason, count: self.dropped.append((reason, count)))

    def feed(self, chunks: list[bytes], peer: str = "p", now: float = 0.0) -> list[bytes]:
        out = []
        for chunk in chunks:
            whole = self.assembler.add(chunk, peer, now)
            if whole is not None:
                out.append(whole)
        return out


class AssembleTests(AssemblerTestCase):
    def test_inOrder(self) -> None:
        """Chunks in order make the message once the last arrives, and nothing stays held."""
        chunks = chunked(b"x" * 1000, 300)
        self.assertEqual([self.assembler.add(c, "p", 0) for c in chunks[:-1]], [None] * 3)
        self.assertEqual(self.assembler.add(chunks[-1], "p", 0), b"x" * 1000)
        self.assertEqual((len(self.assembler), self.assembler.pendingBytes), (0, 0))

    def test_reorderedAndDuplicated(self) -> None:
        """Chunks in any order, some twice, make the message exactly once."""
        message = bytes(range(256)) * 4
        chunks = chunked(message, 100)
        shuffled = chunks[::-1] + chunks[:3]
        self.assertEqual(self.feed(shuffled), [message])

    def test_singleChunk(self) -> None:
        """A message of one chunk is whole at once and never held."""
        self.assertEqual(self.feed(chunked(b"hello", 100)), [b"hello"])
        self.assertEqual(len(self.assembler), 0)

    def test_maxChunks(self) -> None:
        """A message of 128 chunks, the most allowed, is assembled."""
        message = os.urandom(128 * 10)
        self.assertEqual(self.feed(chunked(message, 10)), [message])

    def test_peersKeptApart(self) -> None:
        """The same message id from two senders makes two messages, each from its own chunks."""
        a, b = chunked(b"a" * 20, 10), chunked(b"b" * 20, 10)
        self.assertEqual(self.feed([a[0]], "one") + self.feed([b[0]], "two"), [])
        self.assertEqual(self.feed([b[1]], "two") + self.feed([a[1]], "one"), [b"b" * 20, b"a" * 20])

    @settings(max_examples=50, deadline=None)
    @given(st.binary(min_size=1, max_size=2000), st.integers(16, 400), st.randoms())
    def test_anyOrder(self, message: bytes, size: int, random: object) -> None:
        """Whatever the chunk size and arrival order, the message comes out whole, once."""
        assembler = ChunkAssembler()
        chunks = chunked(message, size)
        random.shuffle(chunks)  # type: ignore[attr-defined]
        out = [w for w in (assembler.add(c, "p", 0) for c in chunks) if w is not None]
        self.assertEqual(out, [message])


class HostileTests(AssemblerTestCase):
    def test_countZero(self) -> None:
        """A chunk count of 0 is refused with a reason."""
        error = self.assertRaises(ChunkError, self.assembler.add, CHUNK_MAGIC + b"12345678\x00\x00x", "p", 0)
        self.assertIn("count 0", str(error))

    def test_countOverLimit(self) -> None:
        """A chunk count of 200 (over 128) is refused with a reason, and nothing is held."""
        error = self.assertRaises(ChunkError, self.assembler.add, CHUNK_MAGIC + b"12345678\x00\xc8x", "p", 0)
        self.assertIn(f"outside 1..{MAX_CHUNKS}", str(error))
        self.assertEqual(len(self.assembler), 0)

    def test_sequenceNotBelowCount(self) -> None:
        """A sequence number at or past the count is refused."""
        self.assertRaises(ChunkError, self.assembler.add, CHUNK_MAGIC + b"12345678\x03\x03x", "p", 0)

    def test_truncatedHeader(self) -> None:
        """A chunk shorter than its 12-byte header is refused."""
        self.assertRaises(ChunkError, self.assembler.add, CHUNK_MAGIC + b"1234", "p", 0)

    def test_countChanges(self) -> None:
        """A chunk whose count differs from its message's earlier chunks is refused; the message goes on."""
        chunks = chunked(b"x" * 30, 10)
        self.feed(chunks[:1])
        self.assertRaises(ChunkError, self.assembler.add, CHUNK_MAGIC + b"12345678\x01\x05y", "p", 0)
        self.assertEqual(self.feed(chunks[1:]), [b"x" * 30])


class BoundsTests(AssemblerTestCase):
    def test_expiredAfterTimeout(self) -> None:
        """An incomplete message is dropped 5 s after its first chunk, and counted; not before."""
        chunks = chunked(b"x" * 30, 10)
        self.feed(chunks[:2], now=100.0)
        self.assertEqual(self.assembler.expire(104.9), 0)
        self.assertEqual(self.assembler.expire(105.0), 1)
        self.assertEqual(self.dropped, [("chunks_expired", 1)])
        self.assertEqual((len(self.assembler), self.assembler.pendingBytes), (0, 0))
        # Its last chunk now starts a new incomplete message, not a whole one.
        self.assertEqual(self.feed(chunks[2:], now=106.0), [])

    def test_newMessageExpiresOld(self) -> None:
        """A new message's first chunk also expires old incomplete ones (no timer needed under load)."""
        self.feed(chunked(b"x" * 30, 10)[:1], now=0.0)
        self.feed(chunked(b"y" * 30, 10, b"87654321")[:1], now=6.0)
        self.assertEqual((self.dropped, len(self.assembler)), ([("chunks_expired", 1)], 1))

    def test_memoryBounded(self) -> None:
        """Past maxPendingBytes the oldest incomplete messages are dropped and counted; held bytes stay bounded."""
        assembler = ChunkAssembler(
            maxPendingBytes=1000, onDrop=lambda reason, count: self.dropped.append((reason, count))
        )
        for n in range(50):
            chunk = chunked(b"z" * 1000, 100, b"%08d" % n)[0]
            assembler.add(chunk, "p", 0)
            self.assertLessEqual(assembler.pendingBytes, 1000)
        self.assertEqual(len(assembler), 10)
        self.assertEqual(sum(count for reason, count in self.dropped if reason == "chunks_evicted"), 40)
