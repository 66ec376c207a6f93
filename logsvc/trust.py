"""
What guards one logsvc process, assembled for L{logsvc.service.makeService}:
one L{Protection} owns the connection budget, the tokens, the disk floor and
retention, and wraps every listener's factory and the HTTP root.  Their
options are checked in L{logsvc.config}.
"""

from __future__ import annotations

import signal
from typing import Any

from twisted.application.service import IService, Service
from twisted.logger import Logger

from logsvc.auth import Tokens
from logsvc.config import LogsvcConfig
from logsvc.ingest.tcp import IngestFactory
from logsvc.limits import (
    ConnectionBudget,
    GuardedFactory,
    UnauthenticatedBudget,
    defaultMaxConnections,
    raiseFileLimit,
)
from logsvc.pipeline import Pipeline
from logsvc.retention import DiskFloor, RetentionService
from logsvc.web.forwarded import isTrusted
from logsvc.web.guard import Guard, GuardResource

log = Logger()


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
    What guards one logsvc process; built from its L{LogsvcConfig}.

    @ivar budget: the shared L{ConnectionBudget}.
    @ivar tokens: the L{Tokens} in force (disabled without C{--token-file}).
    @ivar disk: the L{DiskFloor}.
    @ivar guard: the HTTP L{Guard}.
    """

    def __init__(self, config: LogsvcConfig, pipeline: Pipeline, store: Any, reactor: Any) -> None:
        soft, hard = raiseFileLimit()
        maximum = config.maxConnections or defaultMaxConnections(soft)
        log.info(
            "open-file limit {soft} (hard {hard}); max-connections {maximum}",
            soft=soft,
            hard=hard,
            maximum=maximum,
        )
        self.reactor = reactor
        self.store = store
        self.config = config
        self.budget = ConnectionBudget(maximum)
        self.tokens = Tokens(config.tokenFile)
        self.tcpTokens = self.tokens if config.tcpAuth == "token" else Tokens()
        # A store on a database server has no local disk to watch.
        floor = config.minFreeDisk if store.dataPath is not None else 0
        self.disk = DiskFloor(
            store.dataPath or ".", floor, stalled=lambda: getattr(store, "waitingForSpace", None) is not None
        )
        self.guard = Guard(
            self.tokens,
            admission=lambda sender: pipeline.admission.refusal(sender, 0),
            diskLow=lambda: self.disk.low,
        )
        self.ingestFactories: list[GuardedFactory] = []
        pipeline.metrics.registry.register(TrustCollector(self))
        self.retention = RetentionService(
            store,
            retain=config.retain,
            maxBytes=config.maxDbSize,
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
        return GuardedFactory(
            site,
            self.budget,
            idleTimeout=None,
            clock=self.reactor,
            authTimeout=self.config.authTimeout or None,
            unauthenticated=self.unauthenticatedBudget(),
            establishedByProtocol=self.tokens.enabled,
        )

    def unauthenticatedBudget(self) -> UnauthenticatedBudget:
        """
        @return: a listener's budget of connections that have not proved
            themselves yet: an eighth of the connection budget (at least 4),
            so four listeners' together leave half of it to authenticated
            clients; a trusted proxy's address is not held to one
            address's share.
        """
        proxies = self.config.trustedProxies or ()
        return UnauthenticatedBudget(
            max(4, (self.budget.maximum or 1024) // 8),
            # A load balancer's connections all come from its address.
            sharedAddress=(lambda peer: isTrusted(peer, proxies)) if proxies else None,
        )

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
            idleTimeout=self.config.idleTimeout or None,
            clock=self.reactor,
            admit=self.disk.refusal,
            authTimeout=self.config.authTimeout or None,
            unauthenticated=self.unauthenticatedBudget(),
            establishedByProtocol=bool(getattr(factory, "tokens", None) and factory.tokens.enabled)
            and isinstance(factory, IngestFactory),
        )
        self.ingestFactories.append(guarded)
        return guarded
