"""
The HTTP API through L{treq.testing.StubTreq} over the real Resource tree, and
L{LogsvcSite}'s body cap over an in-memory connection.
"""

from __future__ import annotations

from typing import Any

import orjson
import treq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from logsvc.record import Record
from logsvc.store.base import StoreError
from logsvc.testing import MemoryLogService
from logsvc.web.app import LogsvcSite, buildRoot
from logsvc.web.common import JSONResource


def result(testCase: SynchronousTestCase, d: Deferred[Any]) -> Any:
    return testCase.successResultOf(d)


class APITestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.service = MemoryLogService()
        self.treq = self.service.treq

    def request(
        self, method: str, path: str, body: bytes | None = None, contentType: str | None = None,
        headers: dict[bytes, list[bytes]] | None = None,
    ) -> tuple[int, Any, Any]:
        """
        @return: status, decoded JSON body (or raw bytes) and the response.
        """
        allHeaders = dict(headers or {})
        if contentType is not None:
            allHeaders[b"content-type"] = [contentType.encode()]
        response = result(
            self, self.treq.request(method, "http://logsvc.test" + path, data=body, headers=allHeaders)
        )
        raw = result(self, treq.content(response))
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError:
            decoded = raw
        return response.code, decoded, response

    def messages(self) -> list[str]:
        return [row[6] for row in self.service.store.rows]


