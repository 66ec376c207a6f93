"""
The service tree of C{twistd logsvc}, built from a L{LogsvcConfig} (the
options are parsed in L{logsvc.config}; L{logsvc.tap} is the twistd face).

L{makeService} composes, in start order: the store, the pipeline, the HTTP
listener and the TCP listener.  L{LogService} stops them one after another in
reverse order, so a stop first closes the listeners and drains open TCP
connections, then waits until every queued record is durable, then closes the
store.
"""

from __future__ import annotations

import gc
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.internet.address import UNIXAddress
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from zope.interface import implementer

from logsvc.config import LogsvcConfig
from logsvc.formats.gelf import parseGelfFrames
from logsvc.health import DOWN, OK, ComponentHealth, HealthRegistry
from logsvc.ingest.forward import ForwardFactory
from logsvc.ingest.heartbeat import HeartbeatService
from logsvc.ingest.sink import IngestSink
from logsvc.ingest.tcp import IngestFactory, defaultConnectionShare
from logsvc.ingest.udp import DatagramIngest, UDPListenerService, parseUDPEndpoint
from logsvc.metrics import Metrics
from logsvc.pipeline import Pipeline
from logsvc.speedups import startupLine
from logsvc.startup import (
    RETRY_DELAYS,
    NotReady,
    StartupError,
    StartupFailed,
    describeFailure,
    quietStartupFailures,
)
from logsvc.store.choose import displayDatabase, openStore
from logsvc.store.sqlite.connection import stopMemoryStatistics
from logsvc.timebounds import TimeBounds
from logsvc.trust import Protection
from logsvc.web.app import LogsvcSite, buildRoot


