# -*- test-case-name: tests.test_ingest_sink -*-
"""
The one way records enter logsvc from a listener.

Every listener (TCP lines, GELF, acknowledged TCP, UDP, Fluent forward, the
HTTP endpoints) holds an L{IngestSink} labelled with its transport, and does
three things through it: L{IngestSink.submit} parsed records (counted in
C{logsvc_records_accepted{transport}} once durable, or under
C{reason="store"} when the store fails), L{IngestSink.reject} what it could
not parse (counted in C{logsvc_records_rejected{transport,reason}} and logged,
at most a L{LogQuota} of lines), or L{IngestSink.refuse} what a sender is told
about anyway (an HTTP 400, an C{ERR} line: counted, not logged).
L{IngestSink.take} does parse, reject and submit in one call for listeners
whose frames come in batches.

Everything here runs on the reactor thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from logsvc.admission import peerName
from logsvc.formats import FrameParser, Rejection
from logsvc.pipeline import Pipeline
from logsvc.record import Record

__all__ = ["FrameParser", "IngestSink", "LogQuota", "Rejection", "peerName"]


class LogQuota:
    """
    How many rejections one sender may have logged: at most C{limit} log
    lines, and, with a C{clock} and C{period}, again C{limit} in each new
    period (for listeners without connections, such as UDP).  Every
    rejection is counted in the metrics whatever the quota says.
    """

    def __init__(self, limit: int = 10, *, clock: Any = None, period: float = 60.0) -> None:
        self.limit = limit
        self.used = 0
        self._clock = clock
        self._period = period
        self._started = clock.seconds() if clock is not None else 0.0

    def take(self) -> bool:
        """
        @return: whether one more rejection may be logged (and count it).
        """
        if self._clock is not None:
            now = self._clock.seconds()
            if now - self._started >= self._period:
                self._started = now
                self.used = 0
        if self.used >= self.limit:
            return False
        self.used += 1
        return True


class IngestSink:
    """
    One transport's way into the pipeline; see the module docstring.

    @ivar transport: the C{transport} label of this sink's metrics.
    @ivar pipeline: where records go.
    """

    log = Logger()

    def __init__(self, pipeline: Pipeline, transport: str) -> None:
        self.pipeline = pipeline
        self.transport = transport
        self.metrics = pipeline.metrics
        self._accepted = self.metrics.accepted.labels(transport)

    @property
    def saturated(self) -> bool:
        """
        True while the pipeline is full: refuse rather than buffer.
        """
        return self.pipeline.saturated

    def submit(self, records: list[Record]) -> Deferred[int]:
        """
        Hand C{records} to the pipeline, counted as accepted once durable.

        @return: the pipeline's Deferred: the first record's id once all are
            durable, or the store's failure (counted under C{reason="store"},
            then passed on).
        """
        count = len(records)
        counter = self._accepted

        def stored(first: int) -> int:
            counter.inc(count)
            return first

        def failed(failure: Failure) -> Failure:
            self.refuse("store", count)
            return failure

        return self.pipeline.submit(records).addCallbacks(stored, failed)

    def submitAdmitted(self, sender: str, records: list[Record]) -> Deferred[int]:
        """
        Admit C{records} as C{sender}'s (L{logsvc.admission.FairAdmission}:
        C{--max-pending} and a fair share of a full queue) and L{submit} them.

        @param sender: who sends them (L{logsvc.admission.senderFor}).
        @raise logsvc.admission.Refused: when they are not admitted; nothing
            is queued.
        """
        admission = self.pipeline.admission
        count = len(records)
        admission.admit(sender, count)
        return admission.track(sender, count, self.submit(records))

    def refuse(self, reason: str, count: int = 1) -> None:
        """
        Count C{count} records or frames refused for C{reason}, without
        logging (the sender was told, or the failure is logged elsewhere).
        """
        self.metrics.rejected.labels(self.transport, reason).inc(count)

    def reject(
        self, rejections: Sequence[Rejection], *, peer: str, quota: LogQuota, reason: str = "invalid"
    ) -> None:
        """
        Count C{rejections} under C{reason} and log each while C{quota}
        allows: the sender is never told, so the log is where an operator
        finds out why its records are missing.
        """
        self.refuse(reason, len(rejections))
        for frame, why in rejections:
            if not quota.take():
                break
            self.log.warn(
                "rejected {transport} frame from {peer}: {why}: {frame!r}",
                transport=self.transport,
                peer=peer,
                why=why,
                frame=frame[:200],
            )

    def take(
        self, frames: Sequence[bytes], parse: FrameParser, *, peer: str, received: int, quota: LogQuota
    ) -> tuple[int, Deferred[int] | None]:
        """
        Parse C{frames}, reject what does not parse, submit the rest.

        @return: how many records were submitted, and the submission's
            Deferred (see L{submit}), L{None} when nothing was submitted.
        """
        records, rejected = parse(frames, peer, received)
        if rejected:
            self.reject(rejected, peer=peer, quota=quota)
        if not records:
            return 0, None
        return len(records), self.submit(records)
