# -*- test-case-name: tests.test_handler -*-
"""
A C{logging} handler for Python applications that do not run Twisted.

    import logging
    from logsvc.handler import LogsvcHandler

    logging.getLogger().addHandler(LogsvcHandler("http://logs.example:8080/logs", service="billing"))
    logging.info("invoice %s sent", 42, extra={"customer": "c-7"})

L{LogsvcHandler.emit} never waits for the network: it encodes the record
as one NDJSON line and appends it to a bounded queue.  A background thread
sends the queue in batches (C{POST /logs}, C{application/x-ndjson}, over one
keep-alive connection, stdlib C{http.client} only) and, while the server is
unreachable or answers 5xx/429, retries the same batch with exponential
backoff.  When the server stays away so long that the queue fills, the
oldest queued records are dropped and counted in L{LogsvcHandler.dropped}:
the application is never slowed or failed by its logging.

A record becomes C{{"message", "level", "ts", "service", "host"}} plus
fields: C{logger}, C{file}, C{line}, C{function}, C{thread_name},
C{process}, every attribute the application added with C{extra=} (kept
JSON-safe: a C{repr} for what JSON cannot hold), C{traceback} for
C{exc_info} and C{stack} for C{stack_info}.

C{flush()} waits (up to C{flushTimeout}; L{LogsvcHandler.waitSent} says
whether it got there) until everything queued before it is acknowledged; C{close()} flushes, then stops the thread.  C{logging}
calls both for every handler at interpreter exit (C{logging.shutdown}), so
what was logged before exit is sent when the server is there.

Threads: the application's threads call L{emit}; the handler's own thread
does all network work.  They share only the queue, under one lock.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import sys
import threading
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import orjson

from logsvc.record import jsonSafe

__all__ = ["LogsvcHandler"]

#: LogRecord attributes logging itself sets: not the application's fields.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}

#: Statuses after which the same batch is sent again (the server is there
#: but cannot take it now).
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 507})


class LogsvcHandler(logging.Handler):
    """
    See the module docstring.

    @ivar dropped: records dropped because the queue was full (the oldest
        first), or refused by the server as invalid.
    @ivar sent: records the server acknowledged.
    @ivar failures: failed delivery attempts (each one retried).
    @ivar errors: where the first delivery problem is written (stderr).
    """

    errors: Any = sys.stderr

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080/logs",
        *,
        service: str | None = None,
        host: str | None = None,
        token: str | None = None,
        level: int = logging.NOTSET,
        maxQueued: int = 10_000,
        batchSize: int = 500,
        flushInterval: float = 0.2,
        timeout: float = 10.0,
        maxRetryDelay: float = 30.0,
        flushTimeout: float = 5.0,
        sslContext: ssl.SSLContext | None = None,
    ) -> None:
        """
        @param url: the server's C{/logs} URL (C{http://} or C{https://}).
        @param service: the records' service; the logger's name when L{None}.
        @param host: the records' source; this host's name when L{None}.
        @param token: an C{ingest} token, sent as C{Authorization: Bearer}.
        @param maxQueued: records held at most (memory bound).
        @param batchSize: records per request at most.
        @param flushInterval: seconds the thread waits for a batch to fill.
        @param timeout: seconds one request may take.
        @param maxRetryDelay: the longest wait between attempts, seconds
            (the first is 0.1 s, doubling).
        @param flushTimeout: seconds L{flush} and L{close} wait at most.
        @param sslContext: for C{https://}: the context verifying the server.
        """
        super().__init__(level)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http:// or https://HOST[:PORT]/logs, not {url!r}")
        if maxQueued <= 0 or batchSize <= 0:
            raise ValueError("maxQueued and batchSize must be positive")
        self.url = url
        self._scheme = parts.scheme
        self._netloc = (parts.hostname, parts.port)
        self._path = (parts.path or "/logs") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/x-ndjson", "Connection": "keep-alive"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self.service = service
        self.host = host or socket.gethostname()
        self.maxQueued = maxQueued
        self.batchSize = batchSize
        self.flushInterval = flushInterval
        self.timeout = timeout
        self.maxRetryDelay = maxRetryDelay
        self.flushTimeout = flushTimeout
        self.sslContext = sslContext
        self.dropped = 0
        self.sent = 0
        self.failures = 0
        self._queue: deque[bytes] = deque()
        self._inFlight = 0
        self._changed = threading.Condition(threading.Lock())
        self._closing = False
        self._flushing = 0
        self._connection: http.client.HTTPConnection | None = None
        self._warned = False
        self._thread = threading.Thread(target=self._run, name="logsvc-handler", daemon=True)
        self._thread.start()

    # The application's threads

    def record(self, record: logging.LogRecord) -> dict[str, Any]:
        """
        @return: the logsvc record for a C{LogRecord} (see the module
            docstring).  Override to add or change keys.
        """
        fields: dict[str, Any] = {
            "logger": record.name,
            "file": record.pathname,
            "line": record.lineno,
            "function": record.funcName,
            "thread_name": record.threadName,
            "process": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                fields[key] = jsonSafe(value)
        if record.exc_info and record.exc_info[0] is not None:
            fields["traceback"] = self._formatException(record.exc_info)
        elif record.exc_text:
            fields["traceback"] = record.exc_text
        if record.stack_info:
            fields["stack"] = record.stack_info
        return {
            "message": record.getMessage(),
            "level": record.levelname,
            "ts": record.created,
            "service": self.service if self.service is not None else record.name,
            "host": self.host,
            # Nested, so no extra key overrides the record's own or is read
            # as one of their aliases.
            "fields": fields,
        }

    def _formatException(self, excInfo: Any) -> str:
        formatter = self.formatter or logging.Formatter()
        return formatter.formatException(excInfo)

    def emit(self, record: logging.LogRecord) -> None:
        """
        Queue C{record}; never blocks on the network.  When the queue is full
        the oldest record is dropped (counted in L{dropped}).
        """
        try:
            line = orjson.dumps(self.record(record)) + b"\n"
        except Exception:
            self.handleError(record)
            return
        with self._changed:
            if self._closing:
                return
            if len(self._queue) >= self.maxQueued:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(line)
            size = len(self._queue)
            if size == 1 or size >= self.batchSize:
                # The thread waits for a first record, then for a full batch.
                self._changed.notify_all()

    @property
    def queued(self) -> int:
        """
        Records waiting: queued or in the request being sent.
        """
        with self._changed:
            return len(self._queue) + self._inFlight

    def flush(self) -> None:
        """
        Wait until every record queued so far is acknowledged (or dropped),
        at most C{flushTimeout} seconds (L{waitSent}).
        """
        self.waitSent()

    def waitSent(self, timeout: float | None = None) -> bool:
        """
        Wait until every record queued so far is acknowledged (or dropped),
        at most C{timeout} seconds (C{flushTimeout} when L{None}).

        @return: True when nothing is left waiting.
        """
        deadline = time.monotonic() + (self.flushTimeout if timeout is None else timeout)
        with self._changed:
            # While someone waits, the thread sends without waiting for a
            # batch to fill.
            self._flushing += 1
            self._changed.notify_all()
            try:
                while self._queue or self._inFlight:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._thread.is_alive():
                        return False
                    self._changed.wait(min(left, 0.05))
                return True
            finally:
                self._flushing -= 1

    def close(self) -> None:
        """
        Flush (up to C{flushTimeout}), stop the thread and close the
        connection.  Records still waiting after that are dropped (counted).
        """
        if self._closing:
            super().close()
            return
        self.flush()
        with self._changed:
            self._closing = True
            self.dropped += len(self._queue)
            self._queue.clear()
            self._changed.notify_all()
        self._thread.join(self.timeout + 1)
        super().close()

    # The handler's thread

    def _take(self) -> list[bytes] | None:
        """
        Wait for a batch (full, or the oldest record waited C{flushInterval}).

        @return: up to C{batchSize} lines, now in flight; L{None} when closing.
        """
        with self._changed:
            while not self._queue:
                if self._closing:
                    return None
                self._changed.wait()
            deadline = time.monotonic() + self.flushInterval
            while len(self._queue) < self.batchSize and not (self._closing or self._flushing):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            count = min(len(self._queue), self.batchSize)
            batch = [self._queue.popleft() for _ in range(count)]
            self._inFlight = count
            return batch

    def _done(self, sent: int, refused: int) -> None:
        with self._changed:
            self._inFlight = 0
            self.sent += sent
            self.dropped += refused
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                break
            delay = 0.1
            while True:
                outcome = self._send(batch)
                if outcome == "smaller":
                    # Too big for the server's --max-body or --max-pending:
                    # back to the queue's front, taken again in halves.
                    with self._changed:
                        self._queue.extendleft(reversed(batch))
                        self._inFlight = 0
                        self.batchSize = max(1, len(batch) // 2)
                    break
                if outcome is not None:
                    self._done(*outcome)
                    break
                self.failures += 1
                with self._changed:
                    if self._closing:
                        self._inFlight = 0
                        self.dropped += len(batch)
                        self._changed.notify_all()
                        break
                    self._changed.wait(delay)
                delay = min(delay * 2, self.maxRetryDelay)
        if self._connection is not None:
            self._connection.close()

    def _connect(self) -> http.client.HTTPConnection:
        host, port = self._netloc
        if self._scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self.sslContext)
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _send(self, batch: list[bytes]) -> tuple[int, int] | str | None:
        """
        POST C{batch} once.

        @return: (acknowledged, refused) records; L{None} to try again;
            C{"smaller"} to send it again in smaller batches.
        """
        body = b"".join(batch)
        try:
            if self._connection is None:
                self._connection = self._connect()
            self._connection.request("POST", self._path, body, self._headers)
            response = self._connection.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as e:
            # A kept-alive connection the server closed, or no server: a new
            # connection next time.
            if self._connection is not None:
                self._connection.close()
            self._connection = None
            self._warn(f"cannot reach {self.url}: {e}")
            return None
        if response.getheader("connection", "").lower() == "close":
            self._connection.close()
            self._connection = None
        if 200 <= response.status < 300:
            return len(batch), 0
        if response.status in _RETRY_STATUSES:
            self._warn(f"{self.url} answered {response.status}, retrying")
            return None
        if response.status == 413 and len(batch) > 1:
            return "smaller"
        # Refused for good (400, 401, 403, ...): sending again cannot help.
        self._warn(f"{self.url} refused {len(batch)} records: {response.status} {answer[:200]!r}")
        return 0, len(batch)

    def _warn(self, message: str) -> None:
        """
        Say the first delivery problem on L{errors} (stderr): logging
        through logging from here would queue to this very handler.
        """
        if not self._warned:
            self._warned = True
            print(f"logsvc.handler: {message}", file=self.errors)

