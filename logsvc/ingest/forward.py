# -*- test-case-name: tests.test_ingest_forward -*-
"""
The Fluent forward listener (C{--forward tcp:24224}): the TCP ingest
protocol with msgpack framing (L{logsvc.formats.forward}), the forward
protocol's shared-key handshake in place of the AUTH line, and its per-chunk
acknowledgements in place of C{OK <n>}.

  - Framing: a bounded msgpack stream decoder (L{unpacker}); a value it
    refuses (over C{maxMessage} bytes, a header claiming more elements than
    that, nesting deeper than msgpack's stack, a byte no msgpack value starts
    with) ends the connection, counted and logged: a msgpack stream cannot be
    resynchronised.
  - Handshake: with tokens enabled, the server sends C{HELO} with a fresh
    nonce; the client's C{PING} must carry
    C{sha512_hex(salt + client_hostname + nonce + key)} for an ingest token
    as C{key}; the server answers C{PONG} (with its own digest, so the client
    knows the server holds the key too), or C{PONG false} and closes.  A
    reload of the token file that removes the key closes the connection.
  - Acknowledgements: a message with a C{chunk} option is answered
    C{{"ack": chunk}} once its entries are durable (or refused for good); a
    store failure closes the connection unanswered, so the sender resends.
  - Heartbeats: C{nil} values are taken and ignored; a TCP connect and close
    (Fluentd's default heartbeat) costs nothing.  Fluentd's UDP heartbeat
    is answered beside this listener (L{logsvc.ingest.heartbeat}).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
from typing import Any

import msgpack
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from logsvc.auth import INGEST, Tokens
from logsvc.formats.forward import (
    DECODE_ERRORS,
    DecodeError,
    ForwardMessage,
    decodeMessage,
    unpacker,
)
from logsvc.ingest.tcp import IngestFactory, IngestProtocol
from logsvc.pipeline import Pipeline
from logsvc.times import nowMicros

__all__ = ["DEFAULT_MAX_MESSAGE", "ForwardFactory", "ForwardProtocol", "sharedKeyDigest"]

#: The largest forward message (and the largest a packed stream may inflate
#: to) by default, bytes.
DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024


def sharedKeyDigest(salt: bytes, hostname: bytes, nonce: bytes, key: bytes) -> str:
    """
    @return: the forward protocol's shared-key digest,
        C{sha512_hex(salt + hostname + nonce + key)}.
    """
    return hashlib.sha512(salt + hostname + nonce + key).hexdigest()


class ForwardProtocol(IngestProtocol):
    """
    One forward connection; see the module docstring.  Connection tracking,
    flow control, the per-connection share and the sink are
    L{IngestProtocol}'s; framing, authentication and acknowledgement are the
    forward protocol's.
    """

    factory: ForwardFactory
    _nonce = b""
    _authenticated = True
    _closing = False
    #: Whether the sender asked for acks: only then does a stop close the
    #: connection early (the sender resends what is unacknowledged).
    _acknowledged = False

    def connectionMade(self) -> None:
        IngestProtocol.connectionMade(self)
        self.stream = unpacker(self.factory.maxMessage, raw=True)
        self._waiting: set[Deferred[Any]] = set()
        if self.factory.tokens.enabled:
            self._authenticated = False
            self._nonce = os.urandom(16)
            self._send(["HELO", {"nonce": self._nonce, "auth": "", "keepalive": True}])

    def _send(self, value: Any) -> None:
        if self.transport is not None and not self._closing:
            self.transport.write(msgpack.packb(value, use_bin_type=True))

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self.stream.feed(data)
            for value in self.stream:
                self.valueReceived(value)
                if self._closing:
                    return
        except DECODE_ERRORS as e:
            self._refuseStream(f"{type(e).__name__}: {e}")

    def valueReceived(self, value: Any) -> None:
        """
        Handle one msgpack value of the stream.
        """
        if not self._authenticated:
            self._ping(value)
            return
        try:
            message = decodeMessage(value, maxBytes=self.factory.maxMessage)
        except DecodeError as e:
            self.sink.reject([(repr(value)[:200].encode(), str(e))], peer=self.peer, quota=self.quota)
            return
        if message is not None:
            self._take(message)

    def _take(self, message: ForwardMessage) -> None:
        records, rejected = message.records(self.peer, nowMicros())
        if rejected:
            self.sink.reject(rejected, peer=self.peer, quota=self.quota)
        chunk = message.chunk
        if not records:
            if chunk is not None:
                self._ack(chunk)
            return
        d = self._held(len(records), self.sink.submit(records))
        if chunk is None:
            d.addErrback(self._notStored)
            return
        self._acknowledged = True
        self._waiting.add(d)
        d.addBoth(self._settled, d)
        d.addCallbacks(lambda _: self._ack(chunk), self._ackFailed)

    def _settled(self, result: Any, d: Deferred[Any]) -> Any:
        self._waiting.discard(d)
        if self._closing and not self._waiting:
            self._closeNow()
        return result

    def _ack(self, chunk: Any) -> None:
        # A str on the wire, as the chunk id came (Fluentd and Fluent Bit
        # compare it with the base64 text they sent).
        if self.transport is not None:
            self.transport.write(msgpack.packb({"ack": chunk}, use_bin_type=False))

    def _ackFailed(self, failure: Failure) -> None:
        self.log.error("store failed; closing forward connection from {peer} unacknowledged", peer=self.peer)
        self._closing = True
        self._closeNow()

    # The handshake

    def _ping(self, value: Any) -> None:
        if not (isinstance(value, (list, tuple)) and len(value) == 6 and value[0] == b"PING"):
            self._refuseHandshake("expected PING")
            return
        _, hostname, salt, digest, _user, _password = value
        if not all(isinstance(part, bytes) for part in (hostname, salt, digest)):
            self._refuseHandshake("malformed PING")
            return
        key = self.factory.matchingKey(salt, hostname, self._nonce, digest)
        if key is None:
            self._refuseHandshake("shared_key mismatch")
            return
        self._authenticated = True
        # The token names the sender for its share (IngestProtocol.senderKey).
        self.auth.token = key
        self._tokenHeld = self.factory.tokens.hold(key, INGEST, self._revoked)
        server = self.factory.hostname
        self._send(["PONG", True, "", server, sharedKeyDigest(salt, server.encode(), self._nonce, key)])

    def _refuseHandshake(self, reason: str) -> None:
        self.sink.refuse("unauthorized")
        self.log.warn("refused forward connection from {peer}: {reason}", peer=self.peer, reason=reason)
        self._send(["PONG", False, reason, self.factory.hostname, ""])
        self._closing = True
        self._refused = True
        self._closeNow()

    def _revoked(self) -> None:
        # The shared key's token was removed (SIGHUP): store nothing more
        # from this sender.  The forward protocol has no way to say why.
        self._closing = True
        self._refused = True
        self.sink.refuse("revoked")
        self.log.warn("closing forward connection from {peer}: its shared key was revoked", peer=self.peer)
        self._closeNow()

    def _refuseStream(self, why: str) -> None:
        self.sink.reject([(b"", why)], peer=self.peer, quota=self.quota)
        self.log.warn("closing forward connection from {peer}: undecodable stream", peer=self.peer)
        self._closing = True
        self.stream = unpacker(1)
        if not self._waiting:
            self._closeNow()

    def stopReading(self) -> None:
        """
        For a graceful stop, on a connection whose sender asks for acks:
        read no more; answer the acks of what is pending once durable, then
        close.  Unacknowledged chunks are resent by the sender to the next
        server.  Other connections are read until their senders close, as on
        the line listener.
        """
        if not self._acknowledged:
            return
        self.gate.pause("stopping")
        self._closing = True
        if not self._waiting:
            self._closeNow()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._closing = True
        IngestProtocol.connectionLost(self, reason)


class ForwardFactory(IngestFactory):
    """
    The forward listener's factory.

    @ivar hostname: the server's name in C{PONG}.
    @ivar maxMessage: the largest message, and the most a packed stream may
        inflate to, in bytes.
    """

    protocol = ForwardProtocol  # type: ignore[assignment]

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        tokens: Tokens | None = None,
        maxMessage: int = DEFAULT_MAX_MESSAGE,
        hostname: str | None = None,
        connectionShare: int = 0,
    ) -> None:
        super().__init__(pipeline, transport="forward", tokens=tokens, connectionShare=connectionShare)
        self.maxMessage = maxMessage
        self.hostname = hostname if hostname is not None else socket.gethostname()

    def matchingKey(self, salt: bytes, hostname: bytes, nonce: bytes, digest: bytes) -> bytes | None:
        """
        @return: the ingest token that makes C{digest} the client's shared-key
            digest, or L{None}.  Every token is tried, each compared in
            constant time.
        """
        found = None
        for key in self.tokens.scopeTokens(INGEST):
            expected = sharedKeyDigest(salt, hostname, nonce, key).encode()
            if hmac.compare_digest(expected, digest):
                found = key
        return found
