"""
Pure parsers from wire bytes to L{logsvc.record.Record}: no Twisted imports.

Each parser takes the bytes of one message, the peer address and the receive
time (microseconds) and returns a L{Record} or raises
L{logsvc.record.RecordError}.  A L{FrameParser} does the same for a batch of
frames, returning the records and the L{Rejection}s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from logsvc.record import Record

#: A frame that could not become a record: the frame and the reason.
Rejection = tuple[bytes, str]

#: A parser of a batch of frames: (frames, peer, received) -> (records,
#: rejections).
FrameParser = Callable[[Sequence[bytes], str, int], tuple[list[Record], list[Rejection]]]