class LogService(MultiService):
    """
    The service tree of one logsvc process.

    Start: children start in the order they were added (listeners bind in
    C{privilegedStartService}, before anything else starts, as Twisted
    does for ports that need privileges).  A child that fails for a user's
    mistake (L{logsvc.startup}: a port in use, a database path that cannot
    work) is reported in one line naming the option and the value it was
    built from (see L{addChild}); under twistd (C{exitOnMistake}) the
    process then exits with status 1 instead of a traceback (a daemon's
    parent prints the line).  A child that
    raises L{NotReady} is reported C{down} in C{/health} and started again
    later (L{RETRY_DELAYS}) while everything else runs.

    Stop: children stop one at a time, last added first, each waiting for
    the previous one's stop to finish.  A child whose stop fails is logged
    and the rest are still stopped: the store must close even when a
    listener's stop went wrong.

    @ivar health: the registry the children's states are reported in.
    """

    log = Logger()

    def __init__(
        self,
        *,
        health: HealthRegistry | None = None,
        clock: Any = None,
        exitOnMistake: bool = False,
        openToAll: bool = False,
    ) -> None:
        """
        @param openToAll: whether anyone may send and read (no tokens), so
            listening on all interfaces deserves a warning at start.
        """
        super().__init__()
        self.openToAll = openToAll
        self.health = health if health is not None else HealthRegistry()
        self.clock = clock
        self.exitOnMistake = exitOnMistake
        self._origins: dict[IService, tuple[str, str]] = {}
        self._componentNames: dict[IService, str] = {}
        self._retries: dict[IService, IDelayedCall] = {}

    def addChild(self, child: IService, *, option: str, value: str, component: str | None = None) -> None:
        """
        Add C{child}, built from C{--option value}; its state is reported
        in C{/health} as C{component} (the option's name by default).
        """
        child.setServiceParent(self)
        self._origins[child] = (option, value)
        name = self._componentNames[child] = component or option
        if self.health.get(name) is None:
            self.health.add(ComponentHealth(name))

    def origin(self, child: IService) -> str:
        """
        @return: C{"--option value: "} for a child added with L{addChild},
            else C{""}.
        """
        found = self._origins.get(child)
        return f"--{found[0]} {found[1]}: " if found is not None else ""

    def privilegedStartService(self) -> None:
        Service.privilegedStartService(self)
        for child in list(self):
            self._start(child, child.privilegedStartService)

    def startService(self) -> None:
        Service.startService(self)
        for child in list(self):
            if child not in self._retries:
                self._start(child, child.startService)
        self.announce()

    def announce(self) -> None:
        """
        Log one line per listener with its address, the store, the UI's URL,
        and which parsers run (the optional C module or pure Python, see
        L{logsvc.speedups}); warn when something listens on all interfaces
        while anyone may send and read (no tokens).
        """
        everywhere = []
        for child in self:
            found = self._origins.get(child)
            if found is None or not child.running:
                continue
            option, value = found
            address = listeningAddress(child)
            if address is None:
                if option == "db":
                    self.log.info("store: {value}", value=value)
                else:
                    self.log.info("--{option}: {value}", option=option, value=value)
                continue
            where = address if isinstance(address, str) else _hostPort(*address)
            self.log.info("--{option} listening on {where}", option=option, where=where)
            if not isinstance(address, str) and address[0] in ALL_INTERFACES:
                everywhere.append(f"--{option}")
            if option == "http":
                scheme = "https" if value.startswith("ssl:") else "http"
                host = "localhost" if isinstance(address, str) or address[0] in ALL_INTERFACES else address[0]
                url = f"{scheme}://{_hostPort(host, address[1])}/ui/" if not isinstance(address, str) else None
                if url is not None:
                    self.log.info("UI: {url}", url=url)
        self.log.info("{line}", line=startupLine())
        if everywhere and self.openToAll:
            self.log.warn(
                "{listeners} listen on all interfaces and no --token-file is given: anyone who can reach"
                " this machine can send and read logs; add :interface=127.0.0.1 or a --token-file",
                listeners=", ".join(everywhere),
            )

    def _component(self, child: IService) -> ComponentHealth | None:
        name = self._componentNames.get(child)
        return self.health.get(name) if name is not None else None

    def _start(self, child: IService, start: Any, attempt: int = 0) -> None:
        try:
            start()
        except NotReady as e:
            self._notReady(child, str(e), attempt)
        except Exception as e:
            cause = describeFailure(e)
            if cause is None:
                raise
            self._mistake(child, cause)
        else:
            component = self._component(child)
            if component is not None and start == getattr(child, "startService", None):
                component.set(OK)

    def _notReady(self, child: IService, reason: str, attempt: int) -> None:
        delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
        self.log.warn(
            "{origin}{reason}; starting without it, next attempt in {delay}s",
            origin=self.origin(child),
            reason=reason,
            delay=delay,
        )
        component = self._component(child)
        if component is not None:
            component.set(DOWN, reason)
        if self.clock is None:
            from twisted.internet import reactor as clock
        else:
            clock = self.clock

        def retry() -> None:
            del self._retries[child]
            if self.running:
                self._start(child, child.startService, attempt + 1)

        self._retries[child] = clock.callLater(delay, retry)

    def _mistake(self, child: IService, cause: str) -> None:
        line = f"{self.origin(child)}{cause}"
        if not self.exitOnMistake:
            raise StartupError(line)
        self.log.critical("{line}", line=line)
        # twistd ends the process on an exception from the start (status 1)
        # and, when daemonized, hands its message to the waiting parent,
        # which prints it; SystemExit would leave that parent waiting for
        # ever (it keeps the status pipe's write end).  The line is logged
        # above, so the traceback is not printed.
        quietStartupFailures()
        raise StartupFailed(line)

    def stopService(self) -> Deferred[None]:
        self.running = 0
        for call in self._retries.values():
            call.cancel()
        self._retries.clear()
        children = list(self)
        children.reverse()
        d: Deferred[Any] = succeed(None)
        for child in children:
            if child.running:
                d.addCallback(_stopNext, child)
        return d