class PostLogsTests(APITestCase):
    def test_single_object(self) -> None:
        """
        One JSON object is stored and answered C{201 {"accepted": 1}}.
        """
        code, body, _ = self.request("POST", "/logs", b'{"message": "one", "level": "err"}', "application/json")
        self.assertEqual((code, body), (201, {"accepted": 1}))
        self.assertEqual(self.service.store.rows[0][3:7], (3, "127.0.0.1", "", "one"))

    def test_array(self) -> None:
        """
        A JSON array stores every object, in order.
        """
        code, body, _ = self.request("POST", "/logs", b'[{"msg": "a"}, {"msg": "b"}]', "application/json")
        self.assertEqual((code, body), (201, {"accepted": 2}))
        self.assertEqual(self.messages(), ["a", "b"])

    def test_ndjson(self) -> None:
        """
        NDJSON stores one record per non-blank line; a charset parameter is fine.
        """
        code, body, _ = self.request(
            "POST", "/logs", b'{"msg": "a"}\n\n{"msg": "b"}\r\n{"msg": "c"}', "application/x-ndjson; charset=utf-8"
        )
        self.assertEqual((code, body), (201, {"accepted": 3}))
        self.assertEqual(self.messages(), ["a", "b", "c"])

    def test_text_lines(self) -> None:
        """
        C{text/plain} bodies are taken as TCP lines are.
        """
        code, body, _ = self.request("POST", "/logs", b'hello\n{"msg": "json"}\n', "text/plain")
        self.assertEqual((code, body), (201, {"accepted": 2}))
        self.assertEqual(self.messages(), ["hello", "json"])

    def test_missing_content_type_is_json(self) -> None:
        """
        A body without a content type is read as JSON.
        """
        code, _, _ = self.request("POST", "/logs", b'{"msg": "x"}')
        self.assertEqual(code, 201)
        self.assertEqual(self.messages(), ["x"])

    def test_unknown_level_kept(self) -> None:
        """
        A record with a level that names none is stored (info, the original
        in fields.level), not refused.
        """
        code, body, _ = self.request("POST", "/logs", b'{"msg": "a", "level": "verbose"}', "application/json")
        self.assertEqual((code, body), (201, {"accepted": 1}))
        row = self.service.store.rows[0]
        self.assertEqual((row[3], row[6], orjson.loads(row[7])), (6, "a", {"level": "verbose"}))

    def test_curl_form_json(self) -> None:
        """
        A body starting with C{{} or C{[} labelled as a form (what C{curl -d}
        and C{--data-binary} send) is read as JSON, or NDJSON when it is
        several lines.
        """
        form = "application/x-www-form-urlencoded"
        code, body, _ = self.request("POST", "/logs", b'{"message": "one", "level": "warn"}', form)
        self.assertEqual((code, body), (201, {"accepted": 1}))
        code, body, _ = self.request("POST", "/logs", b' [{"message": "two"}, {"message": "three"}]', form)
        self.assertEqual((code, body), (201, {"accepted": 2}))
        code, body, _ = self.request("POST", "/logs", b'{"message": "four"}\n{"message": "five"}\n', form)
        self.assertEqual((code, body), (201, {"accepted": 2}))
        self.assertEqual(self.messages(), ["one", "two", "three", "four", "five"])
        self.assertEqual(self.service.store.rows[0][3], 4)
        code, body, _ = self.request("POST", "/logs", b"{nope", form)
        self.assertEqual(code, 400)
        self.assertIn("invalid JSON", body["error"])

    def test_one_bad_record_stores_nothing(self) -> None:
        """
        One invalid record of an array is a 400 naming its index; nothing of
        the request is stored.
        """
        code, body, _ = self.request(
            "POST", "/logs", b'[{"msg": "a"}, {"msg": "b", "ts": "yesterday"}]', "application/json"
        )
        self.assertEqual(code, 400)
        self.assertEqual(body["index"], 1)
        self.assertIn("ts", body["error"])
        self.assertEqual(self.messages(), [])

    def test_ndjson_bad_line(self) -> None:
        """
        An NDJSON syntax error names the line; nothing is stored.
        """
        code, body, _ = self.request("POST", "/logs", b'{"msg": "a"}\n{"msg": \n', "application/x-ndjson")
        self.assertEqual(code, 400)
        self.assertIn("line 2", body["error"])
        self.assertEqual(body["index"], 1)
        self.assertEqual(self.messages(), [])

    def test_invalid_json_names_offset(self) -> None:
        """
        Invalid JSON is a 400 naming the offset.
        """
        code, body, _ = self.request("POST", "/logs", b'{"msg": nope}', "application/json")
        self.assertEqual(code, 400)
        self.assertIn("offset 8", body["error"])

    def test_non_object(self) -> None:
        """
        A JSON value that is not an object is a 400.
        """
        code, body, _ = self.request("POST", "/logs", b'"just a string"', "application/json")
        self.assertEqual(code, 400)
        self.assertIn("JSON object", body["error"])

    def test_unknown_content_type(self) -> None:
        """
        An unknown content type is a 415 listing the supported ones.
        """
        code, body, _ = self.request("POST", "/logs", b"<log/>", "application/xml")
        self.assertEqual(code, 415)
        self.assertIn("application/x-ndjson", body["supported"])

    def test_body_over_limit(self) -> None:
        """
        A body over max-body is a 413 even when it reaches the resource (as
        through StubTreq, which does not use L{LogsvcSite}).
        """
        service = MemoryLogService()
        root = buildRoot(service.store, service.pipeline, maxBody=10)
        from treq.testing import StubTreq

        response = result(self, StubTreq(root).post("http://x/logs", data=b'{"msg": "0123456789"}'))
        self.assertEqual(response.code, 413)
        self.assertEqual(service.store.rows, [])

    def test_saturated_pipeline(self) -> None:
        """
        A full pipeline answers 503 with Retry-After and stores nothing.
        """
        self.service.pipeline.pending = self.service.pipeline.maxPending
        code, body, response = self.request("POST", "/logs", b'{"msg": "x"}', "application/json")
        self.assertEqual(code, 503)
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"1"])
        self.assertEqual(self.messages(), [])

    def test_search_timeout(self) -> None:
        """
        A search stopped by the search budget is a JSON 503 that says how
        to narrow the query, for a page and for an export alike.
        """
        from twisted.internet.defer import fail

        from logsvc.store.base import QueryTimeout

        self.service.store.query = lambda query: fail(QueryTimeout(10))  # type: ignore[method-assign]
        self.service.store.exportPage = lambda query: fail(QueryTimeout(10))  # type: ignore[method-assign]
        code, body, _ = self.request("GET", "/logs?q=common")
        self.assertEqual(code, 503)
        self.assertIn("--search-timeout", body["error"])
        self.assertIn("narrow it", body["error"])
        self.assertEqual(body["timeout_seconds"], 10)
        code, body, response = self.request("GET", "/logs?q=common&format=ndjson")
        self.assertEqual((code, body["timeout_seconds"]), (503, 10))
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"application/json"])

    def test_store_failure(self) -> None:
        """
        A failed append is a JSON 503, never a 201.
        """

        def failing(records: list[Record]) -> Deferred[int]:
            d: Deferred[int] = Deferred()
            d.errback(StoreError("disk I/O error"))
            return d

        self.service.store.append = failing  # type: ignore[method-assign]
        code, body, _ = self.request("POST", "/logs", b'{"msg": "x"}', "application/json")
        self.assertEqual(code, 503)
        self.assertIn("disk I/O error", body["error"])

    def test_response_waits_for_commit(self) -> None:
        """
        The 201 is sent only once the store's append has fired.
        """
        pending: list[Deferred[int]] = []

        def slow(records: list[Record]) -> Deferred[int]:
            d: Deferred[int] = Deferred()
            pending.append(d)
            return d

        self.service.store.append = slow  # type: ignore[method-assign]
        d = self.treq.post("http://x/logs", data=b'{"msg": "x"}')
        self.assertNoResult(d)
        pending[0].callback(1)
        self.service.treq.flush()
        self.assertEqual(self.successResultOf(d).code, 201)


