"""
Test helpers users can reuse: a whole logsvc HTTP API in memory, driven
through L{treq.testing.StubTreq}, with no sockets, threads or reactor.

    server = MemoryLogService()
    client = server.client()
    d = client.send({"message": "hi"})   # already fired
    assert server.store.rows[0][6] == "hi"
"""

from __future__ import annotations

from treq.testing import StubTreq
from twisted.internet.task import Clock

from logsvc.client import LogClient
from logsvc.metrics import Metrics
from logsvc.pipeline import Pipeline
from logsvc.store.memory import MemoryStore
from logsvc.web.app import RootResource, buildRoot


class MemoryLogService:
    """
    A logsvc resource tree over a L{MemoryStore}, with a pipeline that flushes
    every submission at once.

    @ivar store: the L{MemoryStore}.
    @ivar pipeline: the L{Pipeline}.
    @ivar root: the root resource.
    @ivar clock: the L{Clock} the pipeline schedules on.
    """

    def __init__(self) -> None:
        self.clock = Clock()
        self.metrics = Metrics()
        self.store = MemoryStore()
        self.pipeline = Pipeline(self.store, reactor=self.clock, metrics=self.metrics, delay=0)
        self.root: RootResource = buildRoot(self.store, self.pipeline, metrics=self.metrics, clock=self.clock)
        self.treq = StubTreq(self.root)

    def client(self, baseURL: str = "http://logsvc.test") -> LogClient:
        """
        @return: a L{LogClient} talking to this in-memory service.
        """
        return LogClient(baseURL, httpClient=self.treq, clock=self.clock)  # type: ignore[arg-type]
