"""
Tests for the query size limits (L{logsvc.query.checkQuerySize}): enforced
the same for searches and live tails, with a clear 400.
"""

from __future__ import annotations

import orjson
import treq
from twisted.trial.unittest import SynchronousTestCase

from logsvc.query import (
    MAX_QUERY_BYTES,
    MAX_QUERY_DEPTH,
    MAX_QUERY_REGEXES,
    MAX_QUERY_TERMS,
    QueryError,
    parseQuery,
)
from logsvc.testing import MemoryLogService


def parse(q: str, **more: str) -> object:
    args = {b"q": [q.encode()]}
    args.update({k.encode(): [v.encode()] for k, v in more.items()})
    return parseQuery(args)


def nested(levels: int) -> str:
    """A q whose tree nests an OR and an AND per level (parentheses that add no structure are flattened)."""
    return "x" if levels == 0 else f"a{levels} OR (b{levels} ({nested(levels - 1)}))"


class LimitTests(SynchronousTestCase):
    def test_atTheLimits(self) -> None:
        """A query at every limit is taken."""
        parse(" ".join(f"-w{n}" for n in range(MAX_QUERY_TERMS)))
        parse(" ".join(f"~\"r{n}\"" for n in range(MAX_QUERY_REGEXES)))
        parse(nested(MAX_QUERY_DEPTH // 2 - 1))

    def test_overTheLimits(self) -> None:
        """Past any limit, a QueryError on q names the limit."""
        for q, words in [
            ("x" * (MAX_QUERY_BYTES + 1), f"longer than {MAX_QUERY_BYTES} bytes"),
            (" ".join(f"-w{n}" for n in range(MAX_QUERY_TERMS + 1)), f"more than {MAX_QUERY_TERMS}"),
            (" ".join(f"~\"r{n}\"" for n in range(MAX_QUERY_REGEXES + 1)), "regular expressions"),
            (nested(MAX_QUERY_DEPTH // 2 + 1), "nested"),
        ]:
            error = self.assertRaises(QueryError, parse, q)
            self.assertEqual(error.param, "q")
            self.assertIn(words, str(error))

    def test_fieldFiltersCount(self) -> None:
        """field. filters count as terms."""
        args = {b"q": [" ".join(f"w{n}" for n in range(MAX_QUERY_TERMS)).encode()], b"field.a": [b"1"]}
        self.assertRaises(QueryError, parseQuery, args)

    def test_searchAndTailAlike(self) -> None:
        """GET /logs and GET /logs/tail answer the same JSON 400 for a query past the limits (the issue's 1,500 exclusions)."""
        service = MemoryLogService()
        q = " ".join(f"-word{n}" for n in range(1500))
        for path in ("/logs", "/logs/tail"):
            response = self.successResultOf(service.treq.get("http://logsvc.test" + path, params={"q": q}))
            body = orjson.loads(self.successResultOf(treq.content(response)))
            self.assertEqual((response.code, body["param"]), (400, "q"), path)
            self.assertIn("narrow it", body["error"])