class GetLogsTests(APITestCase):
    def setUp(self) -> None:
        super().setUp()
        records = [
            {"msg": f"m{i}", "ts": 1_700_000_000 + i, "level": ["info", "error", "warning"][i % 3],
             "service": ["api", "web"][i % 2], "host": f"h{i % 3}"}
            for i in range(12)
        ]
        self.request("POST", "/logs", orjson.dumps(records), "application/json")

    def test_default_newest_first(self) -> None:
        """
        Without arguments the newest records come first, each in the API shape.
        """
        code, body, _ = self.request("GET", "/logs")
        self.assertEqual(code, 200)
        self.assertEqual([r["message"] for r in body["logs"]], [f"m{i}" for i in range(11, -1, -1)])
        self.assertEqual(
            set(body["logs"][0]), {"id", "ts", "received", "level", "source", "service", "message", "fields"}
        )
        self.assertEqual(body["logs"][-1]["ts"], "2023-11-14T22:13:20.000000Z")
        self.assertIsNone(body["next"])

    def test_filters(self) -> None:
        """
        level (that severity or worse), service, source, since/until and q combine.
        """
        code, body, _ = self.request(
            "GET", "/logs?level=warning&service=web&since=1700000003&until=2023-11-14T22:13:31Z&order=asc"
        )
        self.assertEqual(code, 200)
        self.assertEqual([r["message"] for r in body["logs"]], ["m5", "m7"])
        _, body, _ = self.request("GET", "/logs?source=h0&source=h1&q=M1*&order=asc")
        self.assertEqual([r["message"] for r in body["logs"]], ["m1", "m10"])

    def test_paging(self) -> None:
        """
        Following C{next} visits every record once and ends with null.
        """
        seen: list[str] = []
        path = "/logs?limit=5"
        while True:
            _, body, _ = self.request("GET", path)
            seen.extend(r["message"] for r in body["logs"])
            if body["next"] is None:
                break
            path = "/logs?limit=5&cursor=" + body["next"]
        self.assertEqual(seen, [f"m{i}" for i in range(11, -1, -1)])

    def test_bad_arguments(self) -> None:
        """
        Invalid arguments are 400s naming the parameter.
        """
        for query, param in [
            ("since=yesterday", "since"),
            ("limit=0", "limit"),
            ("limit=10001", "limit"),
            ("order=sideways", "order"),
            ("cursor=!!!", "cursor"),
            ("level=loud", "level"),
        ]:
            code, body, _ = self.request("GET", "/logs?" + query)
            self.assertEqual((code, body["param"]), (400, param), query)


