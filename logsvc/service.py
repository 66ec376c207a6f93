"""
C{twistd logsvc}: command-line options and the service tree.

L{makeService} composes, in start order: the store, the pipeline, the HTTP
listener and the TCP listener.  L{LogService} stops them one after another in
reverse order, so a stop first closes the listeners and drains open TCP
connections, then waits until every queued record is durable, then closes the
store.
"""

from __future__ import annotations

import gc
from typing import Any

from twisted.application import strports
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python import usage

from logsvc.formats.gelf import parseGelfFrames
from logsvc.health import HealthRegistry
from logsvc.ingest.forward import ForwardFactory
from logsvc.ingest.sink import IngestSink
from logsvc.ingest.tcp import DEFAULT_MAX_LINE, IngestFactory, defaultConnectionShare
from logsvc.ingest.udp import DatagramIngest, UDPListenerService, parseUDPEndpoint
from logsvc.metrics import Metrics
from logsvc.pipeline import Pipeline
from logsvc.store.choose import checkDatabase, openStore
from logsvc.store.sqlite.connection import FSYNC_MODES, stopMemoryStatistics
from logsvc.trust import Protection, checkTrustOptions
from logsvc.web.app import LogsvcSite, buildRoot
from logsvc.web.ingest import DEFAULT_MAX_BODY


