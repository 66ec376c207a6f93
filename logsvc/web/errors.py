# -*- test-case-name: tests.test_web_errors -*-
"""
Every JSON error answer of the HTTP API, C{{"error": "...", ...}}:

  - L{errorBody}: from a resource rendering a request (a bad parameter, a
    refusal, a failure), the status set on the request;
  - L{rawJSONError}: written straight to the transport, for the answers the
    HTTP channel gives before (or instead of) rendering a request: the
    parser's errors (a request line or headers too long, a malformed header
    or chunk), a body over C{--max-body}, a refusal from the headers alone,
    a request that arrives too slowly.  Each closes the connection.

Every answer carries C{X-Content-Type-Options: nosniff}.  (Elasticsearch's
and the live tail's own error shapes are their protocols', in their
modules.)
"""

from __future__ import annotations

from typing import Any

import orjson
from twisted.web.http import RESPONSES, Request

#: The content type of every JSON answer.
JSON_TYPE = b"application/json"

#: The header every answer carries, so no browser sniffs a JSON error (or a
#: record's text) into something it runs.
NOSNIFF = (b"x-content-type-options", b"nosniff")


#: Reason phrases as RFC 9110 and 6585 name them, where twisted.web's are
#: older or missing.
REASONS = {
    408: b"Request Timeout",
    413: b"Payload Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


def rawJSONError(code: int, message: str, headers: dict[bytes, bytes] | None = None) -> bytes:
    """
    @param headers: more headers (names lower case).
    @return: a whole HTTP/1.1 response with status C{code} and the JSON body
        C{{"error": message}}, closing the connection.
    """
    payload = orjson.dumps({"error": message})
    reason = REASONS.get(code) or RESPONSES.get(code, b"Error")
    head = [
        b"HTTP/1.1 %d %s" % (code, reason),
        b"content-type: application/json",
        b"content-length: %d" % len(payload),
        b"%s: %s" % NOSNIFF,
    ]
    for name, value in (headers or {}).items():
        head.append(name + b": " + value)
    head.append(b"connection: close")
    return b"\r\n".join(head) + b"\r\n\r\n" + payload


def errorBody(request: Request, code: int, message: str, **extra: Any) -> bytes:
    """
    Set status C{code} and the JSON content type on C{request}.

    @return: the body C{{"error": message, ...extra}}, for a C{render_*}
        method to return (or to write).
    """
    request.setResponseCode(code)
    request.setHeader(b"content-type", JSON_TYPE)
    return orjson.dumps({"error": message, **extra})
