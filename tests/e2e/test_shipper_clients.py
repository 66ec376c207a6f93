"""
End to end with real shipper client libraries against ``twistd -n logsvc``:
the official Elasticsearch Python client (its product check, ``info``,
``helpers.bulk`` with a partial failure, ``index``, ``cluster.health``) and
graypy's GELF TCP and HTTP handlers.
"""

from __future__ import annotations

import logging
import time

from twisted.trial.unittest import SkipTest, TestCase

from tests.e2e.server import TwistdServer
from tests.e2e.test_senders import storedRows
from tests.ports import freePort


class ElasticsearchClientTests(TestCase):
    """
    The official client talks to logsvc as to Elasticsearch.
    """

    def setUp(self) -> None:
        try:
            import elasticsearch  # noqa: F401
        except ImportError:
            raise SkipTest("the elasticsearch client is not installed (pip install '.[test]')") from None
        self.server = TwistdServer(self.mktemp())
        self.server.start()
        self.addCleanup(self.server.kill)

    def test_clientJustWorks(self) -> None:
        """
        info, bulk (one bad document reported in its item, the rest stored),
        index and cluster health all succeed through the client's checks.
        """
        from elasticsearch import Elasticsearch, helpers

        client = Elasticsearch(self.server.httpURL, request_timeout=30)
        self.addCleanup(client.close)
        self.assertEqual(client.info()["tagline"], "You Know, for Search")
        actions = [
            {"_index": "app", "message": f"doc {i}", "log": {"level": "warn"}, "host": {"name": "web1"}}
            for i in range(5)
        ]
        actions.insert(2, {"_index": "app", "message": "bad", "ts": "LOUD"})
        stored, errors = helpers.bulk(client, actions, raise_on_error=False)
        self.assertEqual(stored, 5)
        self.assertEqual(len(errors), 1)
        self.assertEqual(errors[0]["index"]["status"], 400)
        self.assertIn("LOUD", errors[0]["index"]["error"]["reason"])
        self.assertEqual(client.index(index="single", document={"message": "one"})["result"], "created")
        self.assertEqual(client.cluster.health()["status"], "green")
        rows = storedRows(self.server, 6)
        self.assertEqual(
            [(r["message"], r["level"], r["source"], r["fields"]["_index"]) for r in rows],
            [(f"doc {i}", 4, "web1", "app") for i in range(5)] + [("one", 6, "127.0.0.1", "single")],
        )


class GraypyTests(TestCase):
    """
    graypy's handlers, unchanged, over GELF TCP and GELF HTTP.
    """

    def test_tcpAndHTTP(self) -> None:
        """
        A record sent by each handler is stored with level, host, logger and
        extra fields.
        """
        try:
            import graypy
        except ImportError:
            raise SkipTest("graypy is not installed (pip install '.[test]')") from None
        gelfPort = freePort()
        server = TwistdServer(self.mktemp(), "--gelf", f"tcp:{gelfPort}:interface=127.0.0.1")
        server.start()
        self.addCleanup(server.kill)
        log = logging.getLogger(f"graypy.{id(self)}")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        for handler in (
            graypy.GELFTCPHandler("127.0.0.1", gelfPort),
            graypy.GELFHTTPHandler("127.0.0.1", server.httpPort, path="/gelf"),
        ):
            log.addHandler(handler)
            log.error("sent by %s", type(handler).__name__, extra={"request_id": "r1"})
            log.removeHandler(handler)
            handler.close()
            storedRows(server, 1 if "TCP" in type(handler).__name__ else 2)
        rows = sorted(storedRows(server, 2), key=lambda r: r["message"])
        self.assertEqual(
            [(r["message"], r["level"]) for r in rows],
            [("sent by GELFHTTPHandler", 3), ("sent by GELFTCPHandler", 3)],
        )
        for row in rows:
            self.assertEqual(row["fields"]["request_id"], "r1")
            self.assertLess(abs(row["ts"] - time.time() * 1_000_000), 600 * 1_000_000)
