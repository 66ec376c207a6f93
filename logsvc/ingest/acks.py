# -*- test-case-name: tests.test_ingest_acks -*-
"""
Acknowledgements of TCP ingest (C{--tcp-acked}).

The server writes C{OK <n>\\n} where C{n} counts the connection's lines now
settled: every line up to the C{n}th is either durable in the store or was
rejected for good (invalid, oversize; counted in C{logsvc_records_rejected},
since resending it would only be rejected again).  Blank lines count too, so a
sender maps C{n} to its own lines without parsing anything.  Acks are
cumulative and coalesced: at most one write per store commit, never one per
record.

A client that does not read its acks makes the transport's write buffer fill;
the transport then pauses L{LineAcks} as its producer, and the connection
stops being read (and stops writing acks; the newest count is written once it
drains).  So such a client costs at most the transport's buffer (64 KiB), and
the idle timeout drops it once nothing moves.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from logsvc.limits import PauseGate


@implementer(IPushProducer)
class LineAcks:
    """
    The cumulative acknowledgements of one connection, written to its
    transport; the transport's producer, so a full write buffer pauses
    reading (through the connection's L{PauseGate}, reason C{"acks"}).

    Lines are L{expect}ed in the order they were framed and settle in any
    order; C{OK <n>} only ever covers a prefix that is wholly settled.

    @ivar settled: lines settled so far (the newest C{n}).
    @ivar acked: the C{n} last written.
    @ivar stopping: set once a stop began: no more lines are expected.
    """

    def __init__(self, transport: Any, gate: PauseGate, clock: Any, close: Callable[[], None]) -> None:
        """
        @param close: closes the connection (after L{unregister}).
        """
        self.transport = transport
        self.gate = gate
        self.clock = clock
        self._close = close
        self.settled = 0
        self.acked = 0
        self.stopping = False
        self._outstanding: deque[list[Any]] = deque()
        self._writable = True
        self._ackCall: Any = None
        self._registered = True
        self._lost = False
        transport.registerProducer(self, True)

    def expect(self, count: int) -> list[Any]:
        """
        Note C{count} lines whose fate is not known yet.

        @return: the entry to pass to L{settle} once they are.
        """
        entry = [count, False]
        self._outstanding.append(entry)
        return entry

    def settle(self, entry: list[Any]) -> None:
        """
        The lines of C{entry} are durable (or refused for good).
        """
        entry[1] = True
        self._advance()

    def settleNow(self, count: int) -> None:
        """
        Note C{count} lines already settled (rejected ones), after those
        expected so far.
        """
        self._outstanding.append([count, True])
        self._advance()

    def failed(self) -> None:
        """
        The store failed: nothing outstanding is durable, so never ack past
        it; ack what was settled and close, so the sender resends everything
        unacknowledged on its next connection.
        """
        self._outstanding.clear()
        self.stopping = True
        self._finishStop()

    def stop(self) -> None:
        """
        For a graceful stop: read no more, ack what is settled once the store
        has it, then close.  Unread bytes are unacknowledged, so the sender
        resends them to the next server.
        """
        if self.stopping:
            return
        self.stopping = True
        self.gate.pause("stopping")
        if not self._outstanding:
            self._finishStop()

    def unregister(self) -> None:
        """
        Stop being the transport's producer.  Needed before closing: a
        transport whose producer it paused resumes the producer, rather than
        closing, once its buffer drains.
        """
        if self._registered:
            self._registered = False
            self.transport.unregisterProducer()

    def lost(self) -> None:
        """
        The connection is gone: write nothing more.
        """
        self._lost = True
        self._cancelAck()

    def _advance(self) -> None:
        outstanding = self._outstanding
        while outstanding and outstanding[0][1]:
            self.settled += outstanding.popleft()[0]
        if self.settled > self.acked and self._ackCall is None:
            self._ackCall = self.clock.callLater(0, self._writeAck)
        if self.stopping and not outstanding:
            self._finishStop()

    def _writeAck(self) -> None:
        self._ackCall = None
        if not self._writable or self.settled <= self.acked or self._lost:
            return
        self.acked = self.settled
        self.transport.write(b"OK %d\n" % self.acked)

    def _cancelAck(self) -> None:
        if self._ackCall is not None and self._ackCall.active():
            self._ackCall.cancel()
        self._ackCall = None

    def _finishStop(self) -> None:
        self._cancelAck()
        self._writable = True
        self._writeAck()
        self._close()

    # IPushProducer: the transport tells us when its write buffer is full.

    def pauseProducing(self) -> None:
        self._writable = False
        self.gate.pause("acks")

    def resumeProducing(self) -> None:
        self._writable = True
        self.gate.resume("acks")
        self._writeAck()

    def stopProducing(self) -> None:
        self._writable = False
