"""
Tests for L{logsvc.web.errors} and the HTTP channel's parser errors: every
error is a JSON answer with the right status, every answer says nosniff, and
no C{100 Continue} follows a final status; over an in-memory connection to
the real L{LogsvcSite}.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from logsvc.pipeline import Pipeline
from logsvc.store.memory import MemoryStore
from logsvc.web.app import LogsvcSite, buildRoot
from logsvc.web.guard import MAX_REQUEST_LINE


class ParserErrorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = MemoryStore()
        pipeline = Pipeline(self.store, reactor=self.clock, delay=0)
        self.site = LogsvcSite(buildRoot(self.store, pipeline, clock=self.clock), maxBody=1000, reactor=self.clock)

    def send(self, data: bytes) -> tuple[bytes, StringTransport]:
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4444))
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(data)
        return transport.value(), transport

    def answer(self, written: bytes) -> tuple[int, dict[bytes, bytes], Any]:
        head, _, body = written.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        code = int(lines[0].split()[1])
        headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
        return code, headers, orjson.loads(body) if body else None

    def assertJSONError(self, data: bytes, code: int, words: str) -> None:
        written, transport = self.send(data)
        got, headers, body = self.answer(written)
        self.assertEqual(got, code, written[:200])
        self.assertEqual(headers[b"content-type"], b"application/json")
        self.assertEqual(headers[b"x-content-type-options"], b"nosniff")
        self.assertIn(words, body["error"])
        self.assertTrue(transport.disconnecting)

    def test_longRequestLineServed(self) -> None:
        """A request line past twisted.web's 16 KiB (the longest q, percent-encoded, and long filters, as the UI or CLI build them) is served, not dropped."""
        q = quote("é" * 2000)  # 4,000 bytes, 12,000 encoded
        line = b"GET /logs?q=" + q.encode() + b"&source=" + b"h" * 8000 + b" HTTP/1.1\r\n"
        self.assertGreater(len(line), 16 * 1024)
        written, _ = self.send(line + b"Host: x\r\n\r\n")
        self.assertTrue(written.startswith(b"HTTP/1.1 200 "), written[:100])

    def test_requestLineTooLong414(self) -> None:
        """A request line over the limit is answered 414 in JSON, not closed silently."""
        self.assertJSONError(b"GET /logs?q=" + b"a" * (MAX_REQUEST_LINE + 10) + b" HTTP/1.1\r\n", 414, "request line longer")

    def test_headerTooLong431(self) -> None:
        """A header line over the limit, or headers over their total, is 431."""
        self.assertJSONError(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (MAX_REQUEST_LINE + 10) + b"\r\n\r\n", 431, "header")
        many = b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 8000) for n in range(12))
        self.assertJSONError(b"GET / HTTP/1.1\r\n" + many + b"\r\n", 431, "headers exceed")

    def test_tooManyHeaders431(self) -> None:
        """More headers than allowed is 431, with a body."""
        many = b"".join(b"X-H%d: v\r\n" % n for n in range(600))
        self.assertJSONError(b"GET / HTTP/1.1\r\n" + many + b"\r\n", 431, "more than 500 request headers")

    def test_badChunk400(self) -> None:
        """A bad chunk size is a JSON 400 naming the fault."""
        self.assertJSONError(
            b"POST /logs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n", 400, "malformed chunked body"
        )

    def test_twoContentLengths400(self) -> None:
        """Two Content-Length headers are a JSON 400 naming them."""
        self.assertJSONError(
            b"POST /logs HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400, "Content-Length"
        )

    def test_badRequestLine400(self) -> None:
        """A request line that is not one is a JSON 400."""
        self.assertJSONError(b"HELLO\r\n\r\n", 400, "malformed request line")

    def test_nosniffEverywhere(self) -> None:
        """Ordinary answers carry nosniff too, JSON and not."""
        for path in (b"/health", b"/metrics", b"/logs"):
            written, _ = self.send(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            _, headers, _ = self.answer(written.split(b"\r\n\r\n")[0] + b"\r\n\r\n")
            self.assertEqual(headers.get(b"x-content-type-options"), b"nosniff", path)

    def test_noContinueAfterRefusal(self) -> None:
        """Expect: 100-continue with a body over max-body gets the 413 alone, no stray 100 Continue."""
        written, _ = self.send(
            b"POST /logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 999999999\r\nExpect: 100-continue\r\n\r\n"
        )
        self.assertTrue(written.startswith(b"HTTP/1.1 413 "), written)
        self.assertNotIn(b"100 Continue", written)

    def test_continueWhenAdmitted(self) -> None:
        """A body within the limits still gets its 100 Continue."""
        written, _ = self.send(
            b"POST /logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10\r\nExpect: 100-continue\r\n\r\n"
        )
        self.assertTrue(written.startswith(b"HTTP/1.1 100 Continue"), written)
