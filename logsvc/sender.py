"""
At-least-once delivery to an acknowledged TCP listener (C{--tcp-acked}).

    sender = TCPSender("tcp:host=127.0.0.1:port=5141")
    sender.startService()
    sender.send({"message": "hello", "level": "warning"})
    yield sender.flush()          # fires once the server has it durably

L{TCPSender} keeps every record until the server acknowledges it (C{OK <n>},
see L{logsvc.ingest.acks}), reconnects with exponential backoff when the
connection fails, and on each new connection resends, in order, everything
not yet acknowledged.  A record whose ack was lost with the connection is
therefore sent again: delivery is at-least-once, and a receiver that must not
count a record twice should give records an id field of its own.

Memory is bounded by C{maxQueued} records.  When that many are waiting, the
policy C{whenFull} applies:
  - C{"drop-oldest"} (the default): the oldest waiting record is dropped and
    counted in L{TCPSender.dropped}; the newest records are kept, and the
    application is never slowed or failed by logging.
  - C{"raise"}: L{send} raises L{SenderFull} and keeps what it has.
(There is no "block": blocking the reactor thread would stop the very
connection that drains the queue; a caller that wants to wait can use
L{flush}.)

L{LogsvcObserver} is a C{twisted.logger} observer built on a sender: it turns
each log event into a record and queues it; it never blocks and never raises
into the logging system.
"""

from __future__ import annotations

import itertools
import socket
from collections import deque
from collections.abc import Mapping
from typing import Any

import orjson
from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import clientFromString, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import ILogObserver, Logger, formatEvent
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from logsvc.record import jsonSafe

log = Logger()

WHEN_FULL = ("drop-oldest", "raise")


class SenderFull(Exception):
    """
    The sender holds C{maxQueued} unacknowledged records (policy C{"raise"}).
    """


def tlsContext(hostname: str, caFile: str | None = None, *, clientCert: str | None = None) -> Any:
    """
    Build a TLS client connection creator that verifies the server as
    C{hostname}, trusting the PEM certificate(s) in C{caFile} (or the
    platform's trust store when L{None}).

    @param clientCert: a PEM file holding a client certificate and its key,
        for servers that ask for one.
    """
    from twisted.internet import ssl

    trustRoot: Any = None
    if caFile is not None:
        with open(caFile, "rb") as f:
            trustRoot = ssl.Certificate.loadPEM(f.read())
    else:
        trustRoot = ssl.platformTrust()
    clientCertificate = None
    if clientCert is not None:
        with open(clientCert, "rb") as f:
            clientCertificate = ssl.PrivateCertificate.loadPEM(f.read())
    return ssl.optionsForClientTLS(hostname, trustRoot=trustRoot, clientCertificate=clientCertificate)


def encodeRecord(record: Mapping[str, Any] | str) -> bytes:
    """
    @return: the wire line (with its LF) for a record: a mapping as a JSON
        object, a string as the message of one (so a newline in it cannot
        split the record).
    """
    if isinstance(record, str):
        record = {"message": record}
    return orjson.dumps(dict(record), default=str) + b"\n"


class _AckReader(LineOnlyReceiver):
    """
    One connection of a L{TCPSender}: reads C{OK <n>} lines.
    """

    delimiter = b"\n"
    MAX_LENGTH = 4096
    sender: TCPSender

    def connectionMade(self) -> None:
        transport: Any = self.transport
        if hasattr(transport, "setTcpKeepAlive"):
            transport.setTcpKeepAlive(True)
        self.sender._connected(self)

    def lineReceived(self, line: bytes) -> None:
        line = line.rstrip(b"\r")
        if line.startswith(b"OK "):
            try:
                count = int(line[3:])
            except ValueError:
                log.warn("bad ack from server: {line!r}", line=line[:80])
                return
            self.sender._acked(self, count)
        elif line.startswith(b"ERR"):
            log.error("server refused the connection: {line}", line=line.decode("ascii", "replace")[:200])

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.sender._disconnected(self)


class _AckReaderFactory(Factory):
    noisy = False

    def __init__(self, sender: TCPSender) -> None:
        self.sender = sender

    def buildProtocol(self, addr: Any) -> _AckReader:
        protocol = _AckReader()
        protocol.sender = self.sender
        protocol.factory = self
        return protocol


