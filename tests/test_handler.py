"""
Tests for L{logsvc.handler.LogsvcHandler}: the records it builds, and its
delivery (batches, keep-alive, retries, drop-oldest, flush and close)
against a small threaded HTTP server on a loopback port.
"""

from __future__ import annotations

import http.server
import io
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from twisted.trial.unittest import SynchronousTestCase

from logsvc.handler import LogsvcHandler


class Collector(http.server.ThreadingHTTPServer):
    """
    A server that records every request (path, headers, NDJSON lines, the
    client's port) and answers with C{status()} (201 by default).
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CollectorHandler)
        self.requests: list[dict[str, Any]] = []
        self.status: Callable[[list[Any]], int] = lambda lines: 201
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/logs"

    def stored(self) -> list[dict[str, Any]]:
        """
        @return: the records of the requests answered 2xx, in order.
        """
        with self.lock:
            return [line for r in self.requests if 200 <= r["status"] < 300 for line in r["lines"]]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _CollectorHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        lines = [orjson.loads(line) for line in body.splitlines() if line]
        status = self.server.status(lines)
        with self.server.lock:
            self.server.requests.append(
                {"lines": lines, "headers": dict(self.headers), "port": self.client_address[1], "status": status, "path": self.path}
            )
        answer = b'{"accepted": %d}' % len(lines)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def waitFor(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


class HandlerTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = Collector()
        self.addCleanup(self.server.stop)

    def handler(self, **kw: Any) -> LogsvcHandler:
        kw.setdefault("flushInterval", 0.01)
        handler = LogsvcHandler(self.server.url, host="h1", **kw)
        handler.errors = self.errors = io.StringIO()
        self.addCleanup(handler.close)
        return handler

    def logger(self, handler: LogsvcHandler, name: str = "app.billing") -> logging.Logger:
        logger = logging.Logger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        return logger


class RecordTests(HandlerTestCase):
    def test_mapping(self) -> None:
        """
        message (args applied), level name, time, service (the logger's name
        by default), host, the call site and extra fields; exc_info becomes
        fields.traceback; a value JSON cannot hold is sent as its repr.
        """
        handler = self.handler()
        logger = self.logger(handler)
        logger.warning("invoice %s sent", 42, extra={"customer": "c-7", "amount": 9.5, "raw": b"\x00", "message_id": "m"})
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            logger.exception("failed")
        logger.info("with stack", stack_info=True)
        self.assertTrue(handler.waitSent())
        first, second, third = self.server.stored()
        self.assertEqual(
            (first["message"], first["level"], first["service"], first["host"]),
            ("invoice 42 sent", "WARNING", "app.billing", "h1"),
        )
        self.assertIsInstance(first["ts"], float)
        fields = first["fields"]
        self.assertEqual(
            (fields["customer"], fields["amount"], fields["raw"], fields["message_id"]), ("c-7", 9.5, repr(b"\x00"), "m")
        )
        self.assertEqual((fields["logger"], fields["function"]), ("app.billing", "test_mapping"))
        self.assertTrue(fields["file"].endswith("test_handler.py"))
        self.assertNotIn("args", fields)
        self.assertEqual(second["level"], "ERROR")
        self.assertIn("ZeroDivisionError", second["fields"]["traceback"])
        self.assertIn("test_mapping", third["fields"]["stack"])

    def test_service(self) -> None:
        """A handler's service wins over the logger name, which stays in fields.logger."""
        handler = self.handler(service="billing")
        self.logger(handler).info("x")
        handler.waitSent()
        [record] = self.server.stored()
        self.assertEqual((record["service"], record["fields"]["logger"]), ("billing", "app.billing"))


