"""
Tests for L{logsvc.ingest.sink}: the one way records enter from a listener.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats.detect import parseLines
from logsvc.ingest.sink import IngestSink, LogQuota
from logsvc.pipeline import Pipeline
from logsvc.record import Record
from logsvc.store.base import StoreError
from tests.fakes import HeldStore
from tests.shippers import ShipperTestCase


def sample(sink: IngestSink, name: str, **labels: str) -> float:
    value = sink.metrics.registry.get_sample_value(name, {"transport": sink.transport, **labels})
    return value or 0.0


class SinkTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = HeldStore()
        self.pipeline = Pipeline(self.store, reactor=Clock(), delay=0)
        self.sink = IngestSink(self.pipeline, "udp")
        self.events: list[dict[str, Any]] = []
        self.sink.log = Logger(observer=self.events.append)  # type: ignore[arg-type]

    def test_acceptedOnceDurable(self) -> None:
        """Submitted records are counted as accepted only once the store commits them."""
        records, _ = parseLines([b"a", b"b"], "peer", 1)
        d = self.sink.submit(records)
        self.assertEqual(sample(self.sink, "logsvc_records_accepted_total"), 0)
        self.store.release()
        self.assertEqual(self.successResultOf(d), 1)
        self.assertEqual(sample(self.sink, "logsvc_records_accepted_total"), 2)

    def test_storeFailureCounted(self) -> None:
        """A failed append is counted under reason "store" and the failure passed on."""
        records, _ = parseLines([b"a", b"b", b"c"], "peer", 1)
        d = self.sink.submit(records)
        self.store.failAll()
        self.failureResultOf(d, StoreError)
        self.assertEqual(sample(self.sink, "logsvc_records_rejected_total", reason="store"), 3)
        self.assertEqual(sample(self.sink, "logsvc_records_accepted_total"), 0)

    def test_rejectLogsWithinQuota(self) -> None:
        """Every rejection is counted; only as many as the quota allows are logged, naming the peer."""
        quota = LogQuota(2)
        self.sink.reject([(b"x", "bad")] * 5, peer="192.0.2.1", quota=quota, reason="too_long")
        self.assertEqual(sample(self.sink, "logsvc_records_rejected_total", reason="too_long"), 5)
        self.assertEqual(len(self.events), 2)
        self.assertEqual((self.events[0]["peer"], self.events[0]["transport"]), ("192.0.2.1", "udp"))

    def test_quotaRefills(self) -> None:
        """A quota with a clock allows its limit again in each new period."""
        clock = Clock()
        quota = LogQuota(1, clock=clock, period=60)
        self.assertEqual([quota.take(), quota.take()], [True, False])
        clock.advance(59)
        self.assertFalse(quota.take())
        clock.advance(1)
        self.assertEqual([quota.take(), quota.take()], [True, False])

    def test_refuseNotLogged(self) -> None:
        """A refusal the sender is told about is counted and not logged."""
        self.sink.refuse("unauthorized")
        self.assertEqual(sample(self.sink, "logsvc_records_rejected_total", reason="unauthorized"), 1)
        self.assertEqual(self.events, [])

    def test_take(self) -> None:
        """take parses, rejects what does not parse and submits the rest in one append."""

        def parse(frames: Sequence[bytes], peer: str, received: int) -> tuple[list[Record], list[tuple[bytes, str]]]:
            return parseLines([f for f in frames if f != b"bad"], peer, received)[0], [(b"bad", "why")]

        count, d = self.sink.take([b"a", b"bad", b"b"], parse, peer="p", received=1, quota=LogQuota())
        self.assertEqual(count, 2)
        self.assertIsNotNone(d)
        self.store.release()
        self.assertEqual([row[6] for row in self.store.rows], ["a", "b"])
        self.assertEqual(sample(self.sink, "logsvc_records_rejected_total", reason="invalid"), 1)

    def test_takeNothing(self) -> None:
        """take with nothing to store submits nothing."""
        count, d = self.sink.take([b""], parseLines, peer="p", received=1, quota=LogQuota())
        self.assertEqual((count, d, self.store.held), (0, None, []))


class HTTPRefusalTests(ShipperTestCase):
    def rejected(self, reason: str, transport: str = "http") -> float:
        value = self.service.pipeline.metrics.registry.get_sample_value(
            "logsvc_records_rejected_total", {"transport": transport, "reason": reason}
        )
        return value or 0.0

    def test_refusedBodiesCounted(self) -> None:
        """Bodies HTTP ingest refuses (400, 415) are counted by reason in the same metric as TCP's."""
        self.assertEqual(self.request("POST", "/logs", b'{"ts": "yesterday"}')[0], 400)
        self.assertEqual(self.request("POST", "/logs", b"x", {"content-type": "image/png"})[0], 415)
        self.assertEqual(self.request("POST", "/gelf", b'{"host": "h"}')[0], 400)
        self.assertEqual((self.rejected("invalid"), self.rejected("unsupported")), (1, 1))
        self.assertEqual(self.rejected("invalid", "gelf"), 1)
