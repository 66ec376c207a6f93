"""
Tests for L{logsvc.pipeline.Pipeline}: batching, acknowledgements, failure,
back-pressure, fan-out and draining.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from logsvc.pipeline import Pipeline
from logsvc.query import Query
from logsvc.record import Record, plainRecord
from logsvc.store.base import StoreError
from logsvc.store.memory import MemoryStore
from logsvc.store.sqlite.store import SqliteStore


def records(*messages: str) -> list[Record]:
    return [plainRecord(m, "peer", 1_000_000) for m in messages]


def numbered(n: int, prefix: str = "r") -> list[Record]:
    return records(*(f"{prefix}{i}" for i in range(n)))


class ControlledStore(MemoryStore):
    """
    A store whose appends return Deferreds the test fires (nothing is stored).

    @ivar appends: C{(records, deferred)} for each append, in order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.appends: list[tuple[list[Record], Deferred[int]]] = []

    def append(self, records: list[Record]) -> Deferred[int]:
        d: Deferred[int] = Deferred()
        self.appends.append((list(records), d))
        return d


@implementer(IPushProducer)
class FakeProducer:
    """A push producer that counts its pauses and resumes."""

    def __init__(self) -> None:
        self.pauses = 0
        self.resumes = 0

    @property
    def paused(self) -> bool:
        return self.pauses > self.resumes

    def pauseProducing(self) -> None:
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.resumes += 1

    def stopProducing(self) -> None:
        pass


def result(d: Deferred[Any]) -> list[Any]:
    """Collect what C{d} fires with (a value, or a Failure) into a list."""
    found: list[Any] = []
    d.addBoth(found.append)
    return found


class BatchingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = MemoryStore()
        self.pipeline = Pipeline(self.store, reactor=self.clock, batchSize=3, delay=1.0)

    def test_flushOnSize(self) -> None:
        """A batch reaching batchSize goes to the store at once, without waiting for the delay."""
        self.pipeline.submit(records("a", "b"))
        self.assertEqual(self.store.rows, [])
        self.pipeline.submit(records("c"))
        self.assertEqual([row[6] for row in self.store.rows], ["a", "b", "c"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_flushAfterDelay(self) -> None:
        """A partial batch goes to the store once the delay has passed, not before."""
        self.pipeline.submit(records("a"))
        self.clock.advance(0.5)
        self.pipeline.submit(records("b"))
        self.clock.advance(0.49)
        self.assertEqual(self.store.rows, [])
        self.clock.advance(0.01)
        self.assertEqual([row[6] for row in self.store.rows], ["a", "b"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_overflowFlushesCurrentBatchFirst(self) -> None:
        """A submission that would overflow the batch sends the current batch first, then waits."""
        store = ControlledStore()
        pipeline = Pipeline(store, reactor=self.clock, batchSize=3, delay=1.0)
        pipeline.submit(records("a", "b"))
        pipeline.submit(records("c", "d"))
        self.assertEqual([[r.message for r in batch] for batch, _ in store.appends], [["a", "b"]])
        self.clock.advance(1.0)
        self.assertEqual(
            [[r.message for r in batch] for batch, _ in store.appends], [["a", "b"], ["c", "d"]]
        )

    def test_largeSubmissionOneBatch(self) -> None:
        """A submission larger than batchSize is appended whole, in one transaction."""
        store = ControlledStore()
        pipeline = Pipeline(store, reactor=self.clock, batchSize=3, delay=1.0)
        pipeline.submit(numbered(7))
        self.assertEqual([len(batch) for batch, _ in store.appends], [7])

    def test_zeroDelay(self) -> None:
        """With delay 0 every submission is appended at once and no timer is left."""
        pipeline = Pipeline(self.store, reactor=self.clock, batchSize=100, delay=0)
        pipeline.submit(records("a"))
        pipeline.submit(records("b"))
        self.assertEqual(len(self.store.rows), 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_flushNow(self) -> None:
        """flush() sends a partial batch at once and cancels the timer."""
        self.pipeline.submit(records("a"))
        self.pipeline.flush()
        self.assertEqual(len(self.store.rows), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_emptySubmission(self) -> None:
        """An empty submission fires at once and appends nothing."""
        self.assertEqual(result(self.pipeline.submit([])), [0])
        self.pipeline.flush()
        self.assertEqual(self.store.rows, [])

    def test_orderKept(self) -> None:
        """Records are stored in submission order across batches."""
        for i in range(10):
            self.pipeline.submit(records(f"m{i}"))
        self.pipeline.flush()
        self.assertEqual([row[6] for row in self.store.rows], [f"m{i}" for i in range(10)])


class AcknowledgementTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = ControlledStore()
        self.pipeline = Pipeline(self.store, reactor=self.clock, batchSize=100, delay=1.0)

    def test_firesAfterCommitOnly(self) -> None:
        """A submission's Deferred fires with its first id after the append commits, not before."""
        first = result(self.pipeline.submit(numbered(2, "a")))
        second = result(self.pipeline.submit(numbered(3, "b")))
        third = result(self.pipeline.submit(numbered(1, "c")))
        self.pipeline.flush()
        self.assertEqual(len(self.store.appends), 1)
        self.assertEqual((first, second, third), ([], [], []))
        self.store.appends[0][1].callback(10)
        self.assertEqual((first, second, third), ([10], [12], [15]))

    def test_separateBatches(self) -> None:
        """Each batch's submissions fire when their own append commits."""
        first = result(self.pipeline.submit(numbered(2)))
        self.pipeline.flush()
        second = result(self.pipeline.submit(numbered(2)))
        self.pipeline.flush()
        self.store.appends[1][1].callback(3)
        self.assertEqual((first, second), ([], [3]))
        self.store.appends[0][1].callback(1)
        self.assertEqual(first, [1])

    def test_failureAllOrNothing(self) -> None:
        """A failed append fails every submission of its batch with the store's error."""
        outcomes = [result(self.pipeline.submit(numbered(2))) for _ in range(3)]
        self.pipeline.flush()
        self.store.appends[0][1].errback(Failure(StoreError("disk full")))
        for outcome in outcomes:
            self.assertEqual(len(outcome), 1)
            self.assertIsInstance(outcome[0], Failure)
            self.assertTrue(outcome[0].check(StoreError))
            self.assertEqual(outcome[0].getErrorMessage(), "disk full")
        self.assertEqual(self.pipeline.pending, 0)

    def test_failureLeavesOtherBatches(self) -> None:
        """A failed batch does not fail the next one, which still commits."""
        failed = result(self.pipeline.submit(numbered(1)))
        self.pipeline.flush()
        ok = result(self.pipeline.submit(numbered(1)))
        self.pipeline.flush()
        self.store.appends[0][1].errback(Failure(StoreError("locked")))
        self.store.appends[1][1].callback(7)
        self.assertIsInstance(failed[0], Failure)
        self.assertEqual(ok, [7])

    def test_pendingCounts(self) -> None:
        """pending counts submitted records until they are durable, and the metric follows."""
        self.pipeline.submit(numbered(4))
        self.assertEqual(self.pipeline.pending, 4)
        self.pipeline.flush()
        self.assertEqual(self.pipeline.pending, 4)
        self.store.appends[0][1].callback(1)
        self.assertEqual(self.pipeline.pending, 0)
        registry = self.pipeline.metrics.registry
        self.assertEqual(registry.get_sample_value("logsvc_pipeline_pending_records"), 0)
        self.assertEqual(registry.get_sample_value("logsvc_store_batches_total"), 1)


class BackPressureTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = ControlledStore()
        self.pipeline = Pipeline(
            self.store, reactor=self.clock, batchSize=2, delay=0, maxPending=10
        )
        self.producers = [FakeProducer(), FakeProducer()]
        for producer in self.producers:
            self.pipeline.registerProducer(producer)

    def test_pauseAtMaxPending(self) -> None:
        """Producers are paused once pending reaches maxPending, and not before."""
        for _ in range(4):
            self.pipeline.submit(numbered(2))
        self.assertEqual(self.pipeline.pending, 8)
        self.assertFalse(any(p.paused for p in self.producers))
        self.assertFalse(self.pipeline.saturated)
        self.pipeline.submit(numbered(2))
        self.assertEqual([p.pauses for p in self.producers], [1, 1])
        self.assertTrue(self.pipeline.saturated)
        registry = self.pipeline.metrics.registry
        self.assertEqual(registry.get_sample_value("logsvc_pipeline_pauses_total"), 1)

    def test_pauseOnce(self) -> None:
        """More submissions while paused do not pause the producers again."""
        for _ in range(8):
            self.pipeline.submit(numbered(2))
        self.assertEqual([p.pauses for p in self.producers], [1, 1])

    def test_resumeAtHalf(self) -> None:
        """Paused producers resume once pending drains to half of maxPending, not before."""
        for size in (2, 2, 2, 2, 1, 1, 2):
            self.pipeline.submit(numbered(size))
        self.assertEqual(self.pipeline.pending, 12)
        for i in range(3):
            self.store.appends[i][1].callback(1 + 2 * i)
        self.assertEqual(self.pipeline.pending, 6)
        self.assertEqual([p.resumes for p in self.producers], [0, 0])
        self.store.appends[4][1].callback(9)
        self.assertEqual(self.pipeline.pending, 5)
        self.assertEqual([p.resumes for p in self.producers], [1, 1])
        self.store.appends[3][1].callback(7)
        self.assertEqual([p.resumes for p in self.producers], [1, 1])

    def test_failuresAlsoRelease(self) -> None:
        """Failed appends free their pending records, so producers resume after failures too."""
        for _ in range(5):
            self.pipeline.submit(numbered(2)).addErrback(lambda f: None)
        for _, d in self.store.appends:
            d.errback(Failure(StoreError("x")))
        self.assertEqual(self.pipeline.pending, 0)
        self.assertEqual([p.paused for p in self.producers], [False, False])

    def test_registerWhilePaused(self) -> None:
        """A producer registered while the queue is full is paused at once and resumed with the rest."""
        for _ in range(5):
            self.pipeline.submit(numbered(2))
        late = FakeProducer()
        self.pipeline.registerProducer(late)
        self.assertTrue(late.paused)
        for _, d in self.store.appends:
            d.callback(1)
        self.assertFalse(late.paused)

    def test_unregistered(self) -> None:
        """An unregistered producer is no longer paused or resumed."""
        gone = self.producers[0]
        self.pipeline.unregisterProducer(gone)
        for _ in range(5):
            self.pipeline.submit(numbered(2))
        self.assertEqual((gone.pauses, self.producers[1].pauses), (0, 1))


class SubscriberTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = ControlledStore()
        self.pipeline = Pipeline(self.store, reactor=Clock(), delay=0)
        self.seen: list[tuple[int, list[str]]] = []

    def subscriber(self, first: int, batch: list[Record]) -> None:
        self.seen.append((first, [r.message for r in batch]))

    def test_committedBatches(self) -> None:
        """Subscribers get each batch with its first id after it commits, not before."""
        self.pipeline.subscribe(self.subscriber)
        self.pipeline.submit(records("a", "b"))
        self.assertEqual(self.seen, [])
        self.store.appends[0][1].callback(5)
        self.assertEqual(self.seen, [(5, ["a", "b"])])

    def test_failedBatchNotDelivered(self) -> None:
        """A batch that failed to commit is not delivered to subscribers."""
        self.pipeline.subscribe(self.subscriber)
        self.pipeline.submit(records("a")).addErrback(lambda f: None)
        self.store.appends[0][1].errback(Failure(StoreError("x")))
        self.assertEqual(self.seen, [])

    def test_unsubscribe(self) -> None:
        """After unsubscribing, a subscriber gets nothing more; unsubscribing twice is harmless."""
        unsubscribe = self.pipeline.subscribe(self.subscriber)
        unsubscribe()
        unsubscribe()
        self.pipeline.submit(records("a"))
        self.store.appends[0][1].callback(1)
        self.assertEqual(self.seen, [])

    def test_failingSubscriber(self) -> None:
        """A subscriber that raises is logged and keeps neither others nor acknowledgements from running."""

        def broken(first: int, batch: list[Record]) -> None:
            raise ZeroDivisionError()

        self.pipeline.subscribe(broken)
        self.pipeline.subscribe(self.subscriber)
        acked = result(self.pipeline.submit(records("a")))
        self.store.appends[0][1].callback(1)
        self.assertEqual(acked, [1])
        self.assertEqual(self.seen, [(1, ["a"])])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class DrainTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = ControlledStore()
        self.pipeline = Pipeline(self.store, reactor=self.clock, batchSize=100, delay=5.0)

    def test_idle(self) -> None:
        """With nothing pending, whenDrained fires at once."""
        self.assertEqual(result(self.pipeline.whenDrained()), [None])

    def test_waitsForCommit(self) -> None:
        """whenDrained flushes the partial batch at once and fires only after it commits."""
        acked = result(self.pipeline.submit(records("a")))
        drained = result(self.pipeline.whenDrained())
        self.assertEqual(len(self.store.appends), 1)
        self.assertEqual(drained, [])
        self.store.appends[0][1].callback(1)
        self.assertEqual((acked, drained), ([1], [None]))

    def test_waitsForAllBatches(self) -> None:
        """whenDrained waits for every batch in flight, not only the last."""
        self.pipeline.submit(records("a"))
        self.pipeline.flush()
        self.pipeline.submit(records("b"))
        drained = result(self.pipeline.whenDrained())
        self.store.appends[1][1].callback(2)
        self.assertEqual(drained, [])
        self.store.appends[0][1].callback(1)
        self.assertEqual(drained, [None])

    def test_waitsThroughFailure(self) -> None:
        """A failed batch counts as finished for whenDrained."""
        self.pipeline.submit(records("a")).addErrback(lambda f: None)
        drained = result(self.pipeline.whenDrained())
        self.store.appends[0][1].errback(Failure(StoreError("x")))
        self.assertEqual(drained, [None])

    def test_stopService(self) -> None:
        """stopService flushes, stops the service and fires once everything is durable."""
        self.pipeline.startService()
        self.pipeline.submit(records("a", "b"))
        stopped = result(self.pipeline.stopService())
        self.assertFalse(self.pipeline.running)
        self.assertEqual(stopped, [])
        self.store.appends[0][1].callback(1)
        self.assertEqual(stopped, [None])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class SqlitePipelineTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def test_idsMatchStoredRows(self) -> Generator[Deferred[Any], Any, None]:
        """Over a real SQLite store, each submission fires with the id its first record was stored under."""
        store = SqliteStore(self.mktemp())
        store.startService()
        self.addCleanup(store.stopService)
        pipeline = Pipeline(store, batchSize=50, delay=0.001)
        submissions = [[f"{n}.{i}" for i in range(n % 7 + 1)] for n in range(60)]
        firsts = yield gatherResults(
            [pipeline.submit(records(*messages)) for messages in submissions]
        )
        yield pipeline.whenDrained()
        rows = yield store.query(Query(limit=None, order="asc"))
        byId = {row[0]: row[6] for row in rows}
        self.assertEqual(len(byId), sum(len(m) for m in submissions))
        for first, messages in zip(firsts, submissions, strict=True):
            self.assertEqual([byId[first + i] for i in range(len(messages))], messages)