class EverythingIsJSONTests(APITestCase):
    def test_health(self) -> None:
        """
        C{/health} answers 200 with status ok.
        """
        code, body, _ = self.request("GET", "/health")
        self.assertEqual((code, body["status"]), (200, "ok"))

    def test_health_degraded(self) -> None:
        """
        C{/health} says degraded, naming the component and its error, while
        a helper fails, and ok again once it works.
        """
        from logsvc.health import ComponentHealth, HealthRegistry

        components = HealthRegistry()
        indexer = components.add(ComponentHealth("search_indexer"))
        self.service.root.children[b"health"].components = components  # type: ignore[attr-defined]
        indexer.failed("database or disk is full")
        code, body, _ = self.request("GET", "/health")
        self.assertEqual((code, body["status"]), (200, "degraded"))
        self.assertEqual(body["components"]["search_indexer"]["reason"], "database or disk is full")
        indexer.succeeded()
        code, body, _ = self.request("GET", "/health")
        self.assertEqual(
            (body["status"], body["components"]), ("ok", {"search_indexer": {"state": "ok", "reason": None}})
        )

    def test_health_down(self) -> None:
        """
        C{/health} answers 503 while a component is down (a load balancer
        takes the node out), with the schema's state and reason.
        """
        from logsvc.health import DOWN, ComponentHealth, HealthRegistry

        components = HealthRegistry()
        store = components.add(ComponentHealth("store", whenFailing=DOWN))
        components.add(ComponentHealth("tcp"))
        self.service.root.children[b"health"].components = components  # type: ignore[attr-defined]
        store.failed("connection refused")
        code, body, _ = self.request("GET", "/health")
        self.assertEqual((code, body["status"]), (503, "down"))
        self.assertEqual(
            body["components"],
            {
                "store": {"state": "down", "reason": "connection refused", "consecutive_failures": 1},
                "tcp": {"state": "ok", "reason": None},
            },
        )

    def test_metrics(self) -> None:
        """
        C{/metrics} counts accepted records in Prometheus text format.
        """
        self.request("POST", "/logs", b'[{"msg": "a"}, {"msg": "b"}]', "application/json")
        code, body, response = self.request("GET", "/metrics")
        self.assertEqual(code, 200)
        self.assertIn(b'logsvc_records_accepted_total{transport="http"} 2.0', body)

    def test_unknown_path(self) -> None:
        """
        An unknown path is a JSON 404.
        """
        code, body, _ = self.request("GET", "/nope/deeper")
        self.assertEqual(code, 404)
        self.assertIn("/nope/deeper", body["error"])

    def test_wrong_method(self) -> None:
        """
        An unsupported method is a JSON 405 with an Allow header.
        """
        code, body, response = self.request("DELETE", "/logs")
        self.assertEqual(code, 405)
        self.assertEqual(body["allowed"], ["GET", "HEAD", "POST"])
        self.assertEqual(response.headers.getRawHeaders(b"allow"), [b"GET, HEAD, POST"])

    def test_exception_is_json_500(self) -> None:
        """
        A resource that raises answers a JSON 500 without a traceback.
        """

        class Broken(JSONResource):
            def render_GET(self, request: object) -> bytes:
                raise RuntimeError("secret detail")

        self.service.root.putChild(b"broken", Broken())
        code, body, _ = self.request("GET", "/broken")
        self.assertEqual((code, body), (500, {"error": "internal error"}))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class SiteBodyCapTests(SynchronousTestCase):
    def connect(self, maxBody: int) -> tuple[Any, StringTransport]:
        service = MemoryLogService()
        # The site's own clock: the channel's timeouts must not be left on
        # the global reactor.
        site = LogsvcSite(
            buildRoot(service.store, service.pipeline, maxBody=maxBody), maxBody=maxBody, reactor=Clock()
        )
        protocol = site.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return (service, protocol), transport

    def test_announced_length_over_cap(self) -> None:
        """
        A Content-Length over the cap is answered 413 from the headers alone
        and the connection is closed without reading the body.
        """
        (service, protocol), transport = self.connect(100)
        protocol.dataReceived(
            b"POST /logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000\r\n\r\n" + b"x" * 1000
        )
        written = transport.value()
        self.assertTrue(written.startswith(b"HTTP/1.1 413 "), written)
        self.assertIn(b'"error":"body exceeds max-body of 100 bytes"', written)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(service.store.rows, [])

    def test_chunked_body_over_cap(self) -> None:
        """
        A chunked body is refused with 413 as soon as it passes the cap.
        """
        (service, protocol), transport = self.connect(100)
        protocol.dataReceived(
            b"POST /logs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + (b"40\r\n" + b"y" * 64 + b"\r\n") * 3
        )
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "))
        self.assertTrue(transport.disconnecting)

    def test_body_within_cap(self) -> None:
        """
        A body within the cap is stored and answered 201.
        """
        (service, protocol), transport = self.connect(100)
        body = b'{"msg": "fits"}'
        protocol.dataReceived(
            b"POST /logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.assertIn(b"HTTP/1.1 201 ", transport.value())
        self.assertEqual([row[6] for row in service.store.rows], ["fits"])

    def test_form_bodies_left_to_the_endpoint(self) -> None:
        """
        The site does not parse POST bodies as forms (each endpoint reads
        its own body): a malformed multipart body gets the endpoint's JSON
        415, not twisted.web's plain 400 and a dropped connection.
        """
        (service, protocol), transport = self.connect(1000)
        body = b"garbage"
        protocol.dataReceived(
            b"POST /logs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        written = transport.value()
        self.assertTrue(written.startswith(b"HTTP/1.1 415 "), written)
        self.assertIn(b'"error":', written)
        self.assertFalse(transport.disconnecting)

