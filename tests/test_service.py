"""
Tests for L{logsvc.service}: the service tree, and the
sequential stop of L{LogService}.
"""

from __future__ import annotations

import errno
import sys
from typing import Any

from twisted.application.service import Service
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from logsvc.config import parseConfig
from logsvc.health import HealthRegistry
from logsvc.ingest.tcp import IngestFactory, IngestProtocol
from logsvc.pipeline import Pipeline
from logsvc.service import DrainingListenerService, ListenerService, LogService, makeService
from logsvc.speedups import startupLine
from logsvc.startup import RETRY_DELAYS, NotReady, StartupError, StartupFailed
from logsvc.store.memory import MemoryStore
from logsvc.store.sqlite.store import SqliteStore


class TuneGarbageCollectorTests(SynchronousTestCase):
    def test_tuned(self) -> None:
        """The young generation is collected every GC_THRESHOLD allocations, and what exists is frozen."""
        import gc

        from logsvc.service import GC_THRESHOLD, tuneGarbageCollector

        before = gc.get_threshold()
        self.addCleanup(gc.set_threshold, *before)
        self.addCleanup(gc.unfreeze)
        tuneGarbageCollector()
        self.assertEqual(gc.get_threshold()[0], GC_THRESHOLD)
        self.assertGreater(gc.get_freeze_count(), 0)


class MakeServiceTests(SynchronousTestCase):
    def build(self, *argv: str) -> tuple[LogService, list[Any]]:
        db = self.mktemp()
        config = parseConfig(
            "--db", db, "--tcp", "tcp:0:interface=127.0.0.1", "--http", "tcp:0:interface=127.0.0.1",
            "--batch-size", "123", "--max-pending", "4567", *argv,
        )  # fmt: skip
        top = makeService(config, reactor=MemoryReactorClock())
        assert isinstance(top, LogService)
        return top, list(top)

    def test_storeFirst(self) -> None:
        """The store is the first child (started first, stopped last), on the --db file."""
        _, children = self.build()
        self.assertIsInstance(children[0], SqliteStore)
        self.assertTrue(children[0].path.endswith("temp"))

    def test_pipelineSecond(self) -> None:
        """The pipeline comes right after the store, with the batch and pending limits given."""
        _, children = self.build()
        pipeline = children[1]
        self.assertIsInstance(pipeline, Pipeline)
        self.assertEqual((pipeline.batchSize, pipeline.maxPending), (123, 4567))

    def test_listenersLast(self) -> None:
        """The HTTP then the TCP listener come after store and pipeline, so they stop first."""
        top, children = self.build()
        names = [child.name for child in children]
        http, tcp = top.getServiceNamed("http"), top.getServiceNamed("tcp")
        self.assertLess(children.index(http), children.index(tcp))
        self.assertGreater(children.index(http), 1)
        self.assertEqual(names[-1], "tcp")
        self.assertNotIn("tcp-acked", names)

    def test_ackedListener(self) -> None:
        """--tcp-acked adds an acknowledged listener after the plain TCP one."""
        _, children = self.build("--tcp-acked", "tcp:0:interface=127.0.0.1")
        names = [child.name for child in children]
        self.assertEqual(names[-2:], ["tcp", "tcp-acked"])

    def test_notStarted(self) -> None:
        """Building the tree starts nothing: no file is opened and nothing listens."""
        top, children = self.build()
        self.assertFalse(top.running)
        self.assertFalse(any(child.running for child in children))


