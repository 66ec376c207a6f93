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
from collections.abc import Callable
from typing import Any, cast

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

    #: Until the connection is established (authenticated, or for
    #: listeners that do not ask for a token, its first bytes arrived), the
    #: call that drops it at the authentication deadline.
    _authDeadline: Any = None
    established = False

    def makeConnection(self, transport: Any) -> None:
        self.callLater = self.factory.clock.callLater  # type: ignore[method-assign]
        self.setTimeout(self.factory.idleTimeout)
        if self.factory.authTimeout:
            self._authDeadline = self.callLater(self.factory.authTimeout, self._authTimedOut)
        ProtocolWrapper.makeConnection(self, transport)

    def establish(self) -> None:
        """
        The wrapped protocol's peer proved itself (a valid token, or a
        first request): the authentication deadline and the unauthenticated
        budget no longer apply.  Idempotent.
        """
        if self.established:
            return
        self.established = True
        if self._authDeadline is not None and self._authDeadline.active():
            self._authDeadline.cancel()
        self._authDeadline = None
        self.factory.unauthenticated.leave(self)

    def _authTimedOut(self) -> None:
        self._authDeadline = None
        self.factory.authTimedOut += 1
        log.info("dropping connection from {peer}: not authenticated in time", peer=self.getPeer())
        self.abort()

    def abort(self) -> None:
        """
        Drop the connection now (its peer may not be reading).
        """
        transport: Any = self.transport
        abort = getattr(transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            transport.loseConnection()

    def write(self, data: bytes) -> None:
        self.resetTimeout()
        ProtocolWrapper.write(self, data)

    def writeSequence(self, data: Any) -> None:
        self.resetTimeout()
        ProtocolWrapper.writeSequence(self, data)

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        if not self.established and not self.factory.establishedByProtocol:
            # Bytes of the protocol itself: a TLS handshake is complete.
            self.establish()
        ProtocolWrapper.dataReceived(self, data)

    def resumeProducing(self) -> None:
        # Time spent paused by the server is not the client's idleness.
        self.resetTimeout()
        transport: Any = self.transport
        transport.resumeProducing()

    def timeoutConnection(self) -> None:
        self.factory.timedOut += 1
        log.info("dropping idle connection from {peer}", peer=self.getPeer())
        self.abort()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        if self._authDeadline is not None and self._authDeadline.active():
            self._authDeadline.cancel()
        self._authDeadline = None
        self.factory.unauthenticated.leave(self)
        ProtocolWrapper.connectionLost(self, reason)


def establish(transport: Any) -> None:
    """
    Tell the connection guard under C{transport} (a protocol's transport)
    that its peer proved itself; nothing when there is no guard.
    """
    mark = getattr(transport, "establish", None)
    if mark is not None:
        mark()


#: Unauthenticated connections one peer address may hold per listener.
DEFAULT_UNAUTHENTICATED_PER_PEER = 8


class UnauthenticatedBudget:
    """
    The connections of one listener that have not proved themselves yet:
    at most C{perPeer} from one address (more are refused; at most half of
    them), at most
    C{maximum} in all (a new one then takes the place of the oldest, which
    is dropped), so they never hold the slots of authenticated clients and
    one address cannot hold them all.

    @ivar refused: connections refused for their address's share.
    @ivar evicted: connections dropped to make room for newer ones.
    """

    def __init__(
        self,
        maximum: int,
        perPeer: int = DEFAULT_UNAUTHENTICATED_PER_PEER,
        *,
        sharedAddress: Callable[[str], bool] | None = None,
    ) -> None:
        """
        @param perPeer: most places one address may hold; never more than
            half of C{maximum}, so one address cannot take every place.
        @param sharedAddress: whether an address stands for many clients
            (a trusted load balancer or proxy, C{--trusted-proxies}): its
            connections are held to C{maximum} only, not to C{perPeer}.
        """
        self.maximum = maximum
        self.perPeer = min(perPeer, max(1, maximum // 2))
        self.sharedAddress = sharedAddress
        self.refused = 0
        self.evicted = 0
        self._waiting: dict[GuardedProtocol, str] = {}
        self._byPeer: dict[str, int] = {}

    def admits(self, peer: str) -> bool:
        """
        @return: whether a new connection from C{peer} may wait to prove
            itself (its address holds fewer than C{perPeer}); when the
            listener's share is full, the oldest waiting is dropped.
        """
        if self._byPeer.get(peer, 0) >= self.perPeer and not (self.sharedAddress and self.sharedAddress(peer)):
            self.refused += 1
            return False
        while len(self._waiting) >= self.maximum:
            oldest = next(iter(self._waiting))
            self.leave(oldest)
            self.evicted += 1
            oldest.abort()
        return True

    def enter(self, protocol: GuardedProtocol, peer: str) -> None:
        self._waiting[protocol] = peer
        self._byPeer[peer] = self._byPeer.get(peer, 0) + 1

    def leave(self, protocol: GuardedProtocol) -> None:
        peer = self._waiting.pop(protocol, None)
        if peer is not None:
            left = self._byPeer[peer] - 1
            if left:
                self._byPeer[peer] = left
            else:
                del self._byPeer[peer]

    def __len__(self) -> int:
        return len(self._waiting)


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
        authTimeout: float | None = None,
        unauthenticated: UnauthenticatedBudget | None = None,
        establishedByProtocol: bool = False,
    ) -> None:
        """
        @param admit: optional callable returning a reason (C{str}) to refuse a
            new connection, or L{None} to admit it (e.g. low disk).
        @param authTimeout: seconds a connection has to establish itself
            (L{GuardedProtocol.establish}: a TLS handshake and an AUTH line
            or first request), else it is dropped; L{None}: no deadline.
        @param unauthenticated: this listener's budget of connections not
            established yet (by default one that never fills).
        @param establishedByProtocol: the wrapped protocol says when its
            peer proved itself (a token); else its first bytes establish it.
        """
        super().__init__(wrappedFactory)
        if clock is None:
            from twisted.internet import reactor as clock
        self.budget = budget
        self.idleTimeout = idleTimeout
        self.clock = clock
        self.admit = admit
        self.timedOut = 0
        self.authTimeout = authTimeout
        self.authTimedOut = 0
        self.unauthenticated = unauthenticated if unauthenticated is not None else UnauthenticatedBudget(2**62, 2**62)
        self.establishedByProtocol = establishedByProtocol

    def buildProtocol(self, addr: Any) -> Any:
        if self.admit is not None:
            reason = self.admit()
            if reason is not None:
                log.warn("refusing connection from {addr}: {reason}", addr=addr, reason=reason)
                return None
        peer = str(getattr(addr, "host", addr))
        if not self.unauthenticated.admits(peer):
            if self.unauthenticated.refused % 1000 == 1:
                log.warn("refusing connection from {addr}: its address holds too many unauthenticated", addr=addr)
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
        else:
            self.unauthenticated.enter(cast(GuardedProtocol, built), peer)
        return built

    def unregisterProtocol(self, p: Any) -> None:
        WrappingFactory.unregisterProtocol(self, p)  # type: ignore[arg-type]
        self.budget.release()
