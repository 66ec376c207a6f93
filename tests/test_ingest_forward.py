"""
Tests for L{logsvc.ingest.forward}: the Fluent forward listener over a
StringTransport, with a real pipeline.
"""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from logsvc.auth import Tokens, parseTokens
from logsvc.formats.forward import EventTime, packEventTime
from logsvc.ingest.forward import ForwardFactory, ForwardProtocol, sharedKeyDigest
from logsvc.pipeline import Pipeline
from logsvc.record import Record
from logsvc.store.memory import MemoryStore
from tests.fakes import HeldStore

PEER = IPv4Address("TCP", "192.0.2.5", 50000)
T = 1_767_323_045


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True, default=packEventTime)


def answers(transport: StringTransport) -> list[Any]:
    stream = msgpack.Unpacker(raw=False)
    stream.feed(transport.value())
    return list(stream)


class HoldingStore(HeldStore):
    """A HeldStore that commits at once while C{holding} is false."""

    holding = False

    def append(self, records: list[Record]) -> Deferred[int]:
        if self.holding:
            return HeldStore.append(self, records)
        return MemoryStore.append(self, records)


class ForwardTestCase(SynchronousTestCase):
    tokens: Tokens | None = None

    def setUp(self) -> None:
        self.store = HoldingStore()
        self.pipeline = Pipeline(self.store, reactor=Clock(), delay=0)
        self.factory = ForwardFactory(self.pipeline, tokens=self.tokens, hostname="logsvc-test", maxMessage=4096)
        self.protocol, self.transport = self.connect()

    def connect(self) -> tuple[ForwardProtocol, StringTransport]:
        protocol = self.factory.buildProtocol(PEER)
        assert isinstance(protocol, ForwardProtocol)
        transport = StringTransport(peerAddress=PEER)
        protocol.makeConnection(transport)
        return protocol, transport

    def messages(self) -> list[str]:
        return [row[6] for row in self.store.rows]

    def rejected(self, reason: str) -> float:
        value = self.pipeline.metrics.registry.get_sample_value(
            "logsvc_records_rejected_total", {"transport": "forward", "reason": reason}
        )
        return value or 0.0


class StreamTests(ForwardTestCase):
    def test_splitAnywhere(self) -> None:
        """Messages split across reads at any byte are stored whole, in order, from the tag as service."""
        data = b"".join(pack(["app", EventTime(T, n), {"message": f"m{n}"}]) for n in range(3)) + pack(None)
        for i in range(len(data)):
            self.protocol.dataReceived(data[i : i + 1])
        self.assertEqual(self.messages(), ["m0", "m1", "m2"])
        self.assertEqual({row[5] for row in self.store.rows}, {"app"})
        self.assertEqual(self.transport.value(), b"")

    def test_invalidMessageCounted(self) -> None:
        """A value that is no forward message is counted; the connection goes on."""
        self.protocol.dataReceived(pack(["t"]) + pack(["t", T, {"log": "ok"}]))
        self.assertEqual((self.messages(), self.rejected("invalid")), (["ok"], 1))
        self.assertFalse(self.transport.disconnecting)

    def test_msgpackBombCloses(self) -> None:
        """A msgpack bomb is refused, counted and logged; the stream cannot go on, so it is closed."""
        self.protocol.dataReceived(pack(["t", T, {"log": "before"}]) + b"\x93\xa1t\xdd\xff\xff\xff\xff")
        self.assertEqual(self.messages(), ["before"])
        self.assertEqual(self.rejected("invalid"), 1)
        self.assertTrue(self.transport.disconnecting)

    def test_unhashableKeyCloses(self) -> None:
        """A map keyed by an array (msgpack allows it, Python cannot hold it) is refused and the connection closed."""
        self.protocol.dataReceived(b"\x81\x90\xc0")
        self.assertEqual(self.rejected("invalid"), 1)
        self.assertTrue(self.transport.disconnecting)

    def test_oversizeCloses(self) -> None:
        """A message over maxMessage is refused as it arrives, without buffering it whole."""
        self.protocol.dataReceived(b"\x93\xa1t\xc6\x00\x01\x00\x00" + b"x" * 5000)
        self.assertEqual(self.rejected("invalid"), 1)
        self.assertTrue(self.transport.disconnecting)


class AckTests(ForwardTestCase):
    def test_ackOnceDurable(self) -> None:
        """A chunk is answered {"ack": chunk} only once its entries are durable."""
        self.store.holding = True
        self.protocol.dataReceived(pack(["t", [[T, {"log": "a"}], [T, {"log": "b"}]], {"chunk": "Y2h1bms="}]))
        self.assertEqual(self.transport.value(), b"")
        self.store.release()
        self.assertEqual(answers(self.transport), [{"ack": "Y2h1bms="}])
        self.assertEqual(self.messages(), ["a", "b"])

    def test_rejectedChunkAcked(self) -> None:
        """A chunk whose entries are all refused for good is acked at once (resending cannot help)."""
        self.protocol.dataReceived(pack(["t", [[T, "not a map"]], {"chunk": "eA=="}]))
        self.assertEqual(answers(self.transport), [{"ack": "eA=="}])

    def test_storeFailureNotAcked(self) -> None:
        """A chunk the store failed is never acked, and the connection is closed so the sender resends."""
        self.store.holding = True
        self.protocol.dataReceived(pack(["t", T, {"log": "a"}, {"chunk": "MQ=="}]))
        self.store.failAll()
        self.assertEqual(self.transport.value(), b"")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.rejected("store"), 1)

    def test_stopAcksThenCloses(self) -> None:
        """A stop reads no more, answers pending acks once durable, then closes."""
        self.store.holding = True
        self.protocol.dataReceived(pack(["t", T, {"log": "a"}, {"chunk": "MQ=="}]))
        self.protocol.stopReading()
        self.assertFalse(self.transport.disconnecting)
        self.store.release()
        self.assertEqual(answers(self.transport), [{"ack": "MQ=="}])
        self.assertTrue(self.transport.disconnecting)

    def test_stopWithoutAcksKeepsReading(self) -> None:
        """A sender that never asked for acks is read on at a stop, as on the line listener."""
        self.protocol.dataReceived(pack(["t", T, {"log": "a"}]))
        self.protocol.stopReading()
        self.protocol.dataReceived(pack(["t", T, {"log": "b"}]))
        self.assertEqual(self.messages(), ["a", "b"])
        self.assertFalse(self.transport.disconnecting)

    def test_pausedWhilePipelineFull(self) -> None:
        """A full pipeline pauses reading of forward connections too."""
        self.pipeline.maxPending = 2
        self.store.holding = True
        self.protocol.dataReceived(pack(["t", [[T, {"log": "a"}], [T, {"log": "b"}]]]))
        self.assertEqual(self.transport.producerState, "paused")
        self.store.release()
        self.assertEqual(self.transport.producerState, "producing")


