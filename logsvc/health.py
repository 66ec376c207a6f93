# -*- test-case-name: tests.test_health -*-
"""
The health of the service's parts, as C{GET /health} and C{GET /metrics}
report it.

The schema of C{GET /health} (owned here; extend it by registering
components, never by adding top-level keys)::

    {"status": "ok" | "degraded" | "down",
     "components": {"store": {"state": "ok", "reason": null},
                    "tcp": {"state": "ok", "reason": null},
                    "search_indexer": {"state": "degraded", "reason": "disk full",
                                       "consecutive_failures": 3}, ...}}

C{status} is C{down} when any component is down, else C{degraded} when any
is not ok, else C{ok}.  The answer is HTTP 200 for ok and degraded and 503
for down, so a load balancer takes a node whose store is down out of
rotation but keeps one whose search index lags.

Adding a component:

    1. make a L{ComponentHealth} (its name is the key in C{components}; a
       listener is named after its option, C{"tcp"}, C{"udp"}; a helper
       thread after what it does, C{"search_indexer"});
    2. give it to the registry (C{registry.add(component)}; the store's
       and helpers' components are collected by
       L{logsvc.service.makeService}; listeners are added by
       L{logsvc.service.LogService} when it starts them);
    3. report: L{ComponentHealth.failed} and L{ComponentHealth.succeeded}
       for something that retries (failing means C{whenFailing}:
       C{degraded} for helpers, C{down} for the store), or
       L{ComponentHealth.set} for a state known outright.

Who owns what: each part owns its L{ComponentHealth} and reports into it
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
#: A component the service cannot do without is not working: the node
#: should be out of rotation (C{/health} answers 503).
DOWN = "down"

#: Severity order of the states.
STATES = (OK, DEGRADED, DOWN)


class ComponentHealth:
    """
    The state of one part of the service, and how often it failed.

    Thread-safe: every method may be called from any thread.

    @ivar name: the component's name in C{/health} and the metrics label.
    @ivar whenFailing: the state reported from a failure until the next
        success (L{DEGRADED} or L{DOWN}).
    @ivar failures: failures since start (never reset).
    @ivar consecutive: failures since the last success.
    @ivar lastError: the last failure's message, or L{None} once it succeeded.
    """

    def __init__(self, name: str, *, whenFailing: str = DEGRADED) -> None:
        self.name = name
        self.whenFailing = whenFailing
        self.failures = 0
        self.consecutive = 0
        self.lastError: str | None = None
        self._state = OK
        self._reason: str | None = None
        self._lock = threading.Lock()

    @property
    def failing(self) -> bool:
        """
        True from a failure until the next success.
        """
        return self.consecutive > 0

    def failed(self, error: object) -> None:
        """
        One attempt failed with C{error} (its C{str} is the reason).
        """
        with self._lock:
            self.failures += 1
            self.consecutive += 1
            self.lastError = str(error)

    def succeeded(self) -> None:
        """
        One attempt worked: the failures in a row are over.
        """
        if self.consecutive:
            with self._lock:
                self.consecutive = 0
                self.lastError = None

    def set(self, state: str, reason: str | None = None) -> None:
        """
        Report C{state} (one of L{STATES}) for a reason, until set again;
        failures in a row (L{failed}) report L{whenFailing} on top of it.
        """
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        with self._lock:
            self._state = state
            self._reason = reason if state != OK else None

    @property
    def state(self) -> str:
        """
        The worse of the state L{set} and, while failing, L{whenFailing}.
        """
        with self._lock:
            if self.consecutive and STATES.index(self.whenFailing) > STATES.index(self._state):
                return self.whenFailing
            return self._state

    def report(self) -> dict[str, Any]:
        """
        @return: C{{"state": ..., "reason": ...}} as C{/health} shows it,
            with the failures in a row while failing.
        """
        with self._lock:
            if self.consecutive and STATES.index(self.whenFailing) >= STATES.index(self._state):
                return {
                    "state": self.whenFailing,
                    "reason": self.lastError,
                    "consecutive_failures": self.consecutive,
                }
            return {"state": self._state, "reason": self._reason}


class HealthRegistry:
    """
    The components C{/health} reports, by name; see the module docstring.
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

    def get(self, name: str) -> ComponentHealth | None:
        """
        @return: the component called C{name}, or L{None}.
        """
        return self._components.get(name)

    def __iter__(self) -> Iterator[ComponentHealth]:
        return iter(list(self._components.values()))

    @property
    def status(self) -> str:
        """
        L{DOWN} when any component is down, else L{DEGRADED} when any is not
        ok, else L{OK}.
        """
        worst = 0
        for component in self:
            worst = max(worst, STATES.index(component.state))
        return STATES[worst]

    def report(self) -> dict[str, dict[str, Any]]:
        """
        @return: every component's L{ComponentHealth.report}, by name.
        """
        return {c.name: c.report() for c in self}

    def collect(self) -> Any:
        """
        The Prometheus collector protocol: failures by component, and
        whether each is degraded or down now.
        """
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        failures = CounterMetricFamily(
            "logsvc_component_failures", "Failed attempts of a component (store, indexer, checkpointer, retention).", labels=["component"]
        )
        failing = GaugeMetricFamily(
            "logsvc_component_degraded", "1 while a component is degraded or down (it retries by itself).", labels=["component"]
        )
        down = GaugeMetricFamily("logsvc_component_down", "1 while a component is down.", labels=["component"])
        for c in self:
            state = c.state
            failures.add_metric([c.name], c.failures)
            failing.add_metric([c.name], int(state != OK))
            down.add_metric([c.name], int(state == DOWN))
        yield failures
        yield failing
        yield down

    def describe(self) -> list[Any]:
        return []
