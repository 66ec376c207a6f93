"""
The service's own counters, exported at C{GET /metrics} in Prometheus text
format.  Each L{Metrics} has its own registry, so tests and embedded uses
never share counts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class Metrics:
    """
    Counters and gauges of one logsvc instance.

    @ivar registry: the Prometheus registry holding them.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.accepted = Counter(
            "logsvc_records_accepted", "Records made durable, by transport.", ["transport"], registry=r
        )
        self.rejected = Counter(
            "logsvc_records_rejected",
            "Records or frames refused, by transport and reason.",
            ["transport", "reason"],
            registry=r,
        )
        self.retimed = Counter(
            "logsvc_records_retimed",
            "Records whose event time was too far ahead or older than retention: kept with the receive time.",
            registry=r,
        )
        self.batches = Counter("logsvc_store_batches", "Appends committed to the store.", registry=r)
        self.pending = Gauge(
            "logsvc_pipeline_pending_records", "Records submitted and not yet durable.", registry=r
        )
        self.connections = Gauge(
            "logsvc_tcp_connections", "Open TCP ingest connections.", registry=r
        )
        self.paused = Counter(
            "logsvc_pipeline_pauses", "Times ingest reading was paused for a full queue.", registry=r
        )
        self.httpRequests = Counter(
            "logsvc_http_requests", "HTTP requests answered, by status code.", ["code"], registry=r
        )

    def render(self) -> bytes:
        """
        @return: every metric in Prometheus text exposition format.
        """
        return generate_latest(self.registry)