class DeliveryTests(HandlerTestCase):
    def test_batchesOverOneConnection(self) -> None:
        """Records go as NDJSON batches of at most batchSize, over one kept-alive connection, with the token."""
        handler = self.handler(batchSize=100, token="s3cret")
        logger = self.logger(handler)
        for i in range(1000):
            logger.info("m%d", i)
        self.assertTrue(handler.waitSent())
        self.assertEqual([r["message"] for r in self.server.stored()], [f"m{i}" for i in range(1000)])
        requests = self.server.requests
        self.assertLessEqual(max(len(r["lines"]) for r in requests), 100)
        self.assertEqual(len({r["port"] for r in requests}), 1)
        self.assertEqual(requests[0]["headers"]["Content-Type"], "application/x-ndjson")
        self.assertEqual(requests[0]["headers"]["Authorization"], "Bearer s3cret")
        self.assertEqual(requests[0]["path"], "/logs")
        self.assertEqual(handler.sent, 1000)

    def test_emitNeverWaits(self) -> None:
        """With no server at all, emitting is still fast: it only queues."""
        self.server.stop()
        self.server = Collector()
        handler = LogsvcHandler("http://127.0.0.1:9/logs", maxQueued=100, flushTimeout=0.1)
        handler.errors = errors = io.StringIO()
        self.addCleanup(handler.close)
        logger = self.logger(handler)
        started = time.monotonic()
        for i in range(2000):
            logger.info("m%d", i)
        self.assertLess(time.monotonic() - started, 1.0)
        self.assertGreaterEqual(handler.dropped, 1900 - 100)
        self.assertLessEqual(handler.queued, 100 + handler.batchSize)
        waitFor(lambda: handler.failures >= 1)
        self.assertIn("cannot reach http://127.0.0.1:9/logs", errors.getvalue())

    def test_retriesThenDelivers(self) -> None:
        """5xx and 429 answers are retried with backoff; every record arrives exactly once."""
        answers = iter([503, 429, 500])
        self.server.status = lambda lines: next(answers, 201)
        handler = self.handler()
        self.logger(handler).info("persistent")
        self.assertTrue(handler.waitSent(10))
        self.assertEqual([r["message"] for r in self.server.stored()], ["persistent"])
        self.assertEqual([r["status"] for r in self.server.requests], [503, 429, 500, 201])
        self.assertEqual(handler.failures, 3)

    def test_dropOldestWhileAway(self) -> None:
        """
        While the server is away the queue holds the newest maxQueued
        records; the oldest are dropped and counted; the rest arrive once
        it is back.
        """
        away = threading.Event()
        away.set()
        self.server.status = lambda lines: 503 if away.is_set() else 201
        handler = self.handler(maxQueued=5, maxRetryDelay=0.05)
        logger = self.logger(handler)
        logger.info("first")
        waitFor(lambda: handler.failures >= 1)
        for i in range(8):
            logger.info("m%d", i)
        self.assertEqual(handler.dropped, 3)
        away.clear()
        self.assertTrue(handler.waitSent(10))
        self.assertEqual([r["message"] for r in self.server.stored()], ["first", "m3", "m4", "m5", "m6", "m7"])

    def test_refusedNotRetried(self) -> None:
        """A 400 is final: the batch is counted as dropped, not sent again, and the next is sent."""
        self.server.status = lambda lines: 400 if lines[0]["message"] == "bad" else 201
        handler = self.handler()
        logger = self.logger(handler)
        logger.info("bad")
        handler.waitSent()
        logger.info("good")
        handler.waitSent()
        self.assertEqual([r["status"] for r in self.server.requests], [400, 201])
        self.assertEqual(handler.dropped, 1)
        self.assertIn("refused 1 records: 400", self.errors.getvalue())

    def test_tooLargeSplits(self) -> None:
        """A 413 sends the same records again in smaller batches."""
        self.server.status = lambda lines: 413 if len(lines) > 10 else 201
        handler = self.handler(batchSize=40, flushInterval=0.5)
        logger = self.logger(handler)
        for i in range(40):
            logger.info("m%d", i)
        self.assertTrue(handler.waitSent(10))
        self.assertEqual([r["message"] for r in self.server.stored()], [f"m{i}" for i in range(40)])
        self.assertEqual(handler.batchSize, 10)

    def test_closeFlushes(self) -> None:
        """close() sends what is queued before it returns, and later records are ignored."""
        handler = LogsvcHandler(self.server.url, flushInterval=5)
        started = time.monotonic()
        logger = self.logger(handler)
        logger.info("last words")
        handler.close()
        self.assertLess(time.monotonic() - started, 2)
        self.assertEqual([r["message"] for r in self.server.stored()], ["last words"])
        logger.info("after close")
        self.assertEqual(handler.queued, 0)

    def test_badURL(self) -> None:
        """A URL that is not http(s)://HOST is refused at once."""
        self.assertRaises(ValueError, LogsvcHandler, "ftp://x/logs")
        self.assertRaises(ValueError, LogsvcHandler, "logs.example:8080")
