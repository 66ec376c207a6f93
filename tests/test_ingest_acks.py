"""
Tests for L{logsvc.ingest.acks} and L{logsvc.ingest.authline} as parts of the
TCP protocol: acknowledged TCP ingest and the TCP token line.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from logsvc.auth import Tokens
from logsvc.formats.gelf import parseGelfFrames
from logsvc.ingest.tcp import IngestFactory
from logsvc.pipeline import Pipeline
from logsvc.store.memory import MemoryStore
from tests.fakes import HeldStore


def ackedFactory(pipeline: Pipeline, **kw: Any) -> IngestFactory:
    """The factory of C{--tcp-acked}."""
    return IngestFactory(pipeline, transport="tcp-acked", acknowledge=True, **kw)


def plainFactory(pipeline: Pipeline, **kw: Any) -> IngestFactory:
    """The factory of C{--tcp} (tokens disabled unless given)."""
    return IngestFactory(pipeline, tokens=kw.pop("tokens", Tokens()), **kw)


def connect(factory: Any, host: str = "192.0.2.1") -> tuple[Any, StringTransport]:
    protocol = factory.buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
    protocol.makeConnection(transport)
    return protocol, transport


class AckedIngestTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = HeldStore()
        self.pipeline = Pipeline(self.store, reactor=self.clock, delay=0)
        self.factory = ackedFactory(self.pipeline, clock=self.clock, maxLineLength=100)
        self.protocol, self.transport = connect(self.factory)

    def test_ackAfterCommitOnly(self) -> None:
        """Nothing is acknowledged until the store commits; then OK counts every line."""
        self.protocol.dataReceived(b"one\ntwo\n{\"message\": \"three\"}\n")
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"")
        self.store.release()
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"OK 3\n")
        self.assertEqual([row[6] for row in self.store.rows], ["one", "two", "three"])

    def test_acksCoalesced(self) -> None:
        """Several reads committed together produce a single cumulative ack write."""
        self.protocol.dataReceived(b"a\nb\n")
        self.protocol.dataReceived(b"c\n")
        self.protocol.dataReceived(b"d\n")
        self.store.release()
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"OK 4\n")

    def test_cumulativeAcrossCommits(self) -> None:
        """Later commits ack the running total of the connection's lines."""
        self.protocol.dataReceived(b"a\nb\n")
        self.store.release()
        self.clock.advance(0)
        self.protocol.dataReceived(b"c\n")
        self.store.release()
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"OK 2\nOK 3\n")

    def test_rejectedAndBlankLinesCount(self) -> None:
        """Blank, invalid and oversize lines are settled lines: they count in n but are not stored."""
        self.protocol.dataReceived(b"\n{\"ts\": \"yesterday\", \"message\": \"x\"}\n" + b"x" * 200 + b"\nok\n")
        self.store.release()
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"OK 4\n")
        self.assertEqual([row[6] for row in self.store.rows], ["ok"])

    def test_oversizeLineDoesNotRunAhead(self) -> None:
        """An oversize line after a pending line is not acked before that line is durable."""
        self.protocol.dataReceived(b"first\n")
        self.protocol.dataReceived(b"y" * 300 + b"\n")
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"")
        self.store.release()
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"OK 2\n")

    def test_storeFailureNeverAcks(self) -> None:
        """A failed append is never acknowledged and the connection is closed so the sender resends."""
        self.protocol.dataReceived(b"a\n")
        self.store.release()
        self.clock.advance(0)
        self.protocol.dataReceived(b"b\n")
        self.store.failAll()
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"OK 1\n")
        self.assertTrue(self.transport.disconnecting)

    def test_unreadAcksPauseReading(self) -> None:
        """When the transport's buffer is full (it pauses us), reading stops and acks wait."""
        self.assertIs(self.transport.producer, self.protocol.acks)
        self.protocol.acks.pauseProducing()
        self.assertEqual(self.transport.producerState, "paused")
        self.protocol.dataReceived(b"a\n")
        self.store.release()
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"")
        self.protocol.acks.resumeProducing()
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(self.transport.value(), b"OK 1\n")

    def test_pauseReasonsCompose(self) -> None:
        """A pipeline resume does not resume a connection still paused for unread acks."""
        self.pipeline.maxPending = 2
        self.protocol.acks.pauseProducing()
        self.protocol.dataReceived(b"a\nb\nc\n")  # pipeline full: paused for it too
        self.store.release()  # pipeline drains and resumes its reason
        self.assertEqual(self.transport.producerState, "paused")
        self.protocol.acks.resumeProducing()
        self.assertEqual(self.transport.producerState, "producing")

    def test_stopReadingAcksThenCloses(self) -> None:
        """A graceful stop pauses reading, acks what the store took, then closes."""
        self.protocol.dataReceived(b"a\nb\n")
        self.protocol.stopReading()
        self.assertEqual(self.transport.producerState, "paused")
        self.assertFalse(self.transport.disconnecting)
        self.store.release()
        self.assertEqual(self.transport.value(), b"OK 2\n")
        self.assertTrue(self.transport.disconnecting)
        # Unregistered, so a transport that paused us closes instead of
        # resuming us once its buffer drains.
        self.assertIsNone(self.transport.producer)


    def test_cutLineNotStored(self) -> None:
        """An unterminated tail at connection loss is dropped, not stored truncated."""
        self.protocol.dataReceived(b"whole\nhal")
        self.protocol.connectionLost(None)
        self.store.release()
        self.assertEqual([row[6] for row in self.store.rows], ["whole"])


    def test_connectionShare(self) -> None:
        """A connection past its share of undurable records stops being read until half are durable."""
        self.factory.connectionShare = 4
        self.protocol.dataReceived(b"a\nb\n")
        self.assertEqual(self.transport.producerState, "producing")
        self.protocol.dataReceived(b"c\nd\n")
        self.assertEqual(self.transport.producerState, "paused")
        self.store.release()
        self.assertEqual(self.transport.producerState, "producing")

    def test_plainConnectionShare(self) -> None:
        """Plain TCP connections are held to their share too."""
        factory = plainFactory(self.pipeline, connectionShare=2)
        protocol, transport = connect(factory)
        protocol.dataReceived(b"a\nb\nc\n")
        self.assertEqual(transport.producerState, "paused")
        self.store.release()
        self.assertEqual(transport.producerState, "producing")


