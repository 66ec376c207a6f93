"""
Tests for L{logsvc.limits}: composed pauses, the connection budget, idle
timeouts and the open-file limit.
"""

from __future__ import annotations

import resource

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from logsvc.limits import (
    ConnectionBudget,
    FlowControl,
    GuardedFactory,
    PauseGate,
    defaultMaxConnections,
    raiseFileLimit,
)

ADDR = IPv4Address("TCP", "127.0.0.1", 5555)


class PauseGateTests(SynchronousTestCase):
    def test_lastResumeWins(self) -> None:
        """The target resumes only once every reason that paused it has resumed."""
        transport = StringTransport()
        gate = PauseGate(transport)
        gate.producer("pipeline").pauseProducing()
        gate.producer("acks").pauseProducing()
        gate.producer("pipeline").resumeProducing()
        self.assertEqual(transport.producerState, "paused")
        gate.producer("acks").resumeProducing()
        self.assertEqual(transport.producerState, "producing")

    def test_repeatedPauseIsOneReason(self) -> None:
        """Pausing twice for one reason needs one resume, not two."""
        transport = StringTransport()
        gate = PauseGate(transport)
        gate.pause("disk")
        gate.pause("disk")
        gate.resume("disk")
        self.assertEqual(transport.producerState, "producing")
        self.assertFalse(gate.paused)

    def test_resumeUnknownReasonIgnored(self) -> None:
        """Resuming a reason that never paused does not resume another's pause."""
        transport = StringTransport()
        gate = PauseGate(transport)
        gate.pause("acks")
        gate.resume("pipeline")
        self.assertEqual(transport.producerState, "paused")


class FlowControlTests(SynchronousTestCase):
    def test_switch(self) -> None:
        """A flow control pauses registered producers while on, including ones registered later."""
        control = FlowControl()
        early, late = StringTransport(), StringTransport()
        control.registerProducer(early)
        control.set(True)
        control.registerProducer(late)
        self.assertEqual((early.producerState, late.producerState), ("paused", "paused"))
        control.set(False)
        self.assertEqual((early.producerState, late.producerState), ("producing", "producing"))


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class GuardedFactoryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.budget = ConnectionBudget(2)
        self.factory = GuardedFactory(
            Factory.forProtocol(Echo), self.budget, idleTimeout=10, clock=self.clock
        )

    def connect(self) -> tuple[Protocol | None, StringTransport]:
        transport = StringTransport()
        protocol = self.factory.buildProtocol(ADDR)
        if protocol is not None:
            protocol.makeConnection(transport)
        return protocol, transport

    def test_budgetRefusesOverflow(self) -> None:
        """Past max-connections a new connection is refused; a closed one frees its slot."""
        first, _ = self.connect()
        self.connect()
        refused, _ = self.connect()
        self.assertIsNone(refused)
        self.assertEqual(self.budget.refused, 1)
        assert first is not None
        first.connectionLost(None)  # type: ignore[arg-type]
        again, _ = self.connect()
        self.assertIsNotNone(again)

    def test_budgetShared(self) -> None:
        """Two listeners sharing a budget count against one ceiling."""
        other = GuardedFactory(Factory.forProtocol(Echo), self.budget, clock=self.clock)
        self.connect()
        self.connect()
        self.assertIsNone(other.buildProtocol(ADDR))

    def test_idleTimeoutAborts(self) -> None:
        """A connection silent for the idle timeout is aborted; traffic resets the clock."""
        protocol, transport = self.connect()
        assert protocol is not None
        self.clock.advance(9)
        protocol.dataReceived(b"x")
        self.clock.advance(9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1.5)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.factory.timedOut, 1)

    def test_admitRefuses(self) -> None:
        """An admit check that names a reason refuses the connection without using the budget."""
        self.factory.admit = lambda: "low disk"
        protocol, _ = self.connect()
        self.assertIsNone(protocol)
        self.assertEqual(self.budget.open, 0)


class FileLimitTests(SynchronousTestCase):
    def test_raisesSoftToHard(self) -> None:
        """raiseFileLimit lifts a lowered soft limit back to the hard limit."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard < 64:
            raise self.skipTest("needs a finite hard limit")
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard - 1), hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        self.assertEqual(raiseFileLimit(), (hard, hard))

    def test_defaultMaxConnections(self) -> None:
        """The default budget leaves a reserve, and a second descriptor per connection, below the soft limit."""
        self.assertEqual(defaultMaxConnections(20000), (20000 - 128) // 2)
        self.assertEqual(defaultMaxConnections(64), 16)
