"""
The protections of issue 5, assembled for L{logsvc.service.makeService}:
checking their options, and one L{Protection} per process that owns the
connection budget, the tokens, the disk floor, retention, and wraps every
listener's factory and the HTTP root.
"""

from __future__ import annotations

import signal
from typing import Any

from twisted.application.service import IService, Service
from twisted.logger import Logger
from twisted.python import usage

from logsvc.auth import TokenFileError, Tokens
from logsvc.limits import (
    ConnectionBudget,
    GuardedFactory,
    defaultMaxConnections,
    raiseFileLimit,
)
from logsvc.pipeline import Pipeline
from logsvc.retention import DiskFloor, RetentionService, parseDuration
from logsvc.web.guard import Guard, GuardResource

log = Logger()


def _size(text: str) -> int:
    from logsvc.service import parseSize

    return parseSize(text)


def checkTrustOptions(options: Any) -> None:
    """
    Validate and convert the options of this module (in place).

    @raise usage.UsageError: naming the option at fault.
    """
    for name in ("idle-timeout", "request-timeout", "stall-timeout"):
        try:
            options[name] = float(options[name])
        except ValueError:
            raise usage.UsageError(f"--{name}: not a number: {options[name]!r}")
        if options[name] < 0:
            raise usage.UsageError(f"--{name} must not be negative")
    if options["max-connections"] is not None:
        try:
            options["max-connections"] = int(options["max-connections"])
        except ValueError:
            raise usage.UsageError(f"--max-connections: not an integer: {options['max-connections']!r}")
        if options["max-connections"] <= 0:
            raise usage.UsageError("--max-connections must be positive")
    if options["retain"] is not None:
        try:
            options["retain"] = parseDuration(options["retain"])
        except ValueError as e:
            raise usage.UsageError(f"--retain: {e}")
    for name in ("max-db-size", "min-free-disk"):
        if options[name] is not None:
            try:
                options[name] = _size(options[name])
            except ValueError as e:
                raise usage.UsageError(f"--{name}: {e}")
    if options["tcp-auth"] is None:
        options["tcp-auth"] = "token" if options["token-file"] else "none"
    if options["tcp-auth"] not in ("token", "none"):
        raise usage.UsageError("--tcp-auth must be token or none")
    if options["tcp-auth"] == "token" and not options["token-file"]:
        raise usage.UsageError("--tcp-auth token needs --token-file")
    if options["token-file"]:
        try:
            options["tokens"] = Tokens(options["token-file"])
        except TokenFileError as e:
            raise usage.UsageError(f"--token-file: {e}")


class TokenReloadService(Service):
    """
    Re-reads the token file on SIGHUP while running.
    """

    def __init__(self, tokens: Tokens, reactor: Any) -> None:
        self.tokens = tokens
        self.reactor = reactor
        self._previous: Any = None

    def startService(self) -> None:
        Service.startService(self)
        self._previous = signal.signal(signal.SIGHUP, self._hangup)

    def _hangup(self, signum: int, frame: Any) -> None:
        # A signal handler runs between bytecodes of the reactor thread;
        # callFromThread wakes the reactor to do the work at a safe point.
        self.reactor.callFromThread(self.tokens.reload)

    def stopService(self) -> None:
        Service.stopService(self)
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)
            self._previous = None


