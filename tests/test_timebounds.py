"""
Tests for L{logsvc.timebounds}: records stamped too far ahead, or before the
retention window, are kept with their receive time, the same over HTTP and
TCP (both pass the pipeline).
"""

from __future__ import annotations

import orjson
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from logsvc.ingest.tcp import IngestFactory
from logsvc.pipeline import Pipeline
from logsvc.record import Record, parseTimestamp
from logsvc.store.memory import MemoryStore
from logsvc.testing import MemoryLogService
from logsvc.timebounds import TimeBounds

DAY = 86_400_000_000
NOW = 1_767_323_045_000_000


def record(ts: int, fields: str | None = None) -> Record:
    return Record(ts, NOW, 6, "h", "s", "m", fields)


class TimeBoundsTests(SynchronousTestCase):
    def test_farFuture(self) -> None:
        """A record more than the margin ahead gets the receive time as ts and its own time in fields.original_ts."""
        bounds = TimeBounds(maxFuture=86_400)
        records = [record(NOW + DAY // 2), record(NOW + 2 * DAY, '{"a": 1}')]
        kept, retimed = bounds.apply(records)
        self.assertEqual(retimed, 1)
        self.assertEqual(kept[0], records[0])
        self.assertEqual(kept[1].ts, NOW)
        self.assertEqual(orjson.loads(kept[1].fields or ""), {"a": 1, "original_ts": "2026-01-04T03:04:05.000000Z"})

    def test_olderThanRetention(self) -> None:
        """With a retention window, a record older than it is retimed too; without one it is kept as it is."""
        old = record(NOW - 40 * DAY)
        self.assertEqual(TimeBounds(maxAge=30 * 86_400).apply([old])[0][0].ts, NOW)
        self.assertEqual(TimeBounds().apply([old]), ([old], 0))

    def test_unrepresentable(self) -> None:
        """A time past year 9999 is kept in fields as its number of microseconds."""
        kept, _ = TimeBounds().apply([record(2**62)])
        self.assertEqual(orjson.loads(kept[0].fields or ""), {"original_ts": str(2**62)})

    def test_sameList(self) -> None:
        """When every time is believable the list is passed on untouched (no copy)."""
        records = [record(NOW)]
        self.assertIs(TimeBounds().apply(records)[0], records)


class EveryTransportTests(SynchronousTestCase):
    def test_http(self) -> None:
        """A record stamped 9999-12-31 posted over HTTP is stored with its receive time, counted in the metrics."""
        service = MemoryLogService()
        d = service.treq.post(
            "http://logsvc.test/logs", b'{"message": "m", "ts": "9999-12-31T00:00:00Z"}', headers={b"content-type": [b"application/json"]}
        )
        self.assertEqual(self.successResultOf(d).code, 201)
        row = service.store.rows[0]
        self.assertEqual(row[1], row[2])
        self.assertEqual(orjson.loads(row[7])["original_ts"], "9999-12-31T00:00:00.000000Z")
        self.assertEqual(service.metrics.registry.get_sample_value("logsvc_records_retimed_total"), 1.0)

    def test_tcp(self) -> None:
        """The same record sent as a TCP line is stored the same way."""
        store = MemoryStore()
        factory = IngestFactory(Pipeline(store, reactor=Clock(), delay=0))
        peer = IPv4Address("TCP", "192.0.2.1", 5000)
        protocol = factory.buildProtocol(peer)
        protocol.makeConnection(StringTransport(peerAddress=peer))
        protocol.dataReceived(b'{"message": "m", "ts": "9999-12-31T00:00:00Z"}\n')
        row = store.rows[0]
        self.assertEqual(row[1], row[2])
        self.assertEqual(parseTimestamp(orjson.loads(row[7])["original_ts"]), parseTimestamp("9999-12-31T00:00:00Z"))
