"""
Shared helpers for the shipper endpoint tests: requests through StubTreq over
the real tree of a L{MemoryLogService}.
"""

from __future__ import annotations

from typing import Any

import orjson
import treq
from twisted.trial.unittest import SynchronousTestCase

from logsvc.testing import MemoryLogService


class ShipperTestCase(SynchronousTestCase):
    """
    A test case with an in-memory logsvc and a C{request} helper.
    """

    def setUp(self) -> None:
        self.service = MemoryLogService()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, Any]:
        """
        @return: status, the body decoded as JSON (or the raw bytes), the response.
        """
        response = self.successResultOf(
            self.service.treq.request(
                method,
                "http://logsvc.test" + path,
                data=body,
                headers={k: [v] for k, v in (headers or {}).items()},
            )
        )
        raw = self.successResultOf(treq.content(response))
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError:
            decoded = raw
        return response.code, decoded, response

    def rows(self) -> list[dict[str, Any]]:
        """
        @return: the stored records as dicts (fields decoded).
        """
        names = ("id", "ts", "received", "level", "source", "service", "message", "fields")
        out = []
        for row in self.service.store.rows:
            record = dict(zip(names, row, strict=True))
            record["fields"] = orjson.loads(record["fields"]) if record["fields"] else {}
            out.append(record)
        return out
