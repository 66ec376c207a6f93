"""
Tests for L{logsvc.trust}: the protections' metrics.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from logsvc.config import parseConfig
from logsvc.ingest.tcp import IngestFactory
from logsvc.pipeline import Pipeline
from logsvc.store.memory import MemoryStore
from logsvc.trust import Protection


class MetricsTests(SynchronousTestCase):
    def test_protectionMetrics(self) -> None:
        """/metrics carries the connection budget, refusals, idle drops, retention and disk figures."""
        directory = self.mktemp()
        os.makedirs(directory)
        clock = Clock()
        pipeline = Pipeline(MemoryStore(), reactor=clock)
        store = SimpleNamespace(dataPath=os.path.join(directory, "db.sqlite3"))
        config = parseConfig("--max-connections", "1", "--idle-timeout", "5")
        protection = Protection(config, pipeline, store, clock)
        guarded = protection.guardIngest(IngestFactory(pipeline))
        http = protection.guardHTTP(Factory.forProtocol(Protocol))
        self.assertIsNotNone(guarded.buildProtocol(None))
        self.assertIsNone(http.buildProtocol(None))
        text = pipeline.metrics.render().decode()
        self.assertIn("logsvc_connections_open 1.0", text)
        self.assertIn("logsvc_connections_max 1.0", text)
        self.assertIn("logsvc_connections_refused_total 1.0", text)
        for name in ("logsvc_connections_idle_dropped", "logsvc_http_refused", "logsvc_retention_deleted"):
            self.assertIn(name, text)
        self.assertIn("logsvc_disk_low 0.0", text)
