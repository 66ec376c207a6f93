"""
End to end: search, stats, export and the live tail of a real
``twistd -n logsvc``, fed over TCP, read with L{LogClient}.
"""

from __future__ import annotations

from typing import Any

import orjson
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.e2e.server import TwistdServer
from tests.e2e.test_spine import makeClient, sendLines


def until(condition: Any, timeout: float = 30.0) -> Deferred[None]:
    """
    @return: a Deferred firing once C{condition()} is true, polling every
        50 ms, failing after C{timeout} seconds.
    """

    @inlineCallbacks
    def poll() -> Any:
        for _ in range(int(timeout / 0.05)):
            if condition():
                return
            yield deferLater(reactor, 0.05, lambda: None)
        raise AssertionError("condition not reached in time")

    return poll()  # type: ignore[no-any-return]


class SearchEndToEndTests(TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.server = TwistdServer(self.mktemp())
        self.server.start()
        self.addCleanup(self.server.kill)
        self.client = makeClient(self, self.server.httpURL)

    def send(self, lines: list[dict[str, Any]]) -> Deferred[None]:
        payload = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        return deferToThread(sendLines, self.server.tcpPort, payload)

    @inlineCallbacks
    def test_tail_over_tcp_survives_restart(self) -> Any:
        """LogClient.tail gets records sent over TCP, and after a server restart resumes with no gap or repeat."""
        received: list[dict[str, Any]] = []
        tail = self.client.tail(received.append, reconnectDelay=0.2, maxReconnectDelay=0.5, service="api")
        self.addCleanup(tail.stop)
        yield until(lambda: tail.connected)
        yield self.send([{"message": f"first {n}", "service": "api" if n % 3 else "db"} for n in range(30)])
        yield until(lambda: len(received) == 20)
        self.server.kill()
        self.server.start()
        yield self.send([{"message": f"second {n}", "service": "api"} for n in range(10)])
        yield until(lambda: len(received) == 30)
        self.assertEqual(
            [r["message"] for r in received],
            [f"first {n}" for n in range(30) if n % 3] + [f"second {n}" for n in range(10)],
        )
        ids = [r["id"] for r in received]
        self.assertEqual(ids, sorted(set(ids)))
        yield tail.stop()

    @inlineCallbacks
    def test_search_stats_export(self) -> Any:
        """Phrase search, field filters, stats and NDJSON export answer over a real server."""
        yield self.send(
            [{"message": "connection refused by db", "level": "error", "status": 503}]
            + [{"message": f"request {n} served", "status": 200} for n in range(40)]
        )
        yield until(lambda: len(self.server.messages()) == 41)
        page = yield self.client.query(q='"connection refused"')
        self.assertEqual([r["message"] for r in page.logs], ["connection refused by db"])
        page = yield self.client.query(fields={"status": 503})
        self.assertEqual(len(page.logs), 1)
        stats = yield self.client.stats(by="level")
        self.assertEqual(stats["values"], [{"value": "info", "count": 40}, {"value": "error", "count": 1}])
        response = yield treq.get(
            self.server.httpURL + "/logs?q=served", headers={b"accept": [b"application/x-ndjson"]}, persistent=False
        )
        body = yield treq.content(response)
        self.assertEqual(len(body.splitlines()), 40)
