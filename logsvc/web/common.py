"""
What every logsvc resource shares: JSON responses and errors, method dispatch
that answers 405 in JSON, and safe finishing of asynchronous responses.
"""

from __future__ import annotations

from typing import Any

import orjson
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from logsvc.query import QueryError
from logsvc.store.base import QueryTimeout, StoreUnavailable
from logsvc.web.errors import JSON_TYPE, errorBody

log = Logger()



def writeJSON(request: Request, code: int, body: Any) -> bytes:
    """
    Set the status and JSON content type on C{request}.

    @return: C{body} encoded, for a C{render_*} method to return.
    """
    request.setResponseCode(code)
    request.setHeader(b"content-type", JSON_TYPE)
    return orjson.dumps(body)


def isGone(request: Request) -> bool:
    """
    @return: True when the client went away or the response already ended.
    """
    # Request has no public "client went away" flag; notifyFinish() is the
    # hook, but only for who asked before the loss, so the flag it sets is
    # read here.
    return bool(request.finished or getattr(request, "_disconnected", False) or request.channel is None)


def finishWith(request: Request, body: bytes) -> None:
    """
    Write C{body} and finish, unless the client is gone.
    """
    if isGone(request):
        return
    request.write(body)
    request.finish()


def timeoutBody(request: Request, timeout: QueryTimeout) -> bytes:
    """
    @return: the JSON 503 of a read stopped by the search budget.
    """
    return errorBody(request, 503, str(timeout), timeout_seconds=timeout.seconds)


def renderAsync(request: Request, d: Deferred[bytes]) -> object:
    """
    Finish C{request} with the bytes C{d} fires with; a L{QueryError} (a
    query past a store's work limit) becomes a JSON 400, a read stopped by
    the search budget a JSON 503 saying how to narrow the query, a store
    that cannot be reached (L{StoreUnavailable}) a JSON 503, any other
    failure a JSON 500 (logged, never a traceback to the client).

    @return: L{NOT_DONE_YET}, for a C{render_*} method to return.
    """

    def failed(failure: Failure) -> bytes:
        if failure.check(QueryError):
            error: QueryError = failure.value  # type: ignore[assignment]
            return errorBody(request, 400, str(error), **error.details())
        if isinstance(failure.value, QueryTimeout):
            return timeoutBody(request, failure.value)
        if isinstance(failure.value, StoreUnavailable):
            # The shared database is down or restarting: a state that
            # heals, said as such (a load balancer retries elsewhere).
            return errorBody(request, 503, f"store unavailable: {failure.value}")
        log.failure("request failed: {uri}", failure=failure, uri=request.uri)
        return errorBody(request, 500, "internal error")

    d.addErrback(failed)
    d.addCallback(lambda body: finishWith(request, body))
    return NOT_DONE_YET


class JSONResource(Resource):
    """
    A resource whose every answer is JSON: unknown methods get a JSON 405 with
    an C{Allow} header, exceptions a JSON 500.
    """

    def render(self, request: Request) -> object:
        method = request.method.decode("ascii", "replace").upper()
        if method == "HEAD":
            method = "GET"
        handler = getattr(self, f"render_{method}", None)
        if handler is None:
            allowed = sorted(
                name[len("render_") :] for name in dir(self) if name.startswith("render_")
            )
            request.setHeader(b"allow", ", ".join(allowed).encode("ascii"))
            return errorBody(request, 405, f"method {method} not allowed", allowed=allowed)
        try:
            return handler(request)
        except Exception:
            log.failure("render failed: {uri}", uri=request.uri)
            return errorBody(request, 500, "internal error")


class NotFound(JSONResource):
    """
    The JSON 404 for every unknown path.
    """

    isLeaf = True

    def render(self, request: Request) -> object:
        return errorBody(request, 404, f"no such resource: {request.path.decode('utf-8', 'replace')}")


class Branch(JSONResource):
    """
    An inner node of a fixed path: its children or a JSON 404.
    """

    def getChild(self, path: bytes, request: Request) -> IResource:
        return NotFound()

    def render(self, request: Request) -> object:
        return NotFound().render(request)

    @classmethod
    def path(cls, segments: list[bytes], leaf: IResource) -> Branch:
        """
        @return: a branch holding C{leaf} at C{segments} below it (each
            inner node a L{Branch}).
        """
        top = node = cls()
        for segment in segments[:-1]:
            child = cls()
            node.putChild(segment, child)
            node = child
        node.putChild(segments[-1], leaf)
        return top