class HandshakeTests(ForwardTestCase):
    def setUp(self) -> None:
        self.tokens = Tokens.fromPairs([("ingest", "first-key"), ("ingest", "shared-key"), ("read", "read-key")])
        super().setUp()

    def helo(self, transport: StringTransport) -> bytes:
        (helo,) = answers(transport)
        self.assertEqual((helo[0], helo[1]["auth"], helo[1]["keepalive"]), ("HELO", "", True))
        transport.clear()
        nonce: bytes = helo[1]["nonce"]
        self.assertEqual(len(nonce), 16)
        return nonce

    def ping(self, nonce: bytes, key: bytes, salt: bytes = b"salt") -> bytes:
        return pack(["PING", "client-host", salt, sharedKeyDigest(salt, b"client-host", nonce, key), "", ""])

    def test_goodKey(self) -> None:
        """A PING with an ingest token as shared key gets PONG true with the server's digest; then events are taken."""
        nonce = self.helo(self.transport)
        self.protocol.dataReceived(self.ping(nonce, b"shared-key") + pack(["t", T, {"log": "in"}]))
        ((pong, ok, reason, host, digest),) = answers(self.transport)
        self.assertEqual((pong, ok, reason, host), ("PONG", True, "", "logsvc-test"))
        self.assertEqual(digest, sharedKeyDigest(b"salt", b"logsvc-test", nonce, b"shared-key"))
        self.assertEqual(self.messages(), ["in"])

    def test_wrongKey(self) -> None:
        """A PING with a read token, or any other key, gets PONG false and the connection is closed."""
        for key in (b"read-key", b"guess"):
            protocol, transport = self.connect()
            nonce = self.helo(transport)
            protocol.dataReceived(self.ping(nonce, key) + pack(["t", T, {"log": "no"}]))
            ((pong, ok, reason, _, _),) = answers(transport)
            self.assertEqual((pong, ok, reason), ("PONG", False, "shared_key mismatch"))
            self.assertTrue(transport.disconnecting)
        self.assertEqual(self.messages(), [])
        self.assertEqual(self.rejected("unauthorized"), 2)

    def test_keyRevoked(self) -> None:
        """A reload of the token file that removes the shared key closes the connection; nothing more is stored."""
        nonce = self.helo(self.transport)
        self.protocol.dataReceived(self.ping(nonce, b"shared-key") + pack(["t", T, {"log": "before"}]))
        assert self.tokens is not None
        self.tokens.replace(parseTokens("ingest first-key\n"))
        self.assertTrue(self.transport.disconnecting)
        self.protocol.dataReceived(pack(["t", T, {"log": "after"}]))
        self.assertEqual(self.messages(), ["before"])
        self.assertEqual(self.rejected("revoked"), 1)

    def test_eventsBeforePing(self) -> None:
        """Events without the handshake are refused and nothing is stored."""
        self.helo(self.transport)
        self.protocol.dataReceived(pack(["t", T, {"log": "sneak"}]))
        self.assertEqual(self.messages(), [])
        self.assertTrue(self.transport.disconnecting)

    def test_nonceFresh(self) -> None:
        """Each connection gets its own nonce, so a recorded PING cannot be replayed."""
        _, other = self.connect()
        self.assertNotEqual(self.helo(self.transport), self.helo(other))


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True),
    st.text(max_size=20), st.binary(max_size=20),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers(-(2**63), 2**64 - 1), st.binary(max_size=8)), inner, max_size=4),
    ),
    max_leaves=20,
)
_messages = st.one_of(
    _values,
    st.tuples(st.text(max_size=8), st.integers(0, 2**32), _values).map(list),
    st.tuples(st.text(max_size=8), st.lists(st.tuples(st.integers(0, 2**33), _values).map(list), max_size=4)).map(list),
    st.tuples(st.binary(max_size=8), st.binary(max_size=60), st.dictionaries(st.sampled_from(["chunk", "compressed", "size"]), _values, max_size=3)).map(list),
)


class FuzzTests(ForwardTestCase):
    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(_messages, max_size=5), st.binary(max_size=40), st.integers(1, 64))
    def test_nothingEscapes(self, values: list[Any], garbage: bytes, cut: int) -> None:
        """Any msgpack values, then any bytes, in any read sizes: records, rejections or a close; never an exception."""
        protocol, transport = self.connect()
        data = b"".join(msgpack.packb(v, use_bin_type=True) for v in values) + garbage
        for i in range(0, len(data), cut):
            protocol.dataReceived(data[i : i + cut])
        protocol.connectionLost(None)
