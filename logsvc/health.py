# -*- test-case-name: tests.test_health -*-
"""
The health of the service's helpers (the search indexer, the WAL
checkpointer, retention): each one reports whether it is failing, and
C{GET /health} and C{GET /metrics} read the reports.

Who owns what: each helper owns its L{ComponentHealth} and reports into it
from whichever thread it runs on (the indexer's and checkpointer's own
threads, retention's reactor thread); L{HealthRegistry} only reads them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

#: A component working as it should.
OK = "ok"
#: A component failing now (it retries by itself); the service still runs.
DEGRADED = "degraded"


class ComponentHealth:
    """
    Whether one helper is failing now, and how often it failed.

    Thread-safe: L{failed} and L{succeeded} may be called from any thread.

    @ivar name: the component's name in C{/health} and the metrics label.
    @ivar failures: failures since start (never reset).
    @ivar consecutive: failures since the last success.
    @ivar lastError: the last failure's message, or L{None} once it succeeded.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.failures = 0
        self.consecutive = 0
        self.lastError: str | None = None
        self._lock = threading.Lock()

    @property
    def failing(self) -> bool:
        """
        True from a failure until the next success.
        """
        return self.consecutive > 0

    def failed(self, error: object) -> None:
        """
        One attempt failed with C{error} (its C{str} is reported).
        """
        with self._lock:
            self.failures += 1
            self.consecutive += 1
            self.lastError = str(error)

    def succeeded(self) -> None:
        """
        One attempt worked: the component is healthy again.
        """
        if self.consecutive:
            with self._lock:
                self.consecutive = 0
                self.lastError = None

    def report(self) -> dict[str, Any]:
        """
        @return: C{{"status": "ok"}}, or C{"degraded"} with the error and the
            failures in a row, as C{/health} shows it.
        """
        with self._lock:
            if not self.consecutive:
                return {"status": OK}
            return {"status": DEGRADED, "error": self.lastError, "consecutive_failures": self.consecutive}


class HealthRegistry:
    """
    The components C{/health} reports, by name.
    """

    def __init__(self) -> None:
        self._components: dict[str, ComponentHealth] = {}

    def add(self, component: ComponentHealth) -> ComponentHealth:
        """
        Report C{component} from now on (replacing one of the same name).

        @return: C{component}.
        """
        self._components[component.name] = component
        return component

    def __iter__(self) -> Iterator[ComponentHealth]:
        return iter(list(self._components.values()))

    @property
    def status(self) -> str:
        """
        L{DEGRADED} while any component fails, else L{OK}.
        """
        return DEGRADED if any(c.failing for c in self) else OK

    def report(self) -> dict[str, dict[str, Any]]:
        """
        @return: every component's L{ComponentHealth.report}, by name.
        """
        return {c.name: c.report() for c in self}

    def collect(self) -> Any:
        """
        The Prometheus collector protocol: failures by component, and
        whether each fails now.
        """
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        failures = CounterMetricFamily(
            "logsvc_component_failures", "Failed attempts of a helper (indexer, checkpointer, retention).", labels=["component"]
        )
        failing = GaugeMetricFamily(
            "logsvc_component_degraded", "1 while a helper is failing (it retries by itself).", labels=["component"]
        )
        for c in self:
            failures.add_metric([c.name], c.failures)
            failing.add_metric([c.name], int(c.failing))
        yield failures
        yield failing

    def describe(self) -> list[Any]:
        return []
