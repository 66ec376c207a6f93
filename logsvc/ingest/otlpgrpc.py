# -*- test-case-name: tests.test_ingest_otlpgrpc -*-
"""
OTLP over gRPC (C{--otlp-grpc tcp:4317}): the C{LogsService/Export} RPC of
OpenTelemetry, served by grpcio's own server (the extra C{logsvc[otlp]}).

Threads: grpcio runs each RPC on a thread of its pool.  That thread decodes
the request and maps it (L{logsvc.formats.otlp.requestRecords}: pure, no
reactor state), then hands the records to the reactor thread with
L{blockingCallFromThread}, where the token is checked, the submission is
admitted and queued like any HTTP submission, and waits there until they are
durable.  Only then does the RPC return its C{ExportLogsServiceResponse}
(with C{partial_success} for refused records).  Nothing else crosses threads.

Answers, as OTLP exporters read them: C{UNAVAILABLE} (retried) while the
queue is full or the store failed; C{UNAUTHENTICATED} without an ingest
token (C{authorization: Bearer TOKEN} metadata) when C{--token-file} is set;
C{RESOURCE_EXHAUSTED} for one request of more records than C{--max-pending};
C{INVALID_ARGUMENT} for what cannot be decoded (grpcio itself refuses a
message over C{--max-body} with C{RESOURCE_EXHAUSTED}).

Listen addresses are endpoint strings as for every listener, of which this
one takes C{tcp:PORT[:interface=ADDR]} and C{ssl:PORT[:interface=ADDR]
:privateKey=KEY.pem[:certKey=CERT.pem][:extraCertChain=CHAIN.pem]}.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import blockingCallFromThread, deferToThreadPool
from twisted.logger import Logger

from logsvc.admission import Refused, senderFor
from logsvc.auth import INGEST, Tokens, authorizationToken
from logsvc.extras import OTLP_GRPC
from logsvc.ingest.sink import IngestSink
from logsvc.pipeline import Pipeline
from logsvc.startup import StartupError
from logsvc.store.base import StoreError
from logsvc.times import nowMicros

if TYPE_CHECKING:
    from logsvc.formats.otlp import OTLPBatch

log = Logger()

#: Seconds in-flight RPCs get to finish when the listener stops.
STOP_GRACE = 5.0


class EndpointError(ValueError):
    """
    An C{--otlp-grpc} endpoint string cannot be served; C{str(error)} says
    why (the caller names the option and the value).
    """


def grpcAddress(description: str) -> tuple[str, dict[str, str]]:
    """
    Read a C{tcp:} or C{ssl:} server endpoint string as grpcio's address.

    @return: C{"HOST:PORT"} (C{0.0.0.0} when no interface is named; IPv6
        interfaces bracketed) and the keyword arguments (C{privateKey},
        C{certKey}, C{extraCertChain} for C{ssl:}).
    @raise EndpointError: for any other kind, a missing or bad port, an
        unknown argument, or C{ssl:} without C{privateKey}.
    """
    parts = [part.replace("\\:", ":") for part in re.split(r"(?<!\\):", description)]
    kind = parts[0]
    if kind not in ("tcp", "ssl") or len(parts) < 2:
        raise EndpointError("not a gRPC endpoint; use tcp:PORT or ssl:PORT:privateKey=KEY.pem")
    port, rest = "", parts[1:]
    if "=" not in rest[0]:
        port, rest = rest[0], rest[1:]
    keywords: dict[str, str] = {}
    for part in rest:
        name, equals, value = part.partition("=")
        if not equals:
            raise EndpointError(f"{part!r} is not NAME=VALUE")
        keywords[name] = value
    if "port" in keywords:
        port = keywords.pop("port")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise EndpointError(f"bad port {port!r}")
    # All IPv4 interfaces when none is named, as Twisted's tcp: and ssl: do.
    interface = keywords.pop("interface", "0.0.0.0")
    allowed = {"privateKey", "certKey", "extraCertChain"} if kind == "ssl" else set()
    unknown = set(keywords) - allowed
    if unknown:
        raise EndpointError(f"unknown argument(s) {', '.join(sorted(unknown))}")
    if kind == "ssl" and "privateKey" not in keywords:
        raise EndpointError("ssl: needs privateKey=KEY.pem")
    host = f"[{interface}]" if ":" in interface else interface
    return f"{host}:{port}", keywords


def serverCredentials(keywords: dict[str, str]) -> Any:
    """
    @return: grpc server credentials from C{ssl:} arguments, read as Twisted
        reads them: C{privateKey} a PEM key (and certificate when
        C{certKey} is not given), C{certKey} the certificate,
        C{extraCertChain} intermediates appended to it.
    @raise OSError: when a file cannot be read.
    """
    import grpc

    with open(keywords["privateKey"], "rb") as f:
        key = f.read()
    certificate = key
    if "certKey" in keywords:
        with open(keywords["certKey"], "rb") as f:
            certificate = f.read()
    if "extraCertChain" in keywords:
        with open(keywords["extraCertChain"], "rb") as f:
            certificate = certificate.rstrip(b"\n") + b"\n" + f.read()
    return grpc.ssl_server_credentials([(key, certificate)])


def peerHost(peer: str) -> str:
    """
    @return: the host of a grpc peer string (C{"ipv4:127.0.0.1:5000"},
        C{"ipv6:[::1]:5000"}, C{"unix:/path"}), as L{logsvc.ingest.tcp.peerName}
        names peers.
    """
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        host = rest.rpartition(":")[0] or rest
        return host.strip("[]")
    if kind == "unix":
        return "unix"
    return "unknown"


class _Rejection(Exception):
    """
    The reactor side's refusal: the gRPC status code name and the message.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class OTLPLogsServicer:
    """
    The C{LogsService}: C{Export} maps on grpcio's thread, submits on the
    reactor's and returns once durable (see the module docstring).
    """

    def __init__(self, pipeline: Pipeline, tokens: Tokens, reactor: Any) -> None:
        self.sink = IngestSink(pipeline, "otlp-grpc")
        self.tokens = tokens
        self.reactor = reactor

    def _submit(self, batch: OTLPBatch, authorization: bytes | None, peer: str) -> Deferred[int]:
        """
        Reactor thread: check the token, admit and submit C{batch}'s records.

        @return: a Deferred firing once they are durable.
        @raise _Rejection: when they are not taken.
        """
        sink = self.sink
        if self.tokens.enabled and not self.tokens.check(authorizationToken(authorization), INGEST):
            sink.refuse("auth")
            raise _Rejection("UNAUTHENTICATED", "an ingest token is required: send 'authorization: Bearer TOKEN'")
        if batch.rejected:
            sink.refuse("invalid", batch.rejected)
        if not batch.records:
            return succeed(0)
        try:
            return sink.submitAdmitted(senderFor(authorization, _PeerAddress(peer)), batch.records)
        except Refused as e:
            sink.refuse("too_large" if e.code == 413 else "queue_full")
            raise _Rejection("RESOURCE_EXHAUSTED" if e.code == 413 else "UNAVAILABLE", str(e)) from None

    def Export(self, request: Any, context: Any) -> Any:
        """
        grpcio's thread: the RPC.
        """
        import grpc

        from logsvc.formats.otlp import exportResponse, requestRecords

        peer = peerHost(context.peer())
        batch = requestRecords(request, peer, nowMicros())
        authorization: bytes | None = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                authorization = value.encode("latin-1") if isinstance(value, str) else value
        if batch.records or batch.rejected:
            try:
                blockingCallFromThread(self.reactor, self._submit, batch, authorization, peer)  # type: ignore[arg-type]
            except _Rejection as e:
                context.abort(getattr(grpc.StatusCode, e.code), str(e))
            except StoreError as e:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"store failed: {e}")
        return exportResponse(batch)