def parseSize(text: str) -> int:
    """
    Parse a byte size: a number with an optional unit (C{k}, C{KiB}, C{MB},
    C{GiB}, ...; decimal units are powers of 1000, binary ones of 1024).

    @raise ValueError: for anything else.
    """
    units = {
        "": 1,
        "b": 1,
        "k": 1024,
        "kb": 1000,
        "kib": 1024,
        "m": 1024**2,
        "mb": 1000**2,
        "mib": 1024**2,
        "g": 1024**3,
        "gb": 1000**3,
        "gib": 1024**3,
        "tb": 1000**4,
        "tib": 1024**4,
    }
    cleaned = text.strip().lower()
    number = cleaned.rstrip("abcdefghijklmnopqrstuvwxyz ")
    unit = cleaned[len(number) :].strip()
    if unit not in units or not number:
        raise ValueError(f"not a size: {text!r}")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise ValueError(f"not a size: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise ValueError(f"not a size: {text!r}")
    return int(value)


class Options(usage.Options):
    """
    Options of C{twistd logsvc}.  Listen addresses are Twisted endpoint strings,
    so C{ssl:} and C{unix:} work as well as C{tcp:}.
    """

    optFlags = [
        ["no-search-index", None, "Keep no full-text index: less ingest work, slow q and field searches."],
    ]

    optParameters = [
        ["tcp", None, "tcp:5140", "TCP line ingest endpoint (plain, JSON and syslog lines)."],
        ["http", None, "tcp:8080", "HTTP API endpoint."],
        ["db", None, "./logsvc.sqlite3", "SQLite database file (the search index goes in <db>-search), or a postgresql:// URL."],
        ["max-line", None, str(DEFAULT_MAX_LINE), "Longest TCP line accepted, bytes (units ok)."],
        ["max-body", None, str(DEFAULT_MAX_BODY), "Largest HTTP request body, bytes (units ok)."],
        ["drain-timeout", None, "5", "Seconds a stop waits for open TCP senders to close."],
        ["fsync", None, "normal", "normal: survives a process crash; full: survives power loss."],
        ["batch-size", None, "10000", "Records per store transaction, at most."],
        ["max-pending", None, "200000", "Undurable records before ingest is paused / refused."],
        ["gelf", None, None, "GELF TCP endpoint (NUL-delimited GELF JSON frames), e.g. tcp:12201."],
        ["tcp-acked", None, None, "Acknowledged TCP ingest endpoint (writes 'OK <n>' once durable)."],
        ["udp", None, None, "UDP syslog and GELF endpoint, udp:PORT[:interface=ADDR] (off by default)."],
        ["udp-auth", None, None, "none: take UDP without a token while --token-file is set (UDP cannot carry one)."],
        ["udp-rcvbuf", None, "8MiB", "UDP receive buffer asked for (SO_RCVBUF; net.core.rmem_max caps it)."],
        ["forward", None, None, "Fluent forward endpoint, e.g. tcp:24224 (shared-key handshake with --token-file)."],
        ["otlp-grpc", None, None, "OTLP/gRPC logs endpoint (tcp:4317, or ssl:4317:privateKey=...)."],
        ["max-connections", None, None, "Open client connections, all listeners (default: fd limit - 128)."],
        ["idle-timeout", None, "300", "Seconds a TCP connection may stay silent (0: forever)."],
        ["request-timeout", None, "30", "Seconds an HTTP request (headers and body) may take to arrive."],
        ["stall-timeout", None, "60", "Seconds an HTTP response may wait for a client that stopped reading."],
        ["token-file", None, None, "Bearer tokens, one 'scope token' per line (ingest/read); SIGHUP reloads."],
        ["tcp-auth", None, None, "token: TCP connections start with 'AUTH <token>'; none (default: token with --token-file)."],
        ["retain", None, None, "Delete records older than this (e.g. 30d, 12h)."],
        ["max-db-size", None, None, "Delete the oldest records while data exceeds this (e.g. 20GB)."],
        ["min-free-disk", None, "256MiB", "Below this much free disk, ingest is refused (507)."],
    ]

    def postOptions(self) -> None:
        problem = checkDatabase(self["db"])
        if problem is not None:
            raise usage.UsageError(problem)
        for name in ("max-line", "max-body"):
            try:
                self[name] = parseSize(self[name])
            except ValueError as e:
                raise usage.UsageError(f"--{name}: {e}")
            if self[name] <= 0:
                raise usage.UsageError(f"--{name} must be positive")
        for name in ("batch-size", "max-pending"):
            try:
                self[name] = int(self[name])
            except ValueError:
                raise usage.UsageError(f"--{name}: not an integer: {self[name]!r}")
            if self[name] <= 0:
                raise usage.UsageError(f"--{name} must be positive")
        try:
            self["drain-timeout"] = float(self["drain-timeout"])
        except ValueError:
            raise usage.UsageError(f"--drain-timeout: not a number: {self['drain-timeout']!r}")
        # A negative delay would make the reactor's callLater raise at stop,
        # before the queued records are stored.
        if not 0 <= self["drain-timeout"] < float("inf"):
            raise usage.UsageError("--drain-timeout must be a finite number of seconds >= 0")
        if self["fsync"] not in FSYNC_MODES:
            raise usage.UsageError(f"--fsync must be one of {', '.join(sorted(FSYNC_MODES))}")
        checkTrustOptions(self)
        if self["otlp-grpc"]:
            from logsvc.ingest.otlpgrpc import MISSING, EndpointError, grpcAddress

            if MISSING is not None:
                raise usage.UsageError(MISSING)
            try:
                grpcAddress(self["otlp-grpc"])
            except EndpointError as e:
                raise usage.UsageError(str(e))
        checkListenerOptions(self)


def checkListenerOptions(options: Any) -> None:
    """
    Validate and convert the UDP and forward listeners' options (in place).

    @raise usage.UsageError: naming the option at fault.
    """
    try:
        options["udp-rcvbuf"] = parseSize(options["udp-rcvbuf"])
    except ValueError as e:
        raise usage.UsageError(f"--udp-rcvbuf: {e}")
    if options["udp"] is not None:
        try:
            options["udp"] = parseUDPEndpoint(options["udp"])
        except ValueError as e:
            raise usage.UsageError(f"--udp: {e}")
    if options["udp-auth"] not in (None, "none"):
        raise usage.UsageError("--udp-auth must be none (UDP cannot authenticate)")
    if options["udp"] is not None and options["token-file"] and options["udp-auth"] != "none":
        raise usage.UsageError(
            "--udp cannot authenticate senders: with --token-file, add --udp-auth none to accept"
            " unauthenticated datagrams (listen on a trusted interface)"
        )


class LogService(MultiService):
    """
    A MultiService that stops its children one at a time, last added first,
    each waiting for the previous one's stop to finish.  A child whose stop
    fails is logged and the rest are still stopped: the store must close even
    when a listener's stop went wrong.
    """

    log = Logger()

    def stopService(self) -> Deferred[None]:
        self.running = 0
        children = list(self)
        children.reverse()
        d: Deferred[Any] = succeed(None)
        for child in children:
            if child.running:
                d.addCallback(_stopNext, child)
        return d


def _stopNext(_: object, child: IService) -> Any:
    return maybeDeferred(child.stopService).addErrback(
        lambda f: LogService.log.failure("stopping {child} failed", f, child=child)
    )


class DrainingListenerService(StreamServerEndpointService):
    """
    A listener whose stop also waits for its open TCP connections to finish
    (see L{IngestFactory.drain}).
    """

    def __init__(self, endpoint: Any, factory: Any, *, drainTimeout: float, clock: Any) -> None:
        super().__init__(endpoint, factory)
        self.drainTimeout = drainTimeout
        self.clock = clock

    def stopService(self) -> Deferred[Any]:
        d = super().stopService()
        factory: IngestFactory = self.factory  # type: ignore[assignment]
        return d.addCallback(lambda _: factory.drain(self.drainTimeout, self.clock))


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


def makeService(options: dict[str, Any], reactor: Any = None) -> IService:
    """
    Build the service tree from parsed L{Options}.  With the global reactor
    (C{twistd logsvc}), this process is the service's own, so its garbage
    collector is tuned too (L{tuneGarbageCollector}), and SQLite's memory
    statistics are turned off before any store opens
    (L{stopMemoryStatistics}).
    """
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
        tuneGarbageCollector()
        stopMemoryStatistics()
    metrics = Metrics()
    top = LogService()
    store = openStore(
        options["db"], reactor=reactor, fsync=options["fsync"], searchIndex=not options.get("no-search-index")
    )
    store.setServiceParent(top)
    pipeline = Pipeline(
        store,
        reactor=reactor,
        metrics=metrics,
        batchSize=options["batch-size"],
        maxPending=options["max-pending"],
    )
    pipeline.setServiceParent(top)
    protection = Protection(options, pipeline, store, reactor)
    for service in protection.services():
        service.setServiceParent(top)
    components = HealthRegistry()
    for helper in [*store.components(), protection.retention.health]:
        components.add(helper)
    metrics.registry.register(components)
    root = buildRoot(store, pipeline, metrics=metrics, maxBody=options["max-body"], components=components)
    site = LogsvcSite(
        protection.guardRoot(root),
        maxBody=options["max-body"],
        requestTimeout=options["request-timeout"],
        stallTimeout=options["stall-timeout"],
        timeout=options["idle-timeout"] or None,
    )
    http = strports.service(options["http"], protection.guardHTTP(site), reactor=reactor)
    http.setName("http")
    http.setServiceParent(top)
    def listen(name: str, factory: Any) -> None:
        listener = DrainingListenerService(
            strports.endpoints.serverFromString(reactor, options[name]),
            protection.guardIngest(factory),
            drainTimeout=options["drain-timeout"],
            clock=reactor,
        )
        listener.setName(name)
        listener.setServiceParent(top)

    tcpOptions: dict[str, Any] = dict(
        maxLineLength=options["max-line"],
        tokens=protection.tcpTokens,
        connectionShare=defaultConnectionShare(pipeline),
    )
    listen("tcp", IngestFactory(pipeline, **tcpOptions))
    if options["tcp-acked"]:
        listen(
            "tcp-acked",
            IngestFactory(pipeline, transport="tcp-acked", acknowledge=True, clock=reactor, **tcpOptions),
        )
    if options["gelf"]:
        listen("gelf", IngestFactory(pipeline, transport="gelf", parser=parseGelfFrames, **tcpOptions))
    if options.get("otlp-grpc"):
        from logsvc.ingest.otlpgrpc import OTLPGrpcService

        otlp = OTLPGrpcService(
            options["otlp-grpc"], pipeline, tokens=protection.tokens, maxMessage=options["max-body"], reactor=reactor
        )
        otlp.setName("otlp-grpc")
        otlp.setServiceParent(top)
    if options["forward"]:
        share = defaultConnectionShare(pipeline)
        listen("forward", ForwardFactory(pipeline, tokens=protection.tokens, connectionShare=share))
    if options["udp"] is not None:
        udp = UDPListenerService(
            options["udp"],
            DatagramIngest(IngestSink(pipeline, "udp"), clock=reactor),
            reactor=reactor,
            receiveBuffer=options["udp-rcvbuf"],
            flowControllers=[("pipeline", pipeline), ("disk", protection.disk.flow)],
        )
        udp.setName("udp")
        udp.setServiceParent(top)
    return top