class TCPSender(Service):
    """
    At-least-once sender of records to C{--tcp-acked}; see the module
    docstring.  Start it with C{startService} (or make it a child of your
    application's service); C{stopService} closes the connection (what is not
    acknowledged yet is not sent anymore: call L{flush} first).

    @ivar dropped: records dropped under the C{"drop-oldest"} policy.
    @ivar acknowledged: records the server acknowledged so far.
    @ivar connections: connections made so far (the first and reconnects).
    """

    def __init__(
        self,
        endpoint: IStreamClientEndpoint | str,
        *,
        reactor: Any = None,
        maxQueued: int = 100_000,
        whenFull: str = "drop-oldest",
        token: str | None = None,
        tls: Any = None,
        window: int = 10_000,
        retryPolicy: Any = None,
    ) -> None:
        """
        @param endpoint: a client endpoint, or an endpoint string such as
            C{"tcp:host=127.0.0.1:port=5141"}.
        @param token: an C{ingest} token, sent as the first line.
        @param tls: a TLS client connection creator (see L{tlsContext}); the
            endpoint is wrapped in TLS with it.
        @param window: most records written and not yet acknowledged.
        @param retryPolicy: seconds to wait before reconnect attempt n
            (default: exponential backoff from 0.1 s to 30 s with jitter).
        """
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        if whenFull not in WHEN_FULL:
            raise ValueError(f"whenFull must be one of {WHEN_FULL}")
        if maxQueued <= 0 or window <= 0:
            raise ValueError("maxQueued and window must be positive")
        connectTo: IStreamClientEndpoint = (
            clientFromString(reactor, endpoint) if isinstance(endpoint, str) else endpoint
        )
        if tls is not None:
            connectTo = wrapClientTLS(tls, connectTo)
        self.reactor = reactor
        self.maxQueued = maxQueued
        self.whenFull = whenFull
        self.window = window
        self._auth = b"AUTH " + token.encode("ascii") + b"\n" if token else b""
        self._client = ClientService(
            connectTo,
            _AckReaderFactory(self),
            retryPolicy=retryPolicy or backoffPolicy(initialDelay=0.1, maxDelay=30.0),
            clock=reactor,
        )
        self._pending: deque[bytes] = deque()
        self._protocol: _AckReader | None = None
        self._written = 0
        self._ackedOnConnection = 0
        self._skip = 0
        self._removed = 0
        self._added = 0
        self._flushes: deque[tuple[int, Deferred[None]]] = deque()
        self._pumpCall: Any = None
        self.dropped = 0
        self.acknowledged = 0
        self.connections = 0

    # Lifetime

    def startService(self) -> None:
        Service.startService(self)
        self._client.startService()

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        if self._pumpCall is not None and self._pumpCall.active():
            self._pumpCall.cancel()
        self._pumpCall = None
        return self._client.stopService()  # type: ignore[no-any-return]

    # Sending

    @property
    def queued(self) -> int:
        """
        Records held: not yet acknowledged (written or not).
        """
        return len(self._pending)

    def send(self, record: Mapping[str, Any] | str) -> None:
        """
        Queue one record (a mapping, or a message string) for delivery.

        @raise SenderFull: under the C{"raise"} policy when C{maxQueued}
            records are waiting.
        """
        self.sendLine(encodeRecord(record))

    def sendLine(self, line: bytes) -> None:
        """
        Queue one wire line, ending in LF, holding no other LF.
        """
        if len(self._pending) >= self.maxQueued:
            if self.whenFull == "raise":
                raise SenderFull(f"{len(self._pending)} records wait for acknowledgement")
            self._pending.popleft()
            self.dropped += 1
            self._removed += 1
            if self._written:
                # Already on the wire: the server will count it in its acks.
                self._written -= 1
                self._skip += 1
            self._fireFlushes()
        self._pending.append(line)
        self._added += 1
        if self._protocol is not None and self._pumpCall is None and self._written < self.window:
            self._pumpCall = self.reactor.callLater(0, self._pump)

    def flush(self) -> Deferred[None]:
        """
        @return: a Deferred firing once every record queued before this call
            is acknowledged (or dropped under C{"drop-oldest"}).  It waits
            across reconnects; it never fails.
        """
        if self._removed >= self._added:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._flushes.append((self._added, d))
        return d

    def _pump(self) -> None:
        self._pumpCall = None
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            return
        end = min(len(self._pending), self.window)
        if end <= self._written:
            return
        chunk = b"".join(itertools.islice(self._pending, self._written, end))
        self._written = end
        protocol.transport.write(chunk)

    # Connection events

    def _connected(self, protocol: _AckReader) -> None:
        self.connections += 1
        self._protocol = protocol
        self._written = 0
        self._ackedOnConnection = 0
        self._skip = 0
        if self._auth:
            assert protocol.transport is not None
            protocol.transport.write(self._auth)
        self._pump()

    def _acked(self, protocol: _AckReader, count: int) -> None:
        if protocol is not self._protocol or count <= self._ackedOnConnection:
            return
        delta = count - self._ackedOnConnection
        self._ackedOnConnection = count
        skipped = min(self._skip, delta)
        self._skip -= skipped
        done = min(delta - skipped, len(self._pending))
        for _ in range(done):
            self._pending.popleft()
        self._written = max(0, self._written - done)
        self._removed += done
        self.acknowledged += done
        self._fireFlushes()
        self._pump()

    def _disconnected(self, protocol: _AckReader) -> None:
        if protocol is self._protocol:
            # What was written and not acknowledged is resent on the next
            # connection, in order.
            self._protocol = None
            self._written = 0
            self._skip = 0

    def _fireFlushes(self) -> None:
        while self._flushes and self._flushes[0][0] <= self._removed:
            self._flushes.popleft()[1].callback(None)


