"""
The bounded batcher between listeners and the store.

Listeners L{Pipeline.submit} lists of records; the pipeline gathers them into
batches (flushed on size or after a short delay), appends each batch to the
store, fires each submission's Deferred once its records are durable, and hands
committed records to subscribers (live tails).  Memory stays bounded: past
C{maxPending} undurable records, registered producers (TCP transports) are
paused until the queue drains to half of that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure

from logsvc.admission import FairAdmission
from logsvc.metrics import Metrics
from logsvc.record import Record
from logsvc.store.base import IStore
from logsvc.timebounds import TimeBounds

#: A subscriber is called with the id of the first committed record and the
#: records, in id order, on the reactor thread.
Subscriber = Callable[[int, list[Record]], None]


class Pipeline(Service):
    """
    Batches submissions into store appends; see the module docstring.

    @ivar pending: records submitted and not yet durable.
    @ivar admission: admits HTTP submissions under C{maxPending}, fairly
        between senders (L{FairAdmission}).
    @ivar delay: seconds a partial batch waits for more records; 0 flushes
        every submission at once.
    """

    log = Logger()

    def __init__(
        self,
        store: IStore,
        *,
        reactor: Any = None,
        metrics: Metrics | None = None,
        batchSize: int = 10_000,
        delay: float = 0.005,
        maxPending: int = 200_000,
        timeBounds: TimeBounds | None = None,
    ) -> None:
        """
        @param timeBounds: the event times believed (L{TimeBounds}); records
            outside them are retimed on submission.  By default: at most a
            day ahead of their receive time.
        """
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self._store = store
        self._reactor = reactor
        self.metrics = metrics if metrics is not None else Metrics()
        self.batchSize = batchSize
        self.delay = delay
        self.maxPending = maxPending
        self.timeBounds = timeBounds if timeBounds is not None else TimeBounds()
        self.pending = 0
        self.admission = FairAdmission(self, clock=reactor)
        self._batch: list[Record] = []
        self._waiters: list[tuple[Deferred[int], int]] = []
        self._timer: IDelayedCall | None = None
        self._producers: set[IPushProducer] = set()
        self._paused = False
        self._subscribers: list[Subscriber] = []
        self._drained: list[Deferred[None]] = []

    # Submitting

    @property
    def saturated(self) -> bool:
        """
        True while the queue is full: new HTTP submissions should be refused
        (503) rather than buffered.
        """
        return self.pending >= self.maxPending

    def submit(self, records: list[Record]) -> Deferred[int]:
        """
        Queue C{records} for the store.  They are committed together in one
        transaction, in list order; those with an unbelievable event time
        are retimed first (L{TimeBounds}).

        @return: a Deferred firing with the id of the first record once all are
            durable (ids are consecutive), or failing with
            L{logsvc.store.base.StoreError}.
        """
        d: Deferred[int] = Deferred()
        if not records:
            d.callback(0)
            return d
        records, retimed = self.timeBounds.apply(records)
        if retimed:
            self.metrics.retimed.inc(retimed)
        if self._batch and len(self._batch) + len(records) > self.batchSize:
            self.flush()
        self._waiters.append((d, len(self._batch)))
        self._batch.extend(records)
        self._addPending(len(records))
        if len(self._batch) >= self.batchSize or self.delay <= 0:
            self.flush()
        elif self._timer is None:
            self._timer = self._reactor.callLater(self.delay, self.flush)
        return d

    def flush(self) -> None:
        """
        Send the current batch to the store now.
        """
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        if not self._batch:
            return
        batch, waiters = self._batch, self._waiters
        self._batch, self._waiters = [], []
        self._store.append(batch).addCallbacks(
            self._committed, self._failed, (batch, waiters), None, (batch, waiters), None
        )

    def _committed(self, first: int, batch: list[Record], waiters: list[tuple[Deferred[int], int]]) -> None:
        self.metrics.batches.inc()
        self._addPending(-len(batch))
        for d, offset in waiters:
            d.callback(first + offset)
        for subscriber in list(self._subscribers):
            try:
                subscriber(first, batch)
            except Exception:
                self.log.failure("tail subscriber failed")

    def _failed(self, failure: Failure, batch: list[Record], waiters: list[tuple[Deferred[int], int]]) -> None:
        self._addPending(-len(batch))
        for d, _ in waiters:
            d.errback(failure)

    # Back-pressure

    def _addPending(self, n: int) -> None:
        self.pending += n
        self.metrics.pending.set(self.pending)
        if n > 0 and not self._paused and self.pending >= self.maxPending:
            self._paused = True
            self.metrics.paused.inc()
            for producer in list(self._producers):
                producer.pauseProducing()
        elif n < 0:
            if self._paused and self.pending <= self.maxPending // 2:
                self._paused = False
                for producer in list(self._producers):
                    producer.resumeProducing()
            if self.pending == 0:
                drained, self._drained = self._drained, []
                for d in drained:
                    d.callback(None)

    def registerProducer(self, producer: IPushProducer) -> None:
        """
        Pause C{producer} whenever the queue is full, resume it once drained.
        """
        self._producers.add(producer)
        if self._paused:
            producer.pauseProducing()

    def unregisterProducer(self, producer: IPushProducer) -> None:
        """
        Stop managing C{producer}.
        """
        self._producers.discard(producer)

    # Fan-out

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """
        Call C{subscriber} with every batch after it is committed.

        @return: a function that unsubscribes.
        """
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    # Lifetime

    def whenDrained(self) -> Deferred[None]:
        """
        Flush now.

        @return: a Deferred firing once nothing submitted is still pending.
        """
        self.flush()
        if self.pending == 0:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._drained.append(d)
        return d

    def stopService(self) -> Deferred[None]:
        """
        @return: a Deferred firing once every submission is durable or failed.
        """
        Service.stopService(self)
        return self.whenDrained()
