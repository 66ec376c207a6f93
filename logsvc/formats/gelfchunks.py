# -*- test-case-name: tests.test_formats_gelfchunks -*-
"""
Chunked GELF over UDP: a message too large for one datagram is sent as up to
128 chunks, each a datagram of

  - the magic bytes C{0x1e 0x0f},
  - a message id (8 bytes, the same in every chunk of a message),
  - the sequence number (1 byte, from 0) and count (1 byte, 1..128),
  - a piece of the (usually compressed) message.

Chunks may arrive in any order; a message is complete once every sequence
number arrived.  L{ChunkAssembler} holds the pieces of incomplete messages,
bounded in time (dropped C{timeout} seconds after their first chunk) and in
memory (past C{maxPendingBytes}, the oldest incomplete messages are dropped).
Every dropped message is reported to its C{onDrop} callback, with a reason.

Pure: no Twisted; the caller passes the time in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CHUNK_MAGIC", "ChunkAssembler", "ChunkError", "MAX_CHUNKS"]

CHUNK_MAGIC = b"\x1e\x0f"
#: The most chunks a message may have (the GELF spec's limit).
MAX_CHUNKS = 128
_HEADER = 12


class ChunkError(ValueError):
    """
    A datagram that starts with the chunk magic but is no valid chunk.
    """


@dataclass
class _Pending:
    """
    The chunks of one incomplete message.
    """

    started: float
    count: int
    pieces: list[bytes | None]
    received: int = 0
    size: int = 0


class ChunkAssembler:
    """
    Reassembles chunked GELF messages; see the module docstring.

    Messages are keyed by sender and message id, so one sender's chunks never
    complete (or evict by collision) another's message.

    @ivar pendingBytes: bytes held in incomplete messages.
    """

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        maxPendingBytes: int = 32 * 1024 * 1024,
        onDrop: Callable[[str, int], None] = lambda reason, count: None,
    ) -> None:
        """
        @param timeout: seconds after its first chunk an incomplete message
            is dropped (reason C{"chunks_expired"}).
        @param maxPendingBytes: most bytes of pieces held; the oldest
            incomplete messages are dropped to stay below it (reason
            C{"chunks_evicted"}).
        @param onDrop: called with a reason and a count of messages dropped.
        """
        self.timeout = timeout
        self.maxPendingBytes = maxPendingBytes
        self.onDrop = onDrop
        self.pendingBytes = 0
        # Insertion order is first-chunk order: the oldest message is first.
        self._pending: dict[tuple[str, bytes], _Pending] = {}

    def __len__(self) -> int:
        """
        @return: the number of incomplete messages held.
        """
        return len(self._pending)

    def add(self, chunk: bytes, peer: str, now: float) -> bytes | None:
        """
        Take one chunk datagram (starting with L{CHUNK_MAGIC}).

        @param now: the current time, in seconds.
        @return: the whole message once this chunk completes it, else L{None}.
        @raise ChunkError: for a chunk shorter than its header, a count of 0
            or over L{MAX_CHUNKS}, a sequence number not below the count, or a
            count that differs from the message's earlier chunks.
        """
        if len(chunk) < _HEADER or chunk[:2] != CHUNK_MAGIC:
            raise ChunkError(f"GELF chunk of {len(chunk)} bytes is shorter than its 12-byte header")
        messageId = chunk[2:10]
        sequence = chunk[10]
        count = chunk[11]
        if not 1 <= count <= MAX_CHUNKS:
            raise ChunkError(f"GELF chunk count {count} is outside 1..{MAX_CHUNKS}")
        if sequence >= count:
            raise ChunkError(f"GELF chunk number {sequence} is not below its count {count}")
        piece = chunk[_HEADER:]
        if count == 1:
            return piece
        key = (peer, messageId)
        pending = self._pending.get(key)
        if pending is None:
            if self._pending:
                # Expire here too, so a burst without pauses stays bounded in time.
                self.expire(now)
            pending = self._pending[key] = _Pending(now, count, [None] * count)
        elif pending.count != count:
            raise ChunkError(
                f"GELF chunk count {count} differs from {pending.count} in the message's earlier chunks"
            )
        if pending.pieces[sequence] is not None:
            # A duplicate (UDP may deliver twice): the first copy stands.
            return None
        pending.pieces[sequence] = piece
        pending.received += 1
        pending.size += len(piece)
        self.pendingBytes += len(piece)
        if pending.received == count:
            del self._pending[key]
            self.pendingBytes -= pending.size
            return b"".join(pending.pieces)  # type: ignore[arg-type]
        if self.pendingBytes > self.maxPendingBytes:
            self._evict(key)
        return None

    def _evict(self, keep: tuple[str, bytes]) -> None:
        """
        Drop the oldest incomplete messages until the held bytes fit, the
        one just added last of all.
        """
        evicted = 0
        for key in list(self._pending):
            if self.pendingBytes <= self.maxPendingBytes:
                break
            if key == keep and len(self._pending) > 1:
                continue
            self.pendingBytes -= self._pending.pop(key).size
            evicted += 1
        if evicted:
            self.onDrop("chunks_evicted", evicted)

    def expire(self, now: float) -> int:
        """
        Drop the incomplete messages whose first chunk is C{timeout} seconds
        old or older.

        @return: how many were dropped (also reported to C{onDrop}).
        """
        expired = 0
        deadline = now - self.timeout
        pending = self._pending
        while pending:
            key = next(iter(pending))
            message = pending[key]
            if message.started > deadline:
                break
            del pending[key]
            self.pendingBytes -= message.size
            expired += 1
        if expired:
            self.onDrop("chunks_expired", expired)
        return expired
