# -*- test-case-name: tests.test_ingest_tcp,tests.test_ingest_tcp_syslog -*-
"""
Framing of TCP ingest streams: L{LineFramer} splits bytes into records at LF
(or NUL), and takes RFC 6587 octet-counted syslog frames, told apart per
record.

It only frames: whatever one read brought goes on as one batch
(L{LineFramer.linesReceived}); a record over the limit goes to
L{LineFramer.lineLengthExceeded}, and framing goes on with the next one.
Besides LF lines it takes both RFC 6587 syslog framings on the same
connection: NUL also ends a record (Python's SysLogHandler ends each message
with NUL and no LF), and octet counting (C{LEN SP <PRI>...}, the message may
hold LFs).
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

DEFAULT_MAX_LINE = 64 * 1024

# An RFC 6587 octet-counting header where a record starts: a length without
# leading zero and a space, then a syslog PRI.  Demanding the PRI is what keeps
# a plain line that begins with a number ("2026 ...", "42 retries") a line.
# (Two patterns: one with a literal first byte searches a buffer ~25 times
# faster than an alternation with "^".)
_OCTET_AT = re.compile(rb"([1-9]\d{0,8}) (?=<\d{1,3}>)")
_OCTET_AFTER_LF = re.compile(rb"\n[1-9]\d{0,8} <\d{1,3}>")
# What may follow a complete octet-counted frame: the next frame's length, a
# non-transparent syslog message, a JSON line or a line ending.  Anything else
# means the length lied, and the bytes are framed as lines instead.
_FRAME_FOLLOWERS = frozenset(b"0123456789<{\r\n")


class LineFramer(Protocol):
    """
    Split a byte stream into records at LF (or NUL); a CR before the LF is
    left on the line for the parser.  Whole batches go to L{linesReceived}, one
    call per read.  A line longer than L{maxLineLength} goes to
    L{lineLengthExceeded} (its bytes are discarded up to the next LF); framing
    then resumes.  A final line without LF is delivered when the connection
    closes.

    A connection on which a NUL arrives is NUL-framed from the read that holds
    it on: only NUL ends a record and LFs inside one are kept (Python's
    SysLogHandler ends each message, tracebacks included, with NUL and no LF,
    and writes each in one send).  What came before that read was framed by
    LF; from then on, read boundaries do not change the framing.

    Octet-counted syslog frames (C{LEN SP MSG}, MSG starting with C{<PRI>})
    are taken wherever a record starts; a frame whose LEN is over
    L{maxLineLength} is skipped (LEN bytes) and reported to
    L{lineLengthExceeded}.  A frame not followed by something that can start
    a record had a lying LEN and is framed as lines, so nothing is lost.  Only
    reads that hold a C{<} pay for more than a split.
    """

    maxLineLength = DEFAULT_MAX_LINE
    transport: Any
    _buffer = b""
    _discarding = False
    _discardedLength = 0
    #: Bytes the buffer must hold before the octet frame at its start is whole.
    _needed = 0
    #: Bytes still to skip of an octet frame over the limit.
    _skipping = 0
    #: Set once a NUL arrived: from then on only NUL ends a record.
    _nulFramed = False

    def dataReceived(self, data: bytes) -> None:
        if self._skipping:
            # The rest of an oversize octet frame: bytes, whatever they hold.
            if len(data) <= self._skipping:
                self._skipping -= len(data)
                return
            data = data[self._skipping :]
            self._skipping = 0
        if self._nulFramed or (not self._needed and b"\x00" in data):
            self._frameNul(data)
            return
        if self._discarding:
            data = self._discardUntil(data, b"\n")
            if self._discarding:
                return
        buffer = self._buffer + data if self._buffer else data
        if self._needed:
            if len(buffer) < self._needed:
                self._buffer = buffer
                return
            self._needed = 0
            self._frameMixed(buffer)
            return
        if b"<" in buffer and (
            _OCTET_AT.match(buffer) is not None or _OCTET_AFTER_LF.search(buffer) is not None
        ):
            self._frameMixed(buffer)
            return
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        limit = self.maxLineLength
        if len(buffer) > limit:
            kept = []
            for line in lines:
                if len(line) > limit + 1 or (len(line) == limit + 1 and line[-1:] != b"\r"):
                    self.lineLengthExceeded(len(line))
                else:
                    kept.append(line)
            lines = kept
            if self._restTooLong():
                self._startDiscarding()
        if lines:
            self.linesReceived(lines)

    def _discardUntil(self, data: bytes, terminator: bytes) -> bytes:
        """
        Drop the rest of an oversize record: everything up to C{terminator}.
        Once it is found, report the record's length and stop discarding.

        @return: what follows the terminator (nothing while still discarding).
        """
        end = data.find(terminator)
        if end < 0:
            self._discardedLength += len(data)
            return b""
        self._discarding = False
        self.lineLengthExceeded(self._discardedLength + end)
        return data[end + 1 :]

    def _restTooLong(self) -> bool:
        """
        @return: whether the incomplete rest is already over the limit.  A CR
            may end a rest of limit + 1 bytes: its LF may come in the next read.
        """
        rest = self._buffer
        limit = self.maxLineLength
        return len(rest) > limit + 1 or (len(rest) == limit + 1 and rest[-1:] != b"\r")

    def _startDiscarding(self) -> None:
        self._discarding = True
        self._discardedLength = len(self._buffer)
        self._buffer = b""

    def _frameMixed(self, buffer: bytes) -> None:
        """
        Frame C{buffer} record by record, taking octet-counted frames where
        they start and lines elsewhere; keep the incomplete rest.
        """
        lines: list[bytes] = []
        limit = self.maxLineLength
        size = len(buffer)
        position = 0
        while position < size:
            header = _OCTET_AT.match(buffer, position)
            if header is not None:
                length = int(header.group(1))
                start = header.end()
                end = start + length
                if length > limit:
                    self.lineLengthExceeded(length)
                    if end <= size:
                        position = end
                        continue
                    self._skipping = end - size
                    position = size
                    break
                if end > size:
                    self._needed = end - position
                    break
                if end == size or buffer[end] in _FRAME_FOLLOWERS:
                    lines.append(buffer[start:end])
                    position = end
                    continue
            newline = buffer.find(b"\n", position)
            if newline < 0:
                break
            line = buffer[position:newline]
            if len(line) > limit + 1 or (len(line) == limit + 1 and line[-1:] != b"\r"):
                self.lineLengthExceeded(len(line))
            else:
                lines.append(line)
            position = newline + 1
        self._buffer = buffer[position:]
        if not self._needed and self._restTooLong():
            self._startDiscarding()
        if lines:
            self.linesReceived(lines)

    def _frameNul(self, data: bytes) -> None:
        """
        Frame a connection whose sender ends records with NUL (Python's
        SysLogHandler, GELF): LFs inside a record (a traceback) stay in it, and
        LFs around it are dropped.
        """
        # From now on (an octet frame in progress is finished first, above).
        self._nulFramed = True
        if self._discarding:
            data = self._discardUntil(data, b"\x00")
            if self._discarding:
                return
        buffer = self._buffer + data if self._buffer else data
        records = buffer.split(b"\x00")
        self._buffer = records.pop()
        limit = self.maxLineLength
        kept = []
        for record in records:
            record = record.strip(b"\n")
            if len(record) > limit:
                self.lineLengthExceeded(len(record))
            elif record:
                kept.append(record)
        # LFs around a record are dropped, so they do not count against the limit.
        if len(self._buffer) > limit and len(self._buffer.strip(b"\n")) > limit:
            self._startDiscarding()
        if kept:
            self.linesReceived(kept)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._discarding:
            self._discarding = False
            self.lineLengthExceeded(self._discardedLength)
        elif self._buffer:
            last, self._buffer = self._buffer, b""
            if self._needed:
                # The sender closed inside an octet frame: its LEN lied.
                # Keep every byte, as lines.
                self._needed = 0
                lines = [line for line in last.split(b"\n") if line]
                if lines:
                    self.linesReceived(lines)
            elif self._nulFramed:
                last = last.strip(b"\n")
                if last:
                    self.linesReceived([last])
            else:
                self.linesReceived([last])

    def linesReceived(self, lines: list[bytes]) -> None:
        """
        Called with the lines (without LF) completed by one read.  Override.
        """
        raise NotImplementedError()

    def lineLengthExceeded(self, length: int) -> None:
        """
        Called once for each line over L{maxLineLength} bytes, after it was
        discarded.  The default does nothing; the connection goes on.
        """