class FakeService(Service):
    """A service whose stop returns a Deferred the test fires."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.setName(name)
        self.log = log
        self.stopping: Deferred[None] | None = None

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        self.log.append(str(self.name))
        self.stopping = Deferred()
        return self.stopping


class LogServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.log: list[str] = []
        self.top = LogService()
        self.children = [
            FakeService(name, self.log) for name in ("store", "pipeline", "http", "tcp")
        ]
        for child in self.children:
            child.setServiceParent(self.top)
        self.top.startService()

    def fire(self, name: str) -> None:
        stopping = self.top.getServiceNamed(name).stopping
        assert stopping is not None
        stopping.callback(None)

    def test_reverseSequential(self) -> None:
        """Children stop last-added first, each only once the previous stop has finished."""
        done: list[object] = []
        self.top.stopService().addCallback(done.append)
        self.assertFalse(self.top.running)
        self.assertEqual(self.log, ["tcp"])
        self.fire("tcp")
        self.assertEqual(self.log, ["tcp", "http"])
        self.fire("http")
        self.assertEqual(self.log, ["tcp", "http", "pipeline"])
        self.fire("pipeline")
        self.assertEqual(self.log, ["tcp", "http", "pipeline", "store"])
        self.assertEqual(done, [])
        self.fire("store")
        self.assertEqual(done, [None])

    def test_skipsStopped(self) -> None:
        """A child that is not running is not stopped again."""
        self.children[2].running = 0
        self.top.stopService()
        self.fire("tcp")
        self.assertEqual(self.log, ["tcp", "pipeline"])

    def test_failureDoesNotStrandStore(self) -> None:
        """A child whose stop fails is logged, and the children before it are still stopped."""
        done: list[object] = []
        self.top.stopService().addCallback(done.append)
        stopping = self.children[3].stopping
        assert stopping is not None
        stopping.errback(ZeroDivisionError())
        self.assertEqual(self.log, ["tcp", "http"])
        self.fire("http")
        self.fire("pipeline")
        self.fire("store")
        self.assertEqual(self.log, ["tcp", "http", "pipeline", "store"])
        self.assertEqual(done, [None])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_raisingStop(self) -> None:
        """A child whose stopService raises is logged and the rest still stop."""

        class Broken(Service):
            def stopService(self) -> None:
                raise ValueError("broken")

        broken = Broken()
        broken.setServiceParent(self.top)
        self.assertTrue(broken.running)
        self.top.stopService()
        self.assertEqual(self.log, ["tcp"])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)


@implementer(IListeningPort)
class FakePort:
    """A listening port whose stopListening the test finishes."""

    def __init__(self) -> None:
        self.stopping: Deferred[None] | None = None

    def startListening(self) -> None:
        pass

    def stopListening(self) -> Deferred[None]:
        self.stopping = Deferred()
        return self.stopping

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 5140)


@implementer(IStreamServerEndpoint)
class FakeEndpoint:
    """An endpoint that listens at once on a L{FakePort}."""

    def __init__(self) -> None:
        self.port = FakePort()

    def listen(self, factory: Any) -> Deferred[IListeningPort]:
        return succeed(self.port)


class DrainingListenerServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = MemoryStore()
        self.factory = IngestFactory(Pipeline(self.store, reactor=self.clock, delay=0))
        self.endpoint = FakeEndpoint()
        self.service = DrainingListenerService(
            self.endpoint, self.factory, drainTimeout=3, clock=self.clock
        )
        self.service.startService()

    def connect(self) -> tuple[IngestProtocol, StringTransport]:
        peer = IPv4Address("TCP", "192.0.2.1", 40000)
        protocol = self.factory.buildProtocol(peer)
        assert isinstance(protocol, IngestProtocol)
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        return protocol, transport

    def test_stopListeningThenDrain(self) -> None:
        """A stop first stops listening, then waits for open senders, storing what they still send."""
        protocol, transport = self.connect()
        stopped: list[object] = []
        self.service.stopService().addCallback(stopped.append)
        port = self.endpoint.port
        assert port.stopping is not None
        port.stopping.callback(None)
        self.assertEqual(stopped, [])
        protocol.dataReceived(b"written before close\nlast")
        protocol.connectionLost(None)
        self.assertEqual(len(stopped), 1)
        self.assertEqual([row[6] for row in self.store.rows], ["written before close", "last"])
        self.assertFalse(transport.disconnecting)

    def test_drainTimeout(self) -> None:
        """Senders still connected after the drain timeout are closed, then the stop finishes."""
        protocol, transport = self.connect()
        stopped: list[object] = []
        self.service.stopService().addCallback(stopped.append)
        port = self.endpoint.port
        assert port.stopping is not None
        port.stopping.callback(None)
        self.clock.advance(3)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(stopped, [])
        protocol.connectionLost(None)
        self.assertEqual(len(stopped), 1)


class StartingService(Service):
    """A service whose start raises the exceptions the test queues, then starts."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.attempts = 0

    def startService(self) -> None:
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        Service.startService(self)


class LogServiceStartTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.health = HealthRegistry()
        self.top = LogService(health=self.health, clock=self.clock)

    def test_mistakeNamesOption(self) -> None:
        """A child's StartupError becomes one StartupError naming the option and value it was built from."""
        self.top.addChild(
            StartingService(StartupError("address already in use")), option="tcp", value="tcp:5140"
        )
        error = self.assertRaises(StartupError, self.top.startService)
        self.assertEqual(str(error), "--tcp tcp:5140: address already in use")

    def test_cannotListen(self) -> None:
        """A CannotListenError is said as a person says it."""
        busy = CannotListenError(
            "127.0.0.1", 5140, OSError(errno.EADDRINUSE, "Address already in use")
        )
        self.top.addChild(StartingService(busy), option="gelf", value="tcp:5140")
        error = self.assertRaises(StartupError, self.top.startService)
        self.assertEqual(str(error), "--gelf tcp:5140: address already in use")

    def test_bugKeepsTraceback(self) -> None:
        """Any other exception is a bug and propagates unchanged."""
        self.top.addChild(StartingService(ZeroDivisionError()), option="tcp", value="tcp:5140")
        self.assertRaises(ZeroDivisionError, self.top.startService)

    def test_exitOnMistake(self) -> None:
        """Under twistd a mistake is logged once, critical, and ends the start with StartupFailed."""
        top = LogService(health=self.health, clock=self.clock, exitOnMistake=True)
        top.addChild(
            StartingService(StartupError("directory /x does not exist")), option="db", value="/x/y"
        )
        logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        self.addCleanup(setattr, sys, "excepthook", sys.excepthook)
        error = self.assertRaises(StartupFailed, top.startService)
        self.assertEqual(str(error), "--db /x/y: directory /x does not exist")
        lines = [formatEvent(e) for e in logged if e.get("log_level") == LogLevel.critical]
        self.assertEqual(lines, ["--db /x/y: directory /x does not exist"])

    def test_notReadyRetried(self) -> None:
        """A child that is not ready is down in /health, the rest start, and it is started again later."""
        waiting = StartingService(NotReady("connection refused"), NotReady("connection refused"))
        self.top.addChild(waiting, option="db", value="postgresql://db/logs", component="store")
        other = StartingService()
        self.top.addChild(other, option="tcp", value="tcp:5140")
        self.top.startService()
        self.assertTrue(other.running)
        self.assertEqual(
            self.health.report()["store"], {"state": "down", "reason": "connection refused"}
        )
        self.assertEqual(self.health.status, "down")
        self.clock.advance(RETRY_DELAYS[0])
        self.assertEqual(waiting.attempts, 2)
        self.assertFalse(waiting.running)
        self.clock.advance(RETRY_DELAYS[1])
        self.assertTrue(waiting.running)
        self.assertEqual(self.health.status, "ok")

    def test_stopCancelsRetry(self) -> None:
        """Stopping the service gives up starting a child that was not ready."""
        waiting = StartingService(NotReady("later"))
        self.top.addChild(waiting, option="udp", value="udp:5514")
        self.top.startService()
        self.top.stopService()
        self.clock.advance(60)
        self.assertEqual(waiting.attempts, 1)


@implementer(IStreamServerEndpoint)
class AnyInterfaceEndpoint:
    """An endpoint that listens at once on a port bound to every interface."""

    def listen(self, factory: Any) -> Deferred[IListeningPort]:
        port = FakePort()
        port.getHost = lambda: IPv4Address("TCP", "0.0.0.0", 8080)  # type: ignore[method-assign]
        return succeed(port)


class AnnounceTests(SynchronousTestCase):
    def started(self, *, openToAll: bool) -> list[str]:
        """
        @return: the lines logged while a LogService with an HTTP listener
            on all interfaces and a store starts.
        """
        logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        top = LogService(clock=Clock(), openToAll=openToAll)
        top.addChild(StartingService(), option="db", value="/var/lib/logsvc/db", component="store")
        top.addChild(
            ListenerService(AnyInterfaceEndpoint(), Factory()), option="http", value="tcp:8080"
        )
        top.privilegedStartService()
        top.startService()
        return [formatEvent(e) for e in logged if e.get("log_namespace", "").startswith("logsvc")]

    def test_linePerListener(self) -> None:
        """Each listener's address, the store and the UI's URL are logged once at start."""
        lines = self.started(openToAll=False)
        self.assertEqual(
            lines,
            [
                "store: /var/lib/logsvc/db",
                "--http listening on 0.0.0.0:8080",
                "UI: http://localhost:8080/ui/",
                startupLine(),
            ],
        )

    def test_warnOpenToAll(self) -> None:
        """Listening on all interfaces with no token file is warned about, naming the listener."""
        lines = self.started(openToAll=True)
        self.assertIn("--http listen on all interfaces and no --token-file", lines[-1])