def _hostPort(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _stopNext(_: object, child: IService) -> Any:
    return maybeDeferred(child.stopService).addErrback(
        lambda f: LogService.log.failure("stopping {child} failed", f, child=child)
    )


class ListenerService(StreamServerEndpointService):
    """
    A listener that binds in C{privilegedStartService} and raises there
    when it cannot (C{CannotListenError}), so the service can say so in one
    line (L{LogService}) rather than log it and run without the port.
    """

    # Documented on StreamServerEndpointService (@ivar); strports.service
    # sets it the same way.
    _raiseSynchronously = True

    #: The listening port once bound (for its address), else L{None}.
    port: IListeningPort | None = None

    def __init__(self, endpoint: IStreamServerEndpoint, factory: Any) -> None:
        super().__init__(_PortRecorder(endpoint, self), factory)


@implementer(IStreamServerEndpoint)
class _PortRecorder:
    """
    An endpoint that listens with another and keeps the port on a
    L{ListenerService} (StreamServerEndpointService keeps it private).
    """

    def __init__(self, endpoint: IStreamServerEndpoint, service: ListenerService) -> None:
        self.endpoint = endpoint
        self.service = service

    def listen(self, factory: Any) -> Deferred[IListeningPort]:
        def record(port: IListeningPort) -> IListeningPort:
            self.service.port = port
            return port

        return self.endpoint.listen(factory).addCallback(record)


def listeningAddress(child: IService) -> tuple[str, int] | str | None:
    """
    @return: where a started listener listens: C{(host, port)}, a UNIX
        socket's path, or L{None} when it does not say.
    """
    port = getattr(child, "port", None)
    getHost = getattr(port, "getHost", None)
    if getHost is not None:
        address = getHost()
        if isinstance(address, UNIXAddress):
            return str(address.name)
        host, number = getattr(address, "host", None), getattr(address, "port", None)
        return (str(host), int(number)) if host is not None and number is not None else None
    grpcAddress = getattr(child, "address", None)
    if isinstance(grpcAddress, str) and isinstance(port, int):
        return (grpcAddress.rsplit(":", 1)[0].strip("[]"), port)
    return None


#: Hosts that mean every interface of the machine.
ALL_INTERFACES = ("0.0.0.0", "::", "")


class DrainingListenerService(ListenerService):
    """
    A listener whose stop also waits for its open TCP connections to finish
    (see L{IngestFactory.drain}).
    """

    def __init__(
        self, endpoint: Any, factory: Any, *, drainTimeout: float, clock: Any, draining: Any = None
    ) -> None:
        """
        @param factory: what listens (the ingest factory, or a wrapper of it).
        @param draining: the factory whose connections a stop waits for
            (with a C{drain} method); C{factory} when L{None}.
        """
        super().__init__(endpoint, factory)
        self.drainTimeout = drainTimeout
        self.clock = clock
        self.draining = draining if draining is not None else factory

    def stopService(self) -> Deferred[Any]:
        d = super().stopService()
        return d.addCallback(lambda _: self.draining.drain(self.drainTimeout, self.clock))


def tuneGarbageCollector() -> None:
    """
    Collect cyclic garbage less often, and never scan what exists at start.

    Ingest allocates and drops a dict or two per record; with Python's
    default threshold (700 allocations) the young generation is collected
    hundreds of times a second under load, about a sixth of the reactor
    thread's time per record (measured: 3.6 against 3.0 us per TCP line).
    Records hold no cycles, so collecting less often costs no memory.
    """
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)


#: Allocations between collections of the youngest generation.
GC_THRESHOLD = 50_000


