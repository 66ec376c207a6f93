"""
Tests for L{logsvc.web.fields}: C{GET /fields} and C{GET /stats?by=field.KEY}
over the newest matches of a query, exact or sampled.
"""

from __future__ import annotations

from typing import Any

import orjson
import treq
from twisted.trial.unittest import SynchronousTestCase

from logsvc.record import Record
from logsvc.testing import MemoryLogService
from logsvc.web import fields as module
from tests.storetests import SECOND, T0, languageRecords


class FieldsAPITests(SynchronousTestCase):
    def setUp(self) -> None:
        self.service = MemoryLogService()
        self.service.store.append(languageRecords())

    def get(self, path: str, **params: Any) -> tuple[int, Any]:
        response = self.successResultOf(self.service.treq.get("http://logsvc.test" + path, params=params))
        return response.code, orjson.loads(self.successResultOf(treq.content(response)))

    def test_names(self) -> None:
        """GET /fields lists the field names of the matches, most frequent first, with counts and shares."""
        code, body = self.get("/fields")
        self.assertEqual(code, 200)
        self.assertEqual((body["total"], body["sampled"]), (8, False))
        names = {f["name"]: (f["count"], f["share"]) for f in body["fields"]}
        self.assertEqual(names["ms"], (5, 0.625))
        self.assertEqual(names["user"], (4, 0.5))
        self.assertEqual(names["trace_id"], (2, 0.25))
        self.assertEqual(body["fields"][0], {"name": "ms", "count": 5, "share": 0.625})

    def test_namesOfAQuery(self) -> None:
        """The names follow the query language and the plain filters."""
        code, body = self.get("/fields", q="service:api -timeout", limit="2")
        self.assertEqual(code, 200)
        self.assertEqual(body["total"], 2)
        self.assertEqual([f["name"] for f in body["fields"]], ["ms", "path"])

    def test_namesWithValues(self) -> None:
        """values=N gives each listed field its top N values, as by=field.KEY lists them."""
        code, body = self.get("/fields", limit="2", values="2")
        self.assertEqual(code, 200)
        self.assertEqual([f["name"] for f in body["fields"]], ["ms", "user"])
        for field in body["fields"]:
            _, alone = self.get("/stats", by="field." + field["name"], limit="2")
            self.assertEqual(field["values"], alone["values"])
            self.assertEqual(field["count"], alone["present"])
        code, body = self.get("/fields")
        self.assertNotIn("values", body["fields"][0])
        code, body = self.get("/fields", values="0")
        self.assertEqual((code, body["param"]), (400, "values"))

    def test_topValues(self) -> None:
        """by=field.KEY lists the values with counts (42 and "42" apart) and the share having the key."""
        code, body = self.get("/stats", by="field.user")
        self.assertEqual(code, 200)
        self.assertEqual(
            body,
            {
                "total": 8,
                "sampled": False,
                "by": "field.user",
                "present": 4,
                "share": 0.5,
                "values": [
                    {"value": "42", "count": 1},
                    {"value": "admin", "count": 1},
                    {"value": 42, "count": 1},
                    {"value": 7, "count": 1},
                ],
            },
        )

    def test_topValuesLimitedAndFiltered(self) -> None:
        """limit caps the values; the query's filters apply; objects and null are values too."""
        code, body = self.get("/stats", by="field.trace_id", q="level>=error", limit="1")
        self.assertEqual((code, body["total"], body["present"], body["values"]), (200, 4, 1, [{"value": None, "count": 1}]))
        code, body = self.get("/stats", by="field.nested")
        self.assertEqual(body["values"], [{"value": {"a": 1}, "count": 1}])

    def test_sampled(self) -> None:
        """Past FIELD_SAMPLE matches, the newest are read, and the answer says it is a sample."""
        self.patch(module, "FIELD_SAMPLE", 5)
        self.service.store.append(
            [Record(T0 + (100 + n) * SECOND, T0, 6, "h", "s", "m", orjson.dumps({"n": n}).decode()) for n in range(30)]
        )
        code, body = self.get("/fields")
        self.assertEqual((code, body["total"], body["sampled"]), (200, 5, True))
        code, body = self.get("/stats", by="field.n", limit="10")
        self.assertEqual((body["total"], body["sampled"], body["share"]), (5, True, 1.0))
        self.assertEqual(sorted(v["value"] for v in body["values"]), [25, 26, 27, 28, 29])

    def test_sampleAcrossPages(self) -> None:
        """A sample larger than a page is read page by page, each match once."""
        self.patch(module, "MAX_LIMIT", 3)
        code, body = self.get("/fields")
        self.assertEqual((body["total"], body["sampled"]), (8, False))
        self.patch(module, "FIELD_SAMPLE", 7)
        code, body = self.get("/stats", by="field.ms")
        self.assertEqual((body["total"], body["sampled"], body["present"]), (7, True, 4))

    def test_sampleParameter(self) -> None:
        """sample asks for fewer or more of the newest matches, up to MAX_SAMPLE."""
        code, body = self.get("/fields", sample="3")
        self.assertEqual((code, body["total"], body["sampled"]), (200, 3, True))
        code, body = self.get("/stats", by="field.user", sample="2")
        self.assertEqual((body["total"], body["present"]), (2, 0))
        code, body = self.get("/fields", sample="10001")
        self.assertEqual((code, body["param"]), (400, "sample"))

    def test_errors(self) -> None:
        """Bad arguments are JSON 400s naming the parameter; a bad q names the position."""
        code, body = self.get("/fields", limit="0")
        self.assertEqual((code, body["param"]), (400, "limit"))
        code, body = self.get("/fields", q="(a")
        self.assertEqual((code, body["param"], body["position"]), (400, "q", 0))
        code, body = self.get("/fields", bogus="1")
        self.assertEqual(code, 400)
        code, body = self.get("/stats", by="fields")
        self.assertEqual((code, body["param"]), (400, "by"))
