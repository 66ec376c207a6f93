"""
Inflating compressed payloads with a bound on what they produce: HTTP bodies
(C{Content-Encoding}) and GELF datagrams share it.  Pure: no Twisted.
"""

from __future__ import annotations

import zlib

__all__ = ["InflateError", "inflate", "sniffCompression"]

# Compressed bytes fed to zlib per step; each step's output is capped too, so
# a bomb stops after producing the limit + 1 bytes, never all of it.
_STEP = 64 * 1024


class InflateError(ValueError):
    """
    Compressed data that cannot be taken.

    @ivar tooLarge: whether it inflates past the limit (else it is corrupt or
        truncated).
    """

    def __init__(self, message: str, *, tooLarge: bool = False) -> None:
        super().__init__(message)
        self.tooLarge = tooLarge


def _decoder(kind: str) -> zlib._Decompress:
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == "zlib":
        return zlib.decompressobj(zlib.MAX_WBITS)
    return zlib.decompressobj(-zlib.MAX_WBITS)


def inflate(data: bytes, kind: str, limit: int) -> bytes:
    """
    Decode C{data} compressed as C{kind} (C{"gzip"}, C{"zlib"} or C{"raw"}
    deflate), producing at most C{limit} bytes.  Concatenated gzip members
    are all decoded.

    @raise InflateError: when the decoded data would exceed C{limit}
        (C{tooLarge}; at most C{limit} + 1 bytes were produced), or when
        C{data} is corrupt or truncated (the message names C{kind}).
    """
    if len(data) <= _STEP:
        # What fits one step (every datagram, most bodies) in one call: the
        # general way below costs a few microseconds more per payload, as
        # much as inflating a GELF datagram itself.  Anything but a whole
        # stream within the limit is decided there.
        decoder = _decoder(kind)
        try:
            produced = decoder.decompress(data, limit + 1)
        except zlib.error:
            pass
        else:
            if decoder.eof and not decoder.unused_data and len(produced) <= limit:
                return produced
    return _inflateSteps(data, kind, limit)


def _inflateSteps(data: bytes, kind: str, limit: int) -> bytes:
    """
    L{inflate}, the general way: step by step, each step's output capped.
    """
    out: list[bytes] = []
    total = 0
    decoder = _decoder(kind)
    offset = 0
    try:
        while True:
            if decoder.unconsumed_tail:
                chunk = decoder.unconsumed_tail
            elif offset < len(data):
                chunk = data[offset : offset + _STEP]
                offset += _STEP
            else:
                # Input exhausted: collect what zlib still holds, if anything.
                chunk = b""
            produced = decoder.decompress(chunk, limit + 1 - total)
            total += len(produced)
            if total > limit:
                raise InflateError(f"{kind} data inflates past {limit} bytes", tooLarge=True)
            out.append(produced)
            if decoder.eof:
                rest = decoder.unused_data + data[offset:]
                if kind == "gzip" and rest.strip(b"\x00"):
                    # Another gzip member follows.
                    decoder, data, offset = _decoder(kind), rest, 0
                    continue
                return b"".join(out)
            if not chunk and not produced:
                break
    except zlib.error as e:
        raise InflateError(f"invalid {kind}: {e}") from None
    raise InflateError(f"truncated {kind}")


def sniffCompression(data: bytes) -> str | None:
    """
    @return: C{"gzip"} or C{"zlib"} when C{data} starts with that format's
        magic bytes (as GELF senders compress without saying so), else L{None}.
    """
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    if len(data) >= 2 and data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0:
        return "zlib"
    return None
