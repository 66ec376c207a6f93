"""C{GET /health} and C{GET /metrics}."""

from __future__ import annotations

import time

from twisted.web.server import Request

from logsvc import __version__
from logsvc.health import DOWN, HealthRegistry
from logsvc.metrics import Metrics
from logsvc.pipeline import Pipeline
from logsvc.web.common import JSONResource, writeJSON


class HealthResource(JSONResource):
    """
    C{{"status": ..., "components": {...}}} (the schema is
    L{logsvc.health}'s), with the version, the uptime and the pipeline's
    backlog; 200 while the status is ok or degraded, 503 while it is down.
    Never needs a token.
    """

    isLeaf = True

    def __init__(self, pipeline: Pipeline, components: HealthRegistry | None = None) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.components = components if components is not None else HealthRegistry()
        self.started = time.time()

    def render_GET(self, request: Request) -> bytes:
        status = self.components.status
        return writeJSON(
            request,
            503 if status == DOWN else 200,
            {
                "status": status,
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
