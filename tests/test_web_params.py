"""
Tests for the read API's parameters through the real Resource tree
(L{logsvc.web.app.buildRoot} under L{treq.testing.StubTreq}): unknown
parameters are refused with the closest known one, relative times are resolved
once per search, and shipper endpoints ignore parameters they do not use.
"""

from __future__ import annotations

from typing import Any

import orjson
import treq
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from logsvc.metrics import Metrics
from logsvc.pipeline import Pipeline
from logsvc.query import TIME_FORMS, decodePosition
from logsvc.record import formatMicros
from logsvc.store.memory import MemoryStore
from logsvc.web.app import buildRoot

MINUTE = 60_000_000
#: The server's "now" in these tests: 2026-11-22T12:00:00Z.
NOW = 1_763_812_800_000_000


class ReadParametersTests(SynchronousTestCase):
    """
    C{GET /logs}, C{/logs/tail} and C{/stats} over an in-memory store whose
    current time is L{now}.
    """

    def setUp(self) -> None:
        self.now = NOW
        self.nowAsked = 0
        clock = Clock()
        store = MemoryStore()
        pipeline = Pipeline(store, reactor=clock, metrics=Metrics(), delay=0)

        def now() -> int:
            self.nowAsked += 1
            return self.now

        self.treq = StubTreq(buildRoot(store, pipeline, clock=clock, now=now))
        records = [
            {"message": f"{minutes} minutes ago", "ts": formatMicros(NOW - minutes * MINUTE), "service": "api"}
            for minutes in (150, 50, 40, 30, 5)
        ]
        body = b"".join(orjson.dumps(r) + b"\n" for r in records)
        response = self.successResultOf(
            self.treq.post(
                "http://logsvc.test/logs", data=body, headers={b"content-type": [b"application/x-ndjson"]}
            )
        )
        self.assertEqual(response.code, 201)
        self.nowAsked = 0

    def get(self, path: str, params: list[tuple[str, str]] | dict[str, str]) -> tuple[int, Any]:
        response = self.successResultOf(self.treq.get("http://logsvc.test" + path, params=params))
        body = self.successResultOf(treq.content(response))
        return response.code, orjson.loads(body) if body.startswith((b"{", b"[")) else body

    def messages(self, params: list[tuple[str, str]] | dict[str, str]) -> list[str]:
        code, body = self.get("/logs", params)
        self.assertEqual(code, 200, body)
        return [r["message"] for r in body["logs"]]

    def test_unknownParameterOnLogs(self) -> None:
        """
        A misspelt parameter on C{GET /logs} is a 400 naming it and the
        closest known parameter, not a search for every record.
        """
        code, body = self.get("/logs", {"levle": "error"})
        self.assertEqual(code, 400)
        self.assertEqual(body["param"], "levle")
        self.assertIn("unknown parameter", body["error"])
        self.assertIn("'level'", body["error"])
        self.assertEqual(body["suggestion"], "level")

    def test_unknownParameterWithoutCloseOne(self) -> None:
        """
        An unknown parameter resembling none lists the known ones instead.
        """
        code, body = self.get("/logs", {"xyzzy": "1"})
        self.assertEqual(code, 400)
        self.assertEqual(body["param"], "xyzzy")
        self.assertIn("known: ", body["error"])
        self.assertNotIn("suggestion", body)
        self.assertIn("cursor", body["error"])

    def test_unknownParameterOnStats(self) -> None:
        """
        C{GET /stats} refuses an unknown parameter and knows its own
        (C{intervl} suggests C{interval}).
        """
        code, body = self.get("/stats", {"intervl": "1h"})
        self.assertEqual((code, body["param"]), (400, "intervl"))
        self.assertIn("'interval'", body["error"])
        code, body = self.get("/stats", {"interval": "1h", "tz": "UTC", "by": "", "since": "1d"})
        self.assertEqual(code, 200, body)

    def test_unknownParameterOnTail(self) -> None:
        """
        C{GET /logs/tail} refuses an unknown parameter before streaming
        anything, and C{cursor}, which a tail has no use for, too.
        """
        code, body = self.get("/logs/tail", {"servce": "api"})
        self.assertEqual((code, body["param"]), (400, "servce"))
        self.assertIn("'service'", body["error"])
        code, body = self.get("/logs/tail", {"cursor": "x"})
        self.assertEqual((code, body["param"]), (400, "cursor"))

    def test_fieldFiltersAccepted(self) -> None:
        """
        C{field.KEY} parameters are known for any key; a bare C{field.} is
        refused as before.
        """
        self.assertEqual(self.messages({"field.anything": "x"}), [])
        code, body = self.get("/logs", {"field.": "x"})
        self.assertEqual((code, body["param"]), (400, "field."))

    def test_shipperEndpointsIgnoreUnknownParameters(self) -> None:
        """
        Ingest endpoints still ignore parameters they do not use (Beats send
        C{filter_path}, curl users C{pretty}).
        """
        bulk = b'{"index": {}}\n{"message": "from beats"}\n'
        response = self.successResultOf(
            self.treq.post(
                "http://logsvc.test/_bulk",
                params={"filter_path": "errors,items.*.error"},
                data=bulk,
                headers={b"content-type": [b"application/x-ndjson"]},
            )
        )
        self.assertEqual(response.code, 200)
        response = self.successResultOf(
            self.treq.post("http://logsvc.test/logs", params={"pretty": "1"}, json={"message": "plain"})
        )
        self.assertEqual(response.code, 201)

    def test_relativeSince(self) -> None:
        """
        C{since} takes a duration ago (C{45m}), C{now-45m} alike, resolved
        against the server's current time.
        """
        expected = ["5 minutes ago", "30 minutes ago", "40 minutes ago"]
        self.assertEqual(self.messages({"since": "45m"}), expected)
        self.assertEqual(self.messages({"since": "now-45m"}), expected)
        self.assertEqual(self.messages({"since": "NOW - 45M"}), expected)
        self.assertEqual(self.messages({"since": "2h", "until": "now-45m"}), ["50 minutes ago"])
        self.assertEqual(self.messages({"since": "1d", "until": "now"})[-1], "150 minutes ago")
        self.assertEqual(self.messages({"since": "1w"})[-1], "150 minutes ago")
        self.assertEqual(self.messages({"since": "3600s"}), expected + ["50 minutes ago"])

    def test_relativeOnStats(self) -> None:
        """
        C{/stats} takes relative times too: the histogram's bounds are the
        resolved instants.
        """
        code, body = self.get("/stats", {"since": "1h", "until": "now", "interval": "30m"})
        self.assertEqual(code, 200, body)
        self.assertEqual(body["total"], 4)
        self.assertEqual(body["since"], formatMicros(NOW - 60 * MINUTE))
        self.assertEqual(body["until"], formatMicros(NOW))

    def test_relativeOnTail(self) -> None:
        """
        C{/logs/tail} resolves a relative C{since} once, at the start: the
        replay leaves out what is older.
        """
        response = self.successResultOf(self.treq.get("http://logsvc.test/logs/tail?since_id=0&since=45m"))
        self.assertEqual(response.code, 200)
        chunks: list[bytes] = []
        treq.collect(response, chunks.append)
        self.treq.flush()
        events = [orjson.loads(line[6:]) for line in b"".join(chunks).split(b"\n") if line.startswith(b"data: ")]
        self.assertEqual(
            [e["message"] for e in events], ["40 minutes ago", "30 minutes ago", "5 minutes ago"]
        )

    def test_badTimeListsForms(self) -> None:
        """
        A time that cannot be read is a 400 naming the parameter and listing
        every accepted form.
        """
        for bad in ("yesterday", "-15m", "15 minutes", "now+5m", "15y"):
            code, body = self.get("/logs", {"until": bad})
            self.assertEqual((code, body["param"]), (400, "until"), bad)
            self.assertIn(TIME_FORMS, body["error"])

    def test_resolvedOnce(self) -> None:
        """
        The current time is asked once per request however many relative
        times it holds, and not at all for absolute ones.
        """
        self.messages({"since": "1h", "until": "now-1m"})
        self.assertEqual(self.nowAsked, 1)
        self.messages({"since": formatMicros(NOW - MINUTE)})
        self.assertEqual(self.nowAsked, 1)

    def test_pagingDoesNotSlide(self) -> None:
        """
        A relative time is resolved at the first page: the next pages, asked
        later with the same parameters and the C{next} cursor, keep the first
        page's bounds.
        """
        params = [("since", "55m"), ("order", "asc"), ("limit", "1")]
        code, first = self.get("/logs", params)
        self.assertEqual([r["message"] for r in first["logs"]], ["50 minutes ago"])
        seen = []
        cursor = first["next"]
        while cursor is not None:
            # Half an hour later: 55m would now leave out 50 and 40 minutes ago.
            self.now = NOW + 30 * MINUTE
            code, page = self.get("/logs", params + [("cursor", cursor)])
            self.assertEqual(code, 200, page)
            seen.extend(r["message"] for r in page["logs"])
            cursor = page["next"]
        self.assertEqual(seen, ["40 minutes ago", "30 minutes ago", "5 minutes ago"])
        self.assertEqual(self.nowAsked, 1)
        # A new search (no cursor) resolves anew: 55m is now 25 minutes ago.
        self.assertEqual(self.messages(params), ["5 minutes ago"])

    def test_absoluteCursorUnchanged(self) -> None:
        """
        A search without relative times gets the same cursor as before:
        only the position.
        """
        code, page = self.get("/logs", {"limit": "1", "since": formatMicros(NOW - 60 * MINUTE)})
        self.assertIsNone(decodePosition(page["next"])[2])
