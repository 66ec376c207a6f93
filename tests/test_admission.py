"""
Tests for L{logsvc.admission}: --max-pending bounds every HTTP submission,
and a saturated queue is shared fairly between senders; through StubTreq
over the real Resource tree.
"""

from __future__ import annotations

from typing import Any

import orjson
import treq
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from logsvc.admission import FairAdmission
from logsvc.metrics import Metrics
from logsvc.pipeline import Pipeline
from logsvc.web.app import buildRoot
from tests.fakes import HeldStore


class AdmissionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = HeldStore()
        self.pipeline = Pipeline(self.store, reactor=self.clock, metrics=Metrics(), delay=0, maxPending=100)
        self.treq = StubTreq(buildRoot(self.store, self.pipeline, clock=self.clock))

    def post(self, body: bytes, contentType: str = "text/plain", token: str | None = None, path: str = "/logs") -> tuple[int, Any, Any]:
        headers = {b"content-type": [contentType.encode()]}
        if token is not None:
            headers[b"authorization"] = [b"Bearer " + token.encode()]
        d = self.treq.post("http://logsvc.test" + path, body, headers=headers)
        self.treq.flush()
        answered: list[Any] = []
        d.addCallback(answered.append)
        if not answered:
            # Admitted: the answer waits for the held store.
            return 0, None, d
        response = answered[0]
        raw = self.successResultOf(treq.content(response))
        return response.code, orjson.loads(raw), response

    def test_textBodyOverMaxPending413(self) -> None:
        """A text body of more lines than --max-pending is refused 413 up front, naming the bound; nothing is queued."""
        code, body, _ = self.post(b"x\n" * 1000)
        self.assertEqual(code, 413)
        self.assertIn("max-pending (100)", body["error"])
        self.assertEqual((self.pipeline.pending, self.store.held), (0, []))

    def test_jsonArrayOverMaxPending413(self) -> None:
        """A JSON array of more records than --max-pending is refused 413, on the shippers' endpoints too."""
        code, body, _ = self.post(orjson.dumps([{"msg": str(n)} for n in range(101)]), "application/json")
        self.assertEqual(code, 413)
        bulk = b"".join(b'{"index": {}}\n' + orjson.dumps({"message": str(n)}) + b"\n" for n in range(101))
        code, body, _ = self.post(bulk, "application/x-ndjson", path="/_bulk")
        self.assertEqual(code, 413)
        self.assertIn("max-pending (100)", body["error"]["reason"] if isinstance(body["error"], dict) else body["error"])
        self.assertEqual(self.pipeline.pending, 0)

    def test_wouldPassMaxPending503(self) -> None:
        """A submission that would take the queue past --max-pending is refused 503 with Retry-After."""
        code, _, _ = self.post(b"x\n" * 80)
        self.assertEqual((code, self.pipeline.pending), (0, 80))
        code, body, response = self.post(b"x\n" * 30)
        self.assertEqual(code, 503)
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"1"])
        self.assertEqual(self.pipeline.pending, 80)

    def test_floodShares(self) -> None:
        """
        While a flooding sender holds the queue, another sender refused once
        gets its share: the flood's further requests are the ones refused,
        and the other sender's next request is admitted.
        """
        for _ in range(2):
            code, _, _ = self.post(b"x\n" * 45, token="flood")
            self.assertEqual(code, 0)  # admitted, waiting for the store
        # Full for everyone now.
        self.assertEqual(self.post(b"x\n" * 20, token="good")[0], 503)
        self.store.release()
        # The flood is at it again at once; the good sender is waiting, so
        # the flood may hold only half the queue.
        self.assertEqual(self.post(b"x\n" * 45, token="flood")[0], 0)
        self.assertEqual(self.post(b"x\n" * 45, token="flood")[0], 503)
        self.assertEqual(self.post(b"x\n" * 20, token="good")[0], 0)
        self.store.release()
        self.assertEqual(self.pipeline.pending, 0)
        self.assertEqual(self.pipeline.admission.held, {})

    def test_waitingExpires(self) -> None:
        """A sender refused long ago no longer shrinks the others' share."""
        admission = FairAdmission(self.pipeline, clock=self.clock)
        admission.admit("a", 60)
        self.pipeline.pending = 60
        self.assertIsNotNone(admission.refusal("b", 50))
        self.assertIsNotNone(admission.refusal("a", 10))
        self.clock.advance(10)
        self.assertIsNone(admission.refusal("a", 10))
