"""
What stands between the network and the HTTP Resource tree.

L{GuardResource} wraps the root: before any endpoint runs it checks the bearer
token and its scope (C{ingest} for writes, C{read} for everything else,
nothing for C{/health}), and refuses writes whose sender the pipeline does
not admit now (503 + C{Retry-After}: the queue is full, or the sender holds
its share of it; see L{logsvc.admission}) or the disk is below its floor (507).  Endpoints added
later by anyone are covered without knowing about it.

L{LogsvcChannel} bounds what one connection can hold:
  - a request must arrive whole (line, headers, body) within
    C{requestTimeout} seconds of its first byte, so a client sending one byte
    per second cannot keep a request open (408, then close);
  - a response whose client stops reading is cut off once the client has not
    read for C{stallTimeout} seconds, or once more than C{maxUnsent} bytes
    were written past the transport's own buffer (a resource that ignores
    back-pressure), so a stuck export or tail costs bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.components import proxyForInterface
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource
from twisted.web.server import Request
from zope.interface import implementer

from logsvc.admission import Refused, senderFor
from logsvc.auth import INGEST, READ, Tokens, authorizationToken
from logsvc.limits import establish
from logsvc.web.errors import errorBody, rawJSONError

log = Logger()

#: Default seconds a request (line, headers and body) may take to arrive.
DEFAULT_REQUEST_TIMEOUT = 30.0
#: Default seconds a response may wait for a client that does not read.
DEFAULT_STALL_TIMEOUT = 60.0
#: Default bytes a response may write past the transport's buffer while its
#: client is not reading.
DEFAULT_MAX_UNSENT = 4 * 1024 * 1024

#: The scope of reads either token may make (they hold no log data).
ANY = "any"

#: Methods that write: they need the C{ingest} scope and room in the pipeline.
WRITE_METHODS = frozenset({b"POST", b"PUT", b"PATCH", b"DELETE"})


@implementer(IResource)
class Refusal:
    """
    A leaf that answers one JSON error.
    """

    isLeaf = True

    def __init__(self, code: int, message: str, headers: dict[bytes, bytes] | None = None) -> None:
        self.code = code
        self.message = message
        self.headers = headers or {}

    def render(self, request: Request) -> bytes:
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return errorBody(request, self.code, self.message)

    def getChildWithDefault(self, name: bytes, request: Request) -> IResource:
        return self

    def putChild(self, path: bytes, child: IResource) -> None:
        raise NotImplementedError()

    def raw(self) -> bytes:
        """
        @return: the whole HTTP response, closing the connection, for answers
            given before a request object is rendered.
        """
        return rawJSONError(self.code, self.message, self.headers)


class Guard:
    """
    The checks of L{GuardResource}, apart from the tree so they are testable
    on their own.

    @ivar tokens: the L{Tokens} in force.
    @ivar admission: a callable taking a sender (L{senderFor}) and returning
        why its writes are refused now (a L{Refused}), or L{None}.
    @ivar diskLow: a callable, true while the disk is below its floor.
    @ivar openPaths: paths that need no token (C{/health}, C{/ui}).
    @ivar ingestPaths: paths whose reads (C{GET}) count as ingest, for
        senders that probe before pushing (set by ingest formats).
    """

    def __init__(
        self,
        tokens: Tokens | None = None,
        *,
        admission: Callable[[str], Refused | None] | None = None,
        diskLow: Any = None,
        retryAfter: int = 1,
    ) -> None:
        self.tokens = tokens if tokens is not None else Tokens()
        self.admission = admission or (lambda sender: None)
        self.diskLow = diskLow or (lambda: False)
        self.retryAfter = retryAfter
        self.openPaths: set[bytes] = {b"/health", b"/ui"}
        #: The browser UI's static files hold no log data; the page's API
        #: calls carry the user's token.
        self.openPrefixes: tuple[bytes, ...] = (b"/ui/",)
        self.ingestPaths: set[bytes] = set()
        self.refusals = 0

    def scopeFor(self, request: Request) -> str | None:
        """
        @return: the scope C{request} needs (see L{scopeForPath}).
        """
        return self.scopeForPath(request.method, request.path)

    def scopeForPath(self, method: bytes, path: bytes) -> str | None:
        """
        @return: the scope a request needs: L{INGEST} for writes, L{ANY}
            for reads that hold no log data and that shippers make with their
            ingest token (C{GET /}, Elasticsearch's C{/_...} APIs), L{READ}
            for the other reads, L{None} for an open path.
        """
        path = path.rstrip(b"/") or b"/"
        if path in self.openPaths or path.startswith(self.openPrefixes):
            return None
        if method in WRITE_METHODS or path in self.ingestPaths:
            return INGEST
        if path == b"/" or path.startswith(b"/_"):
            return ANY
        return READ

    def check(self, request: Request) -> Refusal | None:
        """
        @return: a L{Refusal} for C{request}, or L{None} to let it through.
        """
        return self.checkParts(
            request.method, request.path, request.getHeader(b"authorization"), request.getClientAddress()
        )

    def checkParts(
        self, method: bytes, path: bytes, authorization: bytes | None, address: Any = None
    ) -> Refusal | None:
        """
        L{check} from the request line, the C{Authorization} header and the
        peer's address alone, so a refusal can be sent before the body is
        read.
        """
        scope = self.scopeForPath(method, path)
        if scope is None:
            return None
        if self.tokens.enabled:
            token = authorizationToken(authorization)
            allowed = self.tokens.known(token) if scope == ANY else self.tokens.check(token, scope)
            if not allowed:
                self.refusals += 1
                if token is not None and self.tokens.known(token):
                    return Refusal(403, f"token lacks the {scope!r} scope")
                return Refusal(
                    401,
                    "missing or invalid bearer token",
                    {b"www-authenticate": b'Bearer realm="logsvc"'},
                )
        if scope == INGEST and method in WRITE_METHODS:
            if self.diskLow():
                self.refusals += 1
                return Refusal(507, "insufficient storage: free disk is below the floor")
            refused = self.admission(senderFor(authorization, address))
            if refused is not None:
                self.refusals += 1
                headers = {b"retry-after": b"%d" % self.retryAfter} if refused.code == 503 else {}
                return Refusal(refused.code, str(refused), headers)
        return None


class GuardResource(proxyForInterface(IResource, "wrapped")):  # type: ignore[misc]
    """
    Wraps the root resource; every request passes L{Guard.check} first.
    Everything else (C{isLeaf}, C{putChild}) is the wrapped root's.
    """

    def __init__(self, wrapped: IResource, guard: Guard) -> None:
        super().__init__(wrapped)
        self.guard = guard

    @property
    def children(self) -> dict[bytes, IResource]:
        # Not part of IResource, but the tree's tests and tools read it.
        return self.wrapped.children  # type: ignore[attr-defined, no-any-return]

    def getChildWithDefault(self, name: bytes, request: Request) -> IResource:
        refusal = self.guard.check(request)
        if refusal is not None:
            return refusal
        return self.wrapped.getChildWithDefault(name, request)

    def render(self, request: Request) -> Any:
        refusal = self.guard.check(request)
        if refusal is not None:
            return refusal.render(request)
        return self.wrapped.render(request)


#: Longest request line and longest header line, in bytes: room for the
#: longest query the UI or the CLI builds (a C{q} at its size limit,
#: percent-encoded, and every other filter), well past twisted.web's 16 KiB.
MAX_REQUEST_LINE = 64 * 1024

#: Most bytes of request line and headers together.
MAX_HEADER_BYTES = MAX_REQUEST_LINE + 16 * 1024


class LogsvcChannel(HTTPChannel):
    """
    An L{HTTPChannel} with a whole-request deadline and a stuck-reader cutoff;
    see the module docstring.  The limits come from the site
    (C{requestTimeout}, C{stallTimeout}, C{maxUnsent}).

    Every error the parser finds is a JSON answer with its status: 414 for
    a request line over L{MAX_REQUEST_LINE}, 431 for a header line over it,
    headers over L{MAX_HEADER_BYTES} or more than C{maxHeaders} of them, 400
    (naming the fault) for a malformed line, header or chunk, or a
    conflicting C{Content-Length} / C{Transfer-Encoding}.  No
    C{100 Continue} follows a final answer.

    HTTPChannel's state read here has no public accessor (Twisted 26.10),
    so these private attributes are read, each for one decision:
    C{__first_line} (is the parser still on the request line: 414 or 431),
    C{_receivedHeaderSize} and C{_receivedHeaderCount} (the header limits,
    checked before the line is taken), C{_command} and C{_path} (the
    guard's verdict from the headers alone, before a body is read),
    C{_handlingRequest} (no request deadline while a response is being
    written), C{_waitingForTransport} (the write buffer is full: the stall
    cutoff), C{_abortingCall} (Twisted's own abort timer, not armed twice).
    The public hooks are used wherever they exist: C{lineReceived},
    C{headerReceived}, C{allHeadersReceived}, C{timeoutConnection},
    C{forceAbortClient}, C{pauseProducing}/C{resumeProducing} and the
    C{TimeoutMixin}.
    """

    MAX_LENGTH = MAX_REQUEST_LINE
    totalHeadersSize = MAX_HEADER_BYTES

    _requestDeadline: IDelayedCall | None = None
    _stallCall: IDelayedCall | None = None
    _unsentWhilePaused = 0
    _answered = False

    # The parser's errors, as JSON.

    @property
    def _onRequestLine(self) -> bool:
        return bool(getattr(self, "_HTTPChannel__first_line", 1))

    def _refuseRequest(self, code: int, message: str) -> None:
        """
        Answer C{code} with C{message} and close, once per connection.
        """
        if self._answered:
            return
        self._answered = True
        if self.requests:
            # LogsvcRequest takes no body and never renders once refused.
            self.requests[-1]._refused = True
        self._cancel("_requestDeadline")
        transport: Any = self.transport
        transport.write(rawJSONError(code, message))
        self.loseConnection()
        self._abortLater()

    def lineLengthExceeded(self, line: bytes) -> None:
        if self._onRequestLine:
            self._refuseRequest(414, f"request line longer than {self.MAX_LENGTH} bytes: shorten the URL (a long q?)")
        else:
            self._refuseRequest(431, f"a header line is longer than {self.MAX_LENGTH} bytes")

    def lineReceived(self, line: bytes) -> None:
        if self._answered:
            return
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            if self._onRequestLine:
                self.lineLengthExceeded(line)
            else:
                self._refuseRequest(431, f"request headers exceed {self.totalHeadersSize} bytes")
            return
        HTTPChannel.lineReceived(self, line)

    def headerReceived(self, line: bytes) -> bool:
        if self._receivedHeaderCount >= self.maxHeaders:
            self._refuseRequest(431, f"more than {self.maxHeaders} request headers")
            return False
        self._badRequestWhy = "malformed header line"
        return bool(HTTPChannel.headerReceived(self, line))

    def _failChooseTransferDecoder(self) -> bool:
        self._badRequestWhy = "invalid or conflicting Content-Length / Transfer-Encoding headers"
        return bool(HTTPChannel._failChooseTransferDecoder(self))

    def rawDataReceived(self, data: bytes) -> None:
        self._badRequestWhy = "malformed chunked body"
        HTTPChannel.rawDataReceived(self, data)

    _badRequestWhy = "malformed request line"

    def _respondToBadRequestAndDisconnect(self) -> None:
        self._refuseRequest(400, f"bad request: {self._badRequestWhy}")

    def _send100Continue(self) -> None:
        # A request refused from its headers (413, 401...) was answered with
        # a final status: inviting its body now would be a protocol error.
        if self._answered or (self.requests and getattr(self.requests[-1], "_refused", False)):
            return
        HTTPChannel._send100Continue(self)

    def _limit(self, name: str, default: float) -> Any:
        return getattr(getattr(self, "site", None), name, default)

    def dataReceived(self, data: bytes) -> None:
        if self._requestDeadline is None and not self._handlingRequest:
            timeout = self._limit("requestTimeout", DEFAULT_REQUEST_TIMEOUT)
            if timeout:
                self._requestDeadline = self.callLater(timeout, self._requestTimedOut)
        HTTPChannel.dataReceived(self, data)

    def allHeadersReceived(self) -> None:
        # Refuse (401/403/503/507) from the headers, before a body is read or
        # a "100 Continue" invites one.
        guard = getattr(getattr(getattr(self, "site", None), "resource", None), "guard", None)
        if guard is not None and self.requests:
            request = self.requests[-1]
            peer: Any = self.transport
            authorization = request.requestHeaders.getRawHeaders(b"authorization", [None])[-1]
            refusal = guard.checkParts(
                self._command, self._path.split(b"?", 1)[0], authorization, peer.getPeer()
            )
            if refusal is None:
                path = self._path.split(b"?", 1)[0]
                self._holdToken(guard, path, authorization)
                if guard.tokens.enabled and guard.scopeForPath(self._command, path) is not None:
                    # A request with a valid token: the connection is in.
                    establish(self.transport)
            else:
                # LogsvcRequest takes no body and never renders once refused.
                request._refused = True
                self._answered = True
                self._cancel("_requestDeadline")
                transport: Any = self.transport
                transport.write(refusal.raw())
                transport.loseConnection()
                self._abortLater()
                return
        HTTPChannel.allHeadersReceived(self)

    _tokenHeld: Callable[[], None] | None = None

    def _holdToken(self, guard: Guard, path: bytes, authorization: bytes | None) -> None:
        """
        Note that this connection is in with the request's token, so a
        token file reload that revokes it closes the connection (and the
        tail or keep-alive requests it carries).
        """
        if self._tokenHeld is not None:
            self._tokenHeld()
            self._tokenHeld = None
        scope = guard.scopeForPath(self._command, path)
        if scope is None or not guard.tokens.enabled:
            return
        token = authorizationToken(authorization)
        self._tokenHeld = guard.tokens.hold(token, None if scope == ANY else scope, self._revoked)

    def _revoked(self) -> None:
        self._tokenHeld = None
        transport: Any = self.transport
        log.info("closing HTTP connection from {peer}: its token was revoked", peer=transport.getPeer())
        transport.abortConnection()

    def allContentReceived(self) -> None:
        self._cancel("_requestDeadline")
        HTTPChannel.allContentReceived(self)

    def _requestTimedOut(self) -> None:
        self._requestDeadline = None
        transport: Any = self.transport
        log.info("request from {peer} too slow; closing", peer=transport.getPeer())
        self._answered = True
        transport.write(rawJSONError(408, "request not received within the request timeout"))
        transport.loseConnection()
        self._abortLater()

    # The client stopped reading: the transport pauses us.

    def pauseProducing(self) -> None:
        HTTPChannel.pauseProducing(self)
        if self._stallCall is None:
            timeout = self._limit("stallTimeout", DEFAULT_STALL_TIMEOUT)
            if timeout:
                self._stallCall = self._later(timeout, self._stalled, "did not read for too long")

    def resumeProducing(self) -> None:
        self._cancel("_stallCall")
        self._unsentWhilePaused = 0
        HTTPChannel.resumeProducing(self)

    def write(self, data: bytes) -> None:
        if self._waitingForTransport:
            self._countUnsent(len(data))
        HTTPChannel.write(self, data)

    def writeSequence(self, iovec: Any) -> None:
        if self._waitingForTransport:
            self._countUnsent(sum(len(chunk) for chunk in iovec))
        HTTPChannel.writeSequence(self, iovec)

    def _countUnsent(self, size: int) -> None:
        self._unsentWhilePaused += size
        if self._unsentWhilePaused > self._limit("maxUnsent", DEFAULT_MAX_UNSENT):
            self._unsentWhilePaused = -(2**62)  # cut once
            self._later(0, self._stalled, "response exceeds the unsent-bytes bound")

    def _stalled(self, why: str) -> None:
        self._stallCall = None
        transport: Any = self.transport
        log.info("cutting off HTTP client {peer}: {why}", peer=transport.getPeer(), why=why)
        transport.abortConnection()

    def _later(self, delay: float, f: Any, *args: Any) -> IDelayedCall:
        callLater: Any = self.callLater
        return callLater(delay, f, *args)  # type: ignore[no-any-return]

    def _abortLater(self) -> None:
        if self._abortingCall is None and self.abortTimeout is not None:
            self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)

    def _cancel(self, name: str) -> None:
        call = getattr(self, name)
        if call is not None and call.active():
            call.cancel()
        setattr(self, name, None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._tokenHeld is not None:
            self._tokenHeld()
            self._tokenHeld = None
        self._cancel("_requestDeadline")
        self._cancel("_stallCall")
        HTTPChannel.connectionLost(self, reason)
