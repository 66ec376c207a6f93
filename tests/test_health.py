"""
Tests for L{logsvc.health}: component reports, the overall status, and the
failure metrics.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from logsvc.health import ComponentHealth, HealthRegistry
from logsvc.metrics import Metrics


class HealthRegistryTests(SynchronousTestCase):
    def test_degradedWhileAnyFails(self) -> None:
        """The status is degraded while one component fails, ok again once it succeeds."""
        registry = HealthRegistry()
        indexer = registry.add(ComponentHealth("search_indexer"))
        registry.add(ComponentHealth("retention"))
        self.assertEqual(registry.status, "ok")
        indexer.failed(OSError("disk full"))
        self.assertEqual(registry.status, "degraded")
        self.assertEqual(
            registry.report(),
            {
                "search_indexer": {"status": "degraded", "error": "disk full", "consecutive_failures": 1},
                "retention": {"status": "ok"},
            },
        )
        indexer.succeeded()
        self.assertEqual(registry.status, "ok")

    def test_metrics(self) -> None:
        """Failures are counted per component in /metrics, and the degraded gauge follows the state."""
        metrics = Metrics()
        registry = HealthRegistry()
        metrics.registry.register(registry)
        checkpointer = registry.add(ComponentHealth("wal_checkpointer"))
        checkpointer.failed("busy")
        checkpointer.failed("busy")
        text = metrics.render().decode()
        self.assertIn('logsvc_component_failures_total{component="wal_checkpointer"} 2.0', text)
        self.assertIn('logsvc_component_degraded{component="wal_checkpointer"} 1.0', text)
