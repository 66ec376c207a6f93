"""twistd plugin: ``twistd logsvc`` runs the log service (see L{logsvc.tap})."""

from twisted.application.service import ServiceMaker

logsvc = ServiceMaker(
    "logsvc",
    "logsvc.tap",
    "Central log service: TCP/HTTP ingest, durable store, search and live tail.",
    "logsvc",
)
