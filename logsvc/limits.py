"""
Limits that keep one client from hurting another.

  - L{PauseGate}: several independent reasons to stop reading one transport
    (a full pipeline, a client that does not read its acks, low disk) that
    compose: reading resumes only once every reason is gone.
  - L{GuardedFactory}: wraps any server factory (TCP ingest, HTTP) to enforce a
    process-wide connection budget (C{--max-connections}) and an idle timeout.
  - L{raiseFileLimit}: lift the open-file soft limit to the hard limit.
"""

from __future__ import annotations

import resource
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, TimeoutMixin, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

#: Default seconds a connection may stay silent (nothing read, nothing
#: written) before it is dropped.
DEFAULT_IDLE_TIMEOUT = 300.0

#: File descriptors kept back from the connection budget for the store, the
#: log file, temp files and the listeners themselves.
FD_RESERVE = 128


class PauseGate:
    """
    Pause a producer (a transport) for any of several named reasons.

    The wrapped producer is paused when the first reason appears and resumed
    only when the last one is gone, so one party's resume never overrides
    another's pause.  L{producer} hands out an L{IPushProducer} per reason, to
    register with whoever decides that reason (the pipeline, the ack writer).

    @ivar reasons: the reasons currently holding the producer paused.
    """

    def __init__(self, target: IPushProducer) -> None:
        self.target = target
        self.reasons: set[str] = set()
        self._views: dict[str, _ReasonProducer] = {}

    def pause(self, reason: str) -> None:
        """
        Hold the target paused for C{reason} (idempotent).
        """
        if reason in self.reasons:
            return
        self.reasons.add(reason)
        if len(self.reasons) == 1:
            self.target.pauseProducing()

    def resume(self, reason: str) -> None:
        """
        Drop C{reason}; the target resumes once no reason is left.
        """
        if reason not in self.reasons:
            return
        self.reasons.discard(reason)
        if not self.reasons:
            self.target.resumeProducing()

    @property
    def paused(self) -> bool:
        """
        True while any reason holds the target paused.
        """
        return bool(self.reasons)

    def producer(self, reason: str) -> IPushProducer:
        """
        @return: an L{IPushProducer} whose pause/resume stand for C{reason}
            (the same object for the same reason).
        """
        view = self._views.get(reason)
        if view is None:
            view = self._views[reason] = _ReasonProducer(self, reason)
        return view


@implementer(IPushProducer)
class _ReasonProducer:
    """
    One reason's view of a L{PauseGate}.
    """

    def __init__(self, gate: PauseGate, reason: str) -> None:
        self.gate = gate
        self.reason = reason

    def pauseProducing(self) -> None:
        self.gate.pause(self.reason)

    def resumeProducing(self) -> None:
        self.gate.resume(self.reason)

    def stopProducing(self) -> None:
        self.gate.target.stopProducing()


class FlowControl:
    """
    A switch that pauses every registered producer while it is on: the shape
    the pipeline offers (C{registerProducer}/C{unregisterProducer}), for other
    reasons to stop reading (such as low disk).
    """

    def __init__(self) -> None:
        self.on = False
        self._producers: set[IPushProducer] = set()

    def set(self, on: bool) -> None:
        """
        Pause (C{True}) or resume (C{False}) every registered producer.
        """
        if on == self.on:
            return
        self.on = on
        for producer in list(self._producers):
            if on:
                producer.pauseProducing()
            else:
                producer.resumeProducing()

    def registerProducer(self, producer: IPushProducer) -> None:
        self._producers.add(producer)
        if self.on:
            producer.pauseProducing()

    def unregisterProducer(self, producer: IPushProducer) -> None:
        self._producers.discard(producer)