class TrustCollector:
    """
    Exports the protections' counters at C{GET /metrics}, read at scrape
    time (no bookkeeping on the hot paths).
    """

    def __init__(self, protection: Protection) -> None:
        self.protection = protection

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        p = self.protection
        yield GaugeMetricFamily(
            "logsvc_connections_open", "Client connections open, all listeners.", value=p.budget.open
        )
        yield GaugeMetricFamily(
            "logsvc_connections_max", "The connection budget (--max-connections).", value=p.budget.maximum or 0
        )
        yield CounterMetricFamily(
            "logsvc_connections_refused",
            "Connections refused because the budget was full.",
            value=p.budget.refused,
        )
        yield CounterMetricFamily(
            "logsvc_connections_idle_dropped",
            "TCP connections dropped by the idle timeout.",
            value=sum(f.timedOut for f in p.ingestFactories),
        )
        yield CounterMetricFamily(
            "logsvc_http_refused",
            "HTTP requests refused by the guard (401, 403, 503, 507).",
            value=p.guard.refusals,
        )
        yield CounterMetricFamily(
            "logsvc_retention_deleted", "Records deleted by retention.", value=p.retention.deleted
        )
        yield GaugeMetricFamily(
            "logsvc_disk_free_bytes",
            "Free bytes on the database's file system, at the last check.",
            value=p.disk.free if p.disk.free is not None else -1,
        )
        yield GaugeMetricFamily("logsvc_disk_low", "1 while free disk is below the floor.", value=int(p.disk.low))

    def describe(self) -> list[Any]:
        return []


class Protection:
    """
    What guards one logsvc process; built from parsed options.

    @ivar budget: the shared L{ConnectionBudget}.
    @ivar tokens: the L{Tokens} in force (disabled without C{--token-file}).
    @ivar disk: the L{DiskFloor}.
    @ivar guard: the HTTP L{Guard}.
    """

    def __init__(self, options: Any, pipeline: Pipeline, store: Any, reactor: Any) -> None:
        soft, hard = raiseFileLimit()
        maximum = options.get("max-connections") or defaultMaxConnections(soft)
        log.info(
            "open-file limit {soft} (hard {hard}); max-connections {maximum}",
            soft=soft,
            hard=hard,
            maximum=maximum,
        )
        self.reactor = reactor
        self.store = store
        self.options = options
        self.budget = ConnectionBudget(maximum)
        self.tokens: Tokens = options.get("tokens") or Tokens()
        self.tcpTokens = self.tokens if options.get("tcp-auth") == "token" else Tokens()
        # A store on a database server has no local disk to watch.
        floor = options.get("min-free-disk") or 0 if store.dataPath is not None else 0
        self.disk = DiskFloor(store.dataPath or ".", floor)
        self.guard = Guard(
            self.tokens,
            admission=lambda sender: pipeline.admission.refusal(sender, 0),
            diskLow=lambda: self.disk.low,
        )
        self.ingestFactories: list[GuardedFactory] = []
        pipeline.metrics.registry.register(TrustCollector(self))
        self.retention = RetentionService(
            store,
            retain=options.get("retain"),
            maxBytes=options.get("max-db-size"),
            disk=self.disk,
            clock=reactor,
        )

    def services(self) -> list[IService]:
        """
        @return: the services to run between the store and the listeners.
        """
        found: list[IService] = [self.retention]
        if self.tokens.enabled:
            found.append(TokenReloadService(self.tokens, self.reactor))
        return found

    def guardRoot(self, root: Any) -> GuardResource:
        """
        @return: C{root} behind the HTTP guard.
        """
        return GuardResource(root, self.guard)

    def guardHTTP(self, site: Any) -> GuardedFactory:
        """
        @return: the HTTP site inside the connection budget (its idle and
            request timeouts are the channel's own).
        """
        return GuardedFactory(site, self.budget, idleTimeout=None, clock=self.reactor)

    def guardIngest(self, factory: Any) -> GuardedFactory:
        """
        @return: a TCP ingest factory inside the budget, with the idle timeout,
            refused below the disk floor; its connections stop being read
            while the disk is low.
        """
        factory.flowControllers.append(("disk", self.disk.flow))
        storeFlow = getattr(self.store, "flow", None)
        if storeFlow is not None:
            # A database server that cannot be reached: stop reading senders.
            factory.flowControllers.append(("store", storeFlow))
        guarded = GuardedFactory(
            factory,
            self.budget,
            idleTimeout=self.options.get("idle-timeout") or None,
            clock=self.reactor,
            admit=self.disk.refusal,
        )
        self.ingestFactories.append(guarded)
        return guarded