def makeService(config: LogsvcConfig, reactor: Any = None) -> IService:
    """
    Build the service tree for C{config}; nothing starts until the tree's
    C{startService}.  With the global reactor (C{twistd logsvc}), this
    process is the service's own, so its garbage collector is tuned too
    (L{tuneGarbageCollector}), SQLite's memory statistics are turned off
    before any store opens (L{stopMemoryStatistics}), and a mistake found
    at start ends the process with one line (L{LogService}).
    """
    ownProcess = reactor is None
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
        tuneGarbageCollector()
        stopMemoryStatistics()
    metrics = Metrics()
    components = HealthRegistry()
    top = LogService(
        health=components, clock=reactor, exitOnMistake=ownProcess, openToAll=config.tokenFile is None
    )
    store = openStore(
        config.db,
        reactor=reactor,
        fsync=config.fsync,
        searchIndex=not config.noSearchIndex,
        searchTimeout=config.searchTimeout or None,
    )
    for helper in store.components():
        components.add(helper)
    if components.get("store") is None:
        components.add(ComponentHealth("store", whenFailing=DOWN))
    top.addChild(store, option="db", value=displayDatabase(config.db), component="store")
    pipeline = Pipeline(
        store,
        reactor=reactor,
        metrics=metrics,
        batchSize=config.batchSize,
        maxPending=config.maxPending,
        timeBounds=TimeBounds(config.maxFuture, config.retain),
    )
    pipeline.setServiceParent(top)
    protection = Protection(config, pipeline, store, reactor)
    for service in protection.services():
        service.setServiceParent(top)
    components.add(protection.retention.health)
    metrics.registry.register(components)
    root = buildRoot(store, pipeline, metrics=metrics, maxBody=config.maxBody, components=components)
    site = LogsvcSite(
        protection.guardRoot(root),
        maxBody=config.maxBody,
        requestTimeout=config.requestTimeout,
        stallTimeout=config.stallTimeout,
        timeout=config.idleTimeout or None,
        trustedProxies=config.trustedProxies or (),
    )
    http = ListenerService(serverFromString(reactor, config.http), protection.guardHTTP(site))
    http.setName("http")
    top.addChild(http, option="http", value=config.http)

    def listen(name: str, endpoint: str, factory: Any) -> ListenerService:
        listener = DrainingListenerService(
            serverFromString(reactor, endpoint),
            protection.guardIngest(factory),
            drainTimeout=config.drainTimeout,
            clock=reactor,
            draining=factory,
        )
        listener.setName(name)
        top.addChild(listener, option=name, value=endpoint)
        return listener

    tcpOptions: dict[str, Any] = dict(
        maxLineLength=config.maxLine,
        tokens=protection.tcpTokens,
        connectionShare=defaultConnectionShare(pipeline),
    )
    listen("tcp", config.tcp, IngestFactory(pipeline, **tcpOptions))
    if config.tcpAcked is not None:
        listen(
            "tcp-acked",
            config.tcpAcked,
            IngestFactory(pipeline, transport="tcp-acked", acknowledge=True, clock=reactor, **tcpOptions),
        )
    if config.gelf is not None:
        listen("gelf", config.gelf, IngestFactory(pipeline, transport="gelf", parser=parseGelfFrames, **tcpOptions))
    if config.otlpGrpc is not None:
        from logsvc.ingest.otlpgrpc import OTLPGrpcService

        otlp = OTLPGrpcService(
            config.otlpGrpc, pipeline, tokens=protection.tokens, maxMessage=config.maxBody, reactor=reactor
        )
        otlp.setName("otlp-grpc")
        top.addChild(otlp, option="otlp-grpc", value=config.otlpGrpc)
    if config.forward is not None:
        share = defaultConnectionShare(pipeline)
        forward = listen(
            "forward", config.forward, ForwardFactory(pipeline, tokens=protection.tokens, connectionShare=share)
        )
        # After the listener: the heartbeat takes the port number it bound.
        HeartbeatService(lambda: forward.port, reactor=reactor).setServiceParent(top)
    if config.udp is not None:
        udp = UDPListenerService(
            parseUDPEndpoint(config.udp),
            DatagramIngest(IngestSink(pipeline, "udp"), clock=reactor),
            reactor=reactor,
            receiveBuffer=config.udpRcvbuf,
            flowControllers=[("pipeline", pipeline), ("disk", protection.disk.flow)],
        )
        udp.setName("udp")
        top.addChild(udp, option="udp", value=config.udp)
    return top
