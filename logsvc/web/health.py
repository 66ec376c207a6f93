"""C{GET /health} and C{GET /metrics}."""

from __future__ import annotations

import time

from twisted.web.server import Request

from logsvc import __version__
from logsvc.health import HealthRegistry
from logsvc.metrics import Metrics
from logsvc.pipeline import Pipeline
from logsvc.web.common import JSONResource, writeJSON


class HealthResource(JSONResource):
    """
    C{200 {"status": "ok", ...}} while the service runs; never needs a token.
    C{status} is C{"degraded"} while a helper (the search indexer, the WAL
    checkpointer, retention) is failing; C{components} says which, and why.
    """

    isLeaf = True

    def __init__(self, pipeline: Pipeline, components: HealthRegistry | None = None) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.components = components if components is not None else HealthRegistry()
        self.started = time.time()

    def render_GET(self, request: Request) -> bytes:
        return writeJSON(
            request,
            200,
            {
                "status": self.components.status,
                "components": self.components.report(),
                "version": __version__,
                "uptime_seconds": round(time.time() - self.started, 3),
                "pending_records": self.pipeline.pending,
                "saturated": self.pipeline.saturated,
            },
        )


class MetricsResource(JSONResource):
    """
    The service's counters in Prometheus text format.
    """

    isLeaf = True

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
        return self.metrics.render()