class SenderShareTests(SynchronousTestCase):
    """
    A sender (its token, else its peer address) is held to one share of the
    pipeline however many connections it opens; other senders are not.
    """

    def setUp(self) -> None:
        self.store = HeldStore()
        self.pipeline = Pipeline(self.store, reactor=Clock(), delay=0)

    def test_connectionsOfOnePeerShareOneShare(self) -> None:
        """Two connections of one peer past their common share both pause; a third peer's does not; all resume once durable."""
        factory = plainFactory(self.pipeline, connectionShare=4)
        first, firstTransport = connect(factory, "192.0.2.1")
        second, secondTransport = connect(factory, "192.0.2.1")
        other, otherTransport = connect(factory, "192.0.2.2")
        first.dataReceived(b"a\nb\n")
        self.assertEqual(firstTransport.producerState, "producing")
        second.dataReceived(b"c\nd\n")
        self.assertEqual((firstTransport.producerState, secondTransport.producerState), ("paused", "paused"))
        other.dataReceived(b"e\nf\n")
        self.assertEqual(otherTransport.producerState, "producing")
        self.assertEqual(factory.shares.inflight("peer:192.0.2.1"), 4)
        self.store.release()
        self.assertEqual((firstTransport.producerState, secondTransport.producerState), ("producing", "producing"))
        self.assertEqual(factory.shares.inflight("peer:192.0.2.1"), 0)
        self.assertEqual(len(self.store.rows), 6)

    def test_tokensAreSendersBehindOneAddress(self) -> None:
        """With tokens, two tokens behind one address are two senders: one past its share does not pause the other."""
        tokens = Tokens.fromPairs([("ingest", "in-one"), ("ingest", "in-two")])
        factory = plainFactory(self.pipeline, connectionShare=2, tokens=tokens)
        one, oneTransport = connect(factory, "192.0.2.1")
        two, twoTransport = connect(factory, "192.0.2.1")
        one.dataReceived(b"AUTH in-one\na\nb\n")
        two.dataReceived(b"AUTH in-two\nc\n")
        self.assertEqual((oneTransport.producerState, twoTransport.producerState), ("paused", "producing"))
        self.store.release()
        self.assertEqual(oneTransport.producerState, "producing")

    def test_closedConnectionsForgotten(self) -> None:
        """Once a sender's connections are closed and its records durable, nothing of it is kept."""
        factory = plainFactory(self.pipeline, connectionShare=4)
        protocol, _ = connect(factory, "192.0.2.7")
        protocol.dataReceived(b"a\n")
        protocol.connectionLost(None)
        self.store.release()
        self.assertEqual((factory.shares._inflight, factory.shares._connections), ({}, {}))


class TokenLineTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = MemoryStore()
        self.pipeline = Pipeline(self.store, reactor=self.clock, delay=0)
        self.tokens = Tokens.fromPairs([("ingest", "in-secret"), ("read", "rd-secret")])

    def test_plainWithToken(self) -> None:
        """With tokens, a plain connection whose first line is AUTH and an ingest token is stored."""
        factory = plainFactory(self.pipeline, tokens=self.tokens)
        protocol, transport = connect(factory)
        protocol.dataReceived(b"AUTH in-secret\r\nhello\n")
        self.assertEqual([row[6] for row in self.store.rows], ["hello"])
        self.assertEqual(transport.value(), b"")

    def test_plainWithoutToken(self) -> None:
        """Without an AUTH line the connection is refused and nothing is stored."""
        factory = plainFactory(self.pipeline, tokens=self.tokens)
        protocol, transport = connect(factory)
        protocol.dataReceived(b"hello\nworld\n")
        self.assertEqual(self.store.rows, [])
        self.assertEqual(transport.value(), b"ERR unauthorized\n")
        self.assertTrue(transport.disconnecting)

    def test_readScopeRefused(self) -> None:
        """A read-scoped token cannot ingest over TCP."""
        factory = ackedFactory(self.pipeline, clock=self.clock, tokens=self.tokens)
        protocol, transport = connect(factory)
        protocol.dataReceived(b"AUTH rd-secret\nhello\n")
        self.assertEqual(self.store.rows, [])
        self.assertEqual(transport.value(), b"ERR unauthorized\n")

    def test_ackedAuthLineNotCounted(self) -> None:
        """On an acked connection the AUTH line is not counted in acks."""
        factory = ackedFactory(self.pipeline, clock=self.clock, tokens=self.tokens)
        protocol, transport = connect(factory)
        protocol.dataReceived(b"AUTH in-secret\na\nb\n")
        self.clock.advance(0)
        self.assertEqual(transport.value(), b"OK 2\n")

    def test_authLineNeverStored(self) -> None:
        """Without tokens, an AUTH first line is dropped (never stored, not counted), the rest stored."""
        factory = ackedFactory(self.pipeline, clock=self.clock)
        protocol, transport = connect(factory)
        protocol.dataReceived(b"AUTH sekrit\nhello\n")
        self.clock.advance(0)
        self.assertEqual([row[6] for row in self.store.rows], ["hello"])
        self.assertEqual(transport.value(), b"OK 1\n")

    def test_authWordsStayRecords(self) -> None:
        """Without tokens, a first line that only starts with the word AUTH is an ordinary record."""
        factory = plainFactory(self.pipeline)
        protocol, transport = connect(factory)
        protocol.dataReceived(b"AUTH failed for bob\n")
        self.assertEqual([row[6] for row in self.store.rows], ["AUTH failed for bob"])

    def test_noTokensNoAuthLine(self) -> None:
        """Without a token file, no AUTH line is needed."""
        factory = plainFactory(self.pipeline)
        protocol, transport = connect(factory)
        protocol.dataReceived(b"hello\n")
        self.assertEqual([row[6] for row in self.store.rows], ["hello"])


class GelfAuthTests(SynchronousTestCase):
    def test_gelfNeedsToken(self) -> None:
        """With tokens, the GELF TCP listener also needs the AUTH line; with it, frames are stored."""
        store = MemoryStore()
        pipeline = Pipeline(store, reactor=Clock(), delay=0)
        factory = IngestFactory(
            pipeline, transport="gelf", parser=parseGelfFrames, tokens=Tokens.fromPairs([("ingest", "in")])
        )
        protocol, transport = connect(factory)
        protocol.dataReceived(b'{"short_message": "no", "host": "h"}\x00')
        self.assertEqual((store.rows, transport.value()), ([], b"ERR unauthorized\n"))
        protocol, transport = connect(factory)
        protocol.dataReceived(b'AUTH in\n{"short_message": "yes", "host": "h"}\x00')
        self.assertEqual([row[6] for row in store.rows], ["yes"])


class CompositionTests(SynchronousTestCase):
    def test_gelfAcknowledgedWithToken(self) -> None:
        """Parser, token line and acks compose: GELF frames behind AUTH are acked once durable."""
        store = HeldStore()
        clock = Clock()
        pipeline = Pipeline(store, reactor=clock, delay=0)
        factory = IngestFactory(
            pipeline,
            transport="gelf",
            parser=parseGelfFrames,
            acknowledge=True,
            clock=clock,
            tokens=Tokens.fromPairs([("ingest", "in")]),
        )
        protocol, transport = connect(factory)
        protocol.dataReceived(b'AUTH in\n{"short_message": "a"}\x00{"host": "no message"}\x00')
        clock.advance(0)
        self.assertEqual(transport.value(), b"")
        store.release()
        clock.advance(0)
        self.assertEqual(transport.value(), b"OK 2\n")
        self.assertEqual([row[6] for row in store.rows], ["a"])
