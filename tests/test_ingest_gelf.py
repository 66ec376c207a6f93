"""Tests for the GELF TCP listener (L{logsvc.ingest.tcp} with the GELF parser) over a StringTransport."""

from __future__ import annotations

import orjson
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from logsvc.formats.gelf import parseGelfFrames
from logsvc.ingest.tcp import IngestFactory
from logsvc.metrics import Metrics
from logsvc.pipeline import Pipeline
from logsvc.store.memory import MemoryStore


class GelfTCPTests(SynchronousTestCase):
    """
    NUL-delimited GELF frames become records; bad frames are counted.
    """

    def setUp(self) -> None:
        self.store = MemoryStore()
        self.metrics = Metrics()
        pipeline = Pipeline(self.store, reactor=Clock(), metrics=self.metrics, delay=0)
        self.protocol = IngestFactory(pipeline, transport="gelf", parser=parseGelfFrames, maxLineLength=1000).buildProtocol(
            IPv4Address("TCP", "127.0.0.1", 1)
        )
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.5", 4000))
        self.protocol.makeConnection(self.transport)

    def test_framesSplitAnywhere(self) -> None:
        """
        Frames split across reads at any byte are stored whole, in order.
        """
        data = b"".join(
            orjson.dumps({"version": "1.1", "host": "h", "short_message": f"m{i}", "level": 4}) + b"\x00"
            for i in range(3)
        )
        for i in range(0, len(data), 5):
            self.protocol.dataReceived(data[i : i + 5])
        self.assertEqual([(r[3], r[4], r[6]) for r in self.store.rows], [(4, "h", f"m{i}") for i in range(3)])

    def test_badFramesCounted(self) -> None:
        """
        A frame that is not JSON, one without a message and one over max-line
        are counted as rejections; the good frames around them are stored.
        """
        self.protocol.dataReceived(
            b'{"short_message": "a"}\x00not json\x00{"host": "x"}\x00'
            + b'{"short_message": "' + b"x" * 2000 + b'"}\x00{"short_message": "b"}\x00'
        )
        self.assertEqual([r[6] for r in self.store.rows], ["a", "b"])
        sample = self.metrics.registry.get_sample_value
        self.assertEqual(sample("logsvc_records_rejected_total", {"transport": "gelf", "reason": "invalid"}), 2.0)
        self.assertEqual(sample("logsvc_records_rejected_total", {"transport": "gelf", "reason": "too_long"}), 1.0)
        self.assertFalse(self.transport.disconnecting)