def raiseFileLimit() -> tuple[int, int]:
    """
    Raise the soft limit on open files (C{RLIMIT_NOFILE}) to the hard limit.

    @return: the (soft, hard) limits now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        # Linux refuses an infinite soft limit; this is its usual ceiling.
        target = 1024 * 1024
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        # Some systems cap below the hard limit (macOS: OPEN_MAX); keep soft.
        pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def defaultMaxConnections(softLimit: int) -> int:
    """
    @return: the connection budget for a process allowed C{softLimit} open
        files: half of all but L{FD_RESERVE} (a connection may hold a second
        descriptor: twisted.web spools a request body over 100 kB to a
        temporary file), at least 16.
    """
    return max(16, (softLimit - FD_RESERVE) // 2)


class ConnectionBudget:
    """
    A process-wide count of open client connections, shared by every
    listener, with a ceiling.

    @ivar maximum: most connections open at once; L{None} for no limit.
    @ivar open: connections open now.
    @ivar refused: connections refused for the ceiling so far.
    """

    def __init__(self, maximum: int | None) -> None:
        self.maximum = maximum
        self.open = 0
        self.refused = 0

    def acquire(self) -> bool:
        """
        @return: True and count one more connection, or False when full.
        """
        if self.maximum is not None and self.open >= self.maximum:
            self.refused += 1
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1


class GuardedProtocol(ProtocolWrapper, TimeoutMixin):
    """
    Forwards everything to the wrapped protocol; drops the connection (abort,
    not a graceful close: the peer may not be reading) after
    C{factory.idleTimeout} seconds without a byte read or written.
    """

    factory: GuardedFactory

    def makeConnection(self, transport: Any) -> None:
        self.callLater = self.factory.clock.callLater  # type: ignore[method-assign]
        self.setTimeout(self.factory.idleTimeout)
        ProtocolWrapper.makeConnection(self, transport)

    def write(self, data: bytes) -> None:
        self.resetTimeout()
        ProtocolWrapper.write(self, data)

    def writeSequence(self, data: Any) -> None:
        self.resetTimeout()
        ProtocolWrapper.writeSequence(self, data)

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        ProtocolWrapper.dataReceived(self, data)

    def resumeProducing(self) -> None:
        # Time spent paused by the server is not the client's idleness.
        self.resetTimeout()
        transport: Any = self.transport
        transport.resumeProducing()

    def timeoutConnection(self) -> None:
        self.factory.timedOut += 1
        log.info("dropping idle connection from {peer}", peer=self.getPeer())
        transport: Any = self.transport
        abort = getattr(transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        ProtocolWrapper.connectionLost(self, reason)


class GuardedFactory(WrappingFactory):
    """
    Wrap C{wrappedFactory}: refuse connections (accept and close at once) while
    C{budget} is full, drop connections idle for C{idleTimeout} seconds.

    @ivar timedOut: connections dropped for idleness so far.
    """

    protocol = GuardedProtocol  # type: ignore[assignment]
    noisy = False

    def __init__(
        self,
        wrappedFactory: Factory,
        budget: ConnectionBudget,
        *,
        idleTimeout: float | None = DEFAULT_IDLE_TIMEOUT,
        clock: Any = None,
        admit: Any = None,
    ) -> None:
        """
        @param admit: optional callable returning a reason (C{str}) to refuse a
            new connection, or L{None} to admit it (e.g. low disk).
        """
        super().__init__(wrappedFactory)
        if clock is None:
            from twisted.internet import reactor as clock
        self.budget = budget
        self.idleTimeout = idleTimeout
        self.clock = clock
        self.admit = admit
        self.timedOut = 0

    def buildProtocol(self, addr: Any) -> Any:
        if self.admit is not None:
            reason = self.admit()
            if reason is not None:
                log.warn("refusing connection from {addr}: {reason}", addr=addr, reason=reason)
                return None
        if not self.budget.acquire():
            if self.budget.refused % 1000 == 1:
                log.warn(
                    "refusing connection from {addr}: {n} connections open (max-connections)",
                    addr=addr,
                    n=self.budget.open,
                )
            return None
        try:
            built = super().buildProtocol(addr)
        except BaseException:
            self.budget.release()
            raise
        if built is None:
            self.budget.release()
        return built

    def unregisterProtocol(self, p: Any) -> None:
        WrappingFactory.unregisterProtocol(self, p)  # type: ignore[arg-type]
        self.budget.release()