class _PeerAddress:
    """
    The host of a gRPC peer where an C{IAddress} is expected (by
    L{senderFor}, through L{logsvc.ingest.tcp.peerName}).
    """

    def __init__(self, host: str) -> None:
        self.host = host


class OTLPGrpcService(Service):
    """
    The C{--otlp-grpc} listener: grpcio's server with its own thread pool,
    started and stopped with the service.  Stopping lets in-flight RPCs
    finish (up to L{STOP_GRACE} seconds) without blocking the reactor.

    @ivar port: the port bound, once started (useful with port 0).
    """

    def __init__(
        self,
        description: str,
        pipeline: Pipeline,
        *,
        tokens: Tokens | None = None,
        maxMessage: int,
        threads: int = 4,
        reactor: Any = None,
    ) -> None:
        """
        @param description: the endpoint string (see L{grpcAddress}).
        @param maxMessage: the largest request grpcio takes, in bytes.
        @raise EndpointError: when the description cannot be served, or
            grpcio or the bindings are missing (L{OTLP_GRPC}).
        """
        missing = OTLP_GRPC.missing()
        if missing is not None:
            raise EndpointError(missing)
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.address, self.keywords = grpcAddress(description)
        self.description = description
        self.pipeline = pipeline
        self.tokens = tokens or Tokens()
        self.maxMessage = maxMessage
        self.threads = threads
        self.reactor = reactor
        self.port = 0
        self._server: Any = None
        self._pool: Any = None

    def privilegedStartService(self) -> None:
        """
        Bind the port (before privileges are dropped, as Twisted's listeners
        do).

        @raise StartupError: when the port cannot be bound.
        """
        Service.privilegedStartService(self)
        if self._server is not None:
            return
        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc

        server = grpc.server(
            ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="logsvc-otlp-grpc"),
            options=[
                ("grpc.max_receive_message_length", self.maxMessage),
                # Two servers must not share a port unnoticed.
                ("grpc.so_reuseport", 0),
            ],
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(
            OTLPLogsServicer(self.pipeline, self.tokens, self.reactor), server
        )
        try:
            if self.keywords:
                self.port = server.add_secure_port(self.address, serverCredentials(self.keywords))
            else:
                self.port = server.add_insecure_port(self.address)
        except RuntimeError:
            # grpcio says only "Failed to bind to address"; the usual cause:
            raise StartupError("cannot listen (address already in use, or not on this machine)") from None
        self._server = server

    def startService(self) -> None:
        self.privilegedStartService()
        self._server.start()
        Service.startService(self)

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        server, self._server = self._server, None
        if server is None:
            d: Deferred[None] = Deferred()
            d.callback(None)
            return d
        # stop() returns at once; its event is set when the grace ends.
        done = server.stop(STOP_GRACE)
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), done.wait).addCallback(lambda _: None)
