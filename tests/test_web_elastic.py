"""
Tests for the Elasticsearch API subset (L{logsvc.web.elastic},
L{logsvc.formats.elastic}).
"""

from __future__ import annotations

import gzip

import orjson

from tests.shippers import ShipperTestCase

NDJSON = {"content-type": "application/x-ndjson"}


def bulk(*lines: object) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


class DiscoveryTests(ShipperTestCase):
    """
    The calls shippers make before sending.
    """

    def test_rootInfo(self) -> None:
        """
        C{GET /} has the version info and product header clients check, and
        still lists logsvc's endpoints.
        """
        code, body, response = self.request("GET", "/")
        self.assertEqual(code, 200)
        self.assertEqual(response.headers.getRawHeaders("x-elastic-product"), ["Elasticsearch"])
        self.assertEqual(body["tagline"], "You Know, for Search")
        self.assertEqual(body["version"]["build_flavor"], "default")
        self.assertTrue(body["version"]["number"].startswith("8."))
        self.assertIn("logs", body["endpoints"])

    def test_head(self) -> None:
        """
        C{HEAD /} answers 200 with the product header.
        """
        code, _, response = self.request("HEAD", "/")
        self.assertEqual(code, 200)
        self.assertEqual(response.headers.getRawHeaders("x-elastic-product"), ["Elasticsearch"])

    def test_licenseAndHealth(self) -> None:
        """
        C{/_license} is an active basic license, C{/_cluster/health} green.
        """
        self.assertEqual(self.request("GET", "/_license")[1]["license"]["status"], "active")
        self.assertEqual(self.request("GET", "/_cluster/health")[1]["status"], "green")

    def test_setupCallsAcknowledged(self) -> None:
        """
        Template and ILM setup calls are acknowledged and ignored.
        """
        code, body, response = self.request("PUT", "/_index_template/filebeat", b"{}")
        self.assertEqual((code, body), (200, {"acknowledged": True}))
        self.assertEqual(response.headers.getRawHeaders("x-elastic-product"), ["Elasticsearch"])
        self.assertEqual(self.request("HEAD", "/_ilm/policy/filebeat")[0], 200)

    def test_unknownStillNotFound(self) -> None:
        """
        An unknown non-Elasticsearch path is still a JSON 404.
        """
        code, body, _ = self.request("GET", "/nothing/here")
        self.assertEqual(code, 404)
        self.assertIn("error", body)


class BulkTests(ShipperTestCase):
    """
    C{POST /_bulk} and C{POST /{index}/_bulk}.
    """

    def test_bulkStoresAndAnswers(self) -> None:
        """
        index and create actions are stored; the answer has took, errors and
        one item per action with status, _index and _id.
        """
        body = bulk(
            {"index": {"_index": "app-logs", "_id": "a1"}},
            {"@timestamp": "2026-11-22T10:00:00Z", "message": "one", "log": {"level": "error"},
             "host": {"name": "web1", "ip": "10.0.0.1"}, "service": {"name": "api"}},
            {"create": {}},
            {"message": "two", "level": "debug"},
        )
        code, answer, response = self.request("POST", "/_bulk", body, NDJSON)
        self.assertEqual(code, 200)
        self.assertEqual(response.headers.getRawHeaders("x-elastic-product"), ["Elasticsearch"])
        self.assertIsInstance(answer["took"], int)
        self.assertFalse(answer["errors"])
        first, second = answer["items"]
        self.assertEqual(
            (first["index"]["status"], first["index"]["_index"], first["index"]["_id"]), (201, "app-logs", "a1")
        )
        rows = self.rows()
        self.assertEqual((second["create"]["status"], second["create"]["_id"]), (201, str(rows[1]["id"])))
        self.assertEqual(
            [(r["level"], r["source"], r["service"], r["message"]) for r in rows],
            [(3, "web1", "api", "one"), (7, "127.0.0.1", "", "two")],
        )
        self.assertEqual(rows[0]["fields"], {"host.ip": "10.0.0.1", "_index": "app-logs", "_id": "a1"})
        self.assertEqual(rows[1]["fields"], {"_index": "logs"})

    def test_indexFromPath(self) -> None:
        """
        C{/{index}/_bulk} sets the index of actions that name none.
        """
        body = bulk({"index": {}}, {"message": "x"}, {"index": {"_index": "other"}}, {"message": "y"})
        code, answer, _ = self.request("POST", "/myidx/_bulk", body, NDJSON)
        self.assertEqual(code, 200)
        self.assertEqual([i["index"]["_index"] for i in answer["items"]], ["myidx", "other"])
        self.assertEqual([r["fields"]["_index"] for r in self.rows()], ["myidx", "other"])

    def test_partialFailure(self) -> None:
        """
        A bad document, an unsupported action and a final action without a
        document fail in their items; the valid documents are stored.
        """
        body = (
            bulk({"index": {}}, {"message": "good 1"}, {"index": {}})
            + b'{"message": broken\n'
            + bulk({"delete": {"_id": "9"}}, {"create": {}}, {"message": "good 2", "ts": "never"})
            + bulk({"index": {}}, {"message": "good 3"}, {"index": {"_id": "last"}})
        )
        code, answer, _ = self.request("POST", "/_bulk", body, NDJSON)
        self.assertEqual(code, 200)
        self.assertTrue(answer["errors"])
        statuses = [next(iter(item.values()))["status"] for item in answer["items"]]
        self.assertEqual(statuses, [201, 400, 400, 400, 201, 400])
        errors = [next(iter(item.values())).get("error", {}).get("type") for item in answer["items"]]
        self.assertEqual(errors[1], "document_parsing_exception")
        self.assertEqual(errors[5], "action_request_validation_exception")
        self.assertEqual(answer["items"][5]["index"]["_id"], "last")
        self.assertEqual([r["message"] for r in self.rows()], ["good 1", "good 3"])

    def test_gzipAndCompatibleType(self) -> None:
        """
        A gzip body with the versioned media type official clients send is taken.
        """
        body = gzip.compress(bulk({"index": {}}, {"message": "z"}))
        code, answer, _ = self.request(
            "POST",
            "/_bulk",
            body,
            {"content-type": "application/vnd.elasticsearch+x-ndjson; compatible-with=8", "content-encoding": "gzip"},
        )
        self.assertEqual((code, answer["errors"]), (200, False))
        self.assertEqual(self.rows()[0]["message"], "z")

    def test_emptyBody(self) -> None:
        """
        An empty bulk body is a 400 in Elasticsearch's error shape.
        """
        code, answer, _ = self.request("POST", "/_bulk", b"", NDJSON)
        self.assertEqual(code, 400)
        self.assertEqual(answer["status"], 400)
        self.assertIn("reason", answer["error"])

    def test_bomb(self) -> None:
        """
        A gzip bomb is a 413 and nothing is stored.
        """
        bomb = gzip.compress(b"\n" * (11 * 1024 * 1024))
        code, _, _ = self.request("POST", "/_bulk", bomb, {**NDJSON, "content-encoding": "gzip"})
        self.assertEqual(code, 413)
        self.assertEqual(self.rows(), [])

    def test_singleDoc(self) -> None:
        """
        C{POST /{index}/_doc} stores one document and answers 201 with its id.
        """
        code, answer, _ = self.request("POST", "/idx/_doc", b'{"message": "solo"}', {"content-type": "application/json"})
        self.assertEqual((code, answer["result"], answer["_index"]), (201, "created", "idx"))
        self.assertEqual(answer["_id"], str(self.rows()[0]["id"]))
