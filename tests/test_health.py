"""
Tests for L{logsvc.health}: component reports, the overall status, and the
failure metrics.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from logsvc.health import DOWN, ComponentHealth, HealthRegistry
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
                "search_indexer": {"state": "degraded", "reason": "disk full", "consecutive_failures": 1},
                "retention": {"state": "ok", "reason": None},
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

    def test_downWins(self) -> None:
        """One component down makes the status down, whatever the others say."""
        registry = HealthRegistry()
        store = registry.add(ComponentHealth("store", whenFailing=DOWN))
        indexer = registry.add(ComponentHealth("search_indexer"))
        indexer.failed("busy")
        store.failed("connection refused")
        self.assertEqual(registry.status, "down")
        self.assertEqual(
            registry.report()["store"], {"state": "down", "reason": "connection refused", "consecutive_failures": 1}
        )
        store.succeeded()
        self.assertEqual(registry.status, "degraded")

    def test_set(self) -> None:
        """A state set outright is reported with its reason until set again; ok drops the reason."""
        registry = HealthRegistry()
        tcp = registry.add(ComponentHealth("tcp"))
        tcp.set("down", "not started yet")
        self.assertEqual((registry.status, registry.report()["tcp"]), ("down", {"state": "down", "reason": "not started yet"}))
        tcp.set("ok", "ignored")
        self.assertEqual(registry.report()["tcp"], {"state": "ok", "reason": None})
        self.assertRaises(ValueError, tcp.set, "fine")

    def test_failingOverSet(self) -> None:
        """Failures in a row show over a better state set outright, not over a worse one."""
        component = ComponentHealth("retention")
        component.set("degraded", "slow")
        component.failed("locked")
        self.assertEqual(component.report()["reason"], "locked")
        component = ComponentHealth("retention")
        component.set("down", "stopped")
        component.failed("locked")
        self.assertEqual(component.report(), {"state": "down", "reason": "stopped"})