#: Keys of legacy C{twisted.python.log.msg} / C{log.err} events, which
#: describe the event rather than carry the application's data.
LEGACY_KEYS = frozenset({"message", "isError", "system", "time", "format", "why", "failure", "printed"})


@implementer(ILogObserver)
class LogsvcObserver:
    """
    A C{twisted.logger} observer shipping events through a L{TCPSender}.

        sender = TCPSender("tcp:host=logs.example:port=5141")
        sender.setServiceParent(application)
        globalLogBeginner.beginLoggingTo([LogsvcObserver(sender, service="api")])

    Each event becomes C{{"message", "level", "ts", "service", "host",
    "namespace"}} plus C{"traceback"} for failures, and the event's own keys
    become fields: C{log.info("job {job} started", job=42)} arrives with
    C{fields.job == 42}.  Every key is kept but twisted.logger's own
    (C{log_*}) and those of legacy C{log.msg} events (L{LEGACY_KEYS}); a
    value JSON cannot hold is sent as its C{repr}; a key never overrides the
    record's own message, level, time, service or source.  It only queues (the
    sender's policy bounds memory), so logging never blocks or fails the app;
    events the sender itself emits while queueing are not shipped, so it
    cannot feed on itself.

    @ivar failed: events that could not be queued.
    """

    _LEVELS = {"debug": "debug", "info": "info", "warn": "warning", "error": "error", "critical": "critical"}

    def __init__(self, sender: TCPSender, *, service: str | None = None, host: str | None = None) -> None:
        self.sender = sender
        self.service = service
        self.host = host or socket.gethostname()
        self.failed = 0
        self._inside = False

    def __call__(self, event: Mapping[str, Any]) -> None:
        if self._inside:
            return
        self._inside = True
        try:
            level = event.get("log_level")
            record: dict[str, Any] = {
                "message": formatEvent(dict(event)) or "",
                "level": self._LEVELS.get(getattr(level, "name", ""), "info"),
                "ts": event.get("log_time"),
                "service": self.service or event.get("log_namespace") or "",
                "host": self.host,
                "namespace": event.get("log_namespace", ""),
            }
            failure = event.get("log_failure")
            if failure is not None:
                record["traceback"] = failure.getTraceback()
            fields = {
                key: jsonSafe(value)
                for key, value in event.items()
                if not key.startswith("log_") and key not in LEGACY_KEYS
            }
            if fields:
                # Nested, so the server merges them under the record's own
                # keys and never reads one as an alias (a "msg" or "hostname").
                record["fields"] = fields
            self.sender.send(record)
        except Exception:
            self.failed += 1
        finally:
            self._inside = False
