"""
Enough of the Elasticsearch HTTP API that an Elasticsearch output (Beats,
Logstash, Fluent Bit, Vector, the official clients) pointed at logsvc just
works:

  - C{POST /_bulk} and C{POST /{index}/_bulk} (also C{PUT}): NDJSON action and
    document lines; valid documents are stored, failures are reported in
    their item (C{errors: true}); the answer has C{took}, C{errors} and one
    item per action with C{status}, C{_index}, C{_id} (the record id when the
    action gave none) and, on failure, C{error: {type, reason}};
  - C{POST /{index}/_doc}: one document;
  - discovery: C{GET /} (and C{HEAD /}) answers the version info clients check
    (C{version.number}, C{build_flavor}, C{tagline}) beside logsvc's own index;
    C{GET /_license}, C{GET /_xpack}, C{GET /_cluster/health}; any other
    C{/_...} API (templates, ILM policies, pipelines) is acknowledged and
    ignored: C{GET}/C{HEAD} answer 200 with C{{}}, writes C{{"acknowledged": true}};
  - every answer carries C{X-Elastic-Product: Elasticsearch}, which the
    official clients (7.14 and later) require.

The document mapping is in L{logsvc.formats.elastic}.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.web.resource import IResource
from twisted.web.server import Request

from logsvc.formats.elastic import BulkItem, documentRecord, parseBulk
from logsvc.formats.jsonline import loadJSON
from logsvc.pipeline import Pipeline
from logsvc.record import Record
from logsvc.web.body import ShipperEndpoint
from logsvc.web.common import JSONResource, NotFound, writeJSON

#: The Elasticsearch version logsvc claims: new enough that current shippers
#: do not refuse it as too old.
ELASTIC_VERSION = "8.17.0"

PRODUCT_HEADER = (b"x-elastic-product", b"Elasticsearch")

_SHARDS = {"total": 1, "successful": 1, "failed": 0}


def elasticInfo() -> dict[str, Any]:
    """
    @return: the keys of Elasticsearch's C{GET /} answer that clients check.
    """
    return {
        "name": "logsvc",
        "cluster_name": "logsvc",
        "cluster_uuid": "logsvc-0000000000000000000",
        "version": {
            "number": ELASTIC_VERSION,
            "build_flavor": "default",
            "build_type": "logsvc",
            "build_hash": "logsvc",
            "build_date": "2024-12-11T00:00:00.000000000Z",
            "build_snapshot": False,
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }


def markElastic(request: Request) -> None:
    """
    Set the product header the official clients require on C{request}.
    """
    request.setHeader(*PRODUCT_HEADER)


def elasticError(request: Request, code: int, errorType: str, reason: str) -> bytes:
    """
    @return: an error in Elasticsearch's shape, with status C{code}.
    """
    markElastic(request)
    cause = {"type": errorType, "reason": reason}
    return writeJSON(request, code, {"error": {"root_cause": [cause], **cause}, "status": code})


_ERROR_TYPES = {
    400: "parse_exception",
    413: "content_too_long_exception",
    415: "media_type_header_exception",
    503: "es_rejected_execution_exception",
}


class _ElasticEndpoint(ShipperEndpoint):
    transport = "elastic"

    def bodyError(self, request: Request, code: int, message: str, **extra: Any) -> bytes:
        if "index" in extra:
            message = f"{message} (document {extra['index']})"
        return elasticError(request, code, _ERROR_TYPES.get(code, "exception"), message)

    def render_PUT(self, request: Request) -> object:
        return self.render_POST(request)


class ElasticBulk(_ElasticEndpoint):
    """
    C{/_bulk} or C{/{index}/_bulk}.

    @ivar index: the index named in the URL, or L{None}.
    """

    def __init__(self, pipeline: Pipeline, *, maxBody: int, index: str | None = None) -> None:
        super().__init__(pipeline, maxBody=maxBody)
        self.index = index

    def parse(self, request: Request, body: bytes, peer: str, received: int) -> tuple[list[Record], Any]:
        started = time.monotonic()
        items = parseBulk(body, peer, received, self.index)
        return [item.record for item in items if item.record is not None], (items, started)

    def stored(self, request: Request, parsed: Any, first: int) -> bytes:
        items: list[BulkItem]
        items, started = parsed
        rendered = []
        errors = False
        nextID = first
        for item in items:
            if item.record is not None:
                recordID = nextID
                nextID += 1
                rendered.append(
                    {
                        item.action: {
                            "_index": item.index,
                            "_id": item.docID if item.docID is not None else str(recordID),
                            "_version": 1,
                            "result": "created",
                            "_shards": _SHARDS,
                            "_seq_no": recordID,
                            "_primary_term": 1,
                            "status": 201,
                        }
                    }
                )
            else:
                errors = True
                rendered.append(
                    {
                        item.action: {
                            "_index": item.index,
                            "_id": item.docID,
                            "status": item.status,
                            "error": {"type": item.errorType, "reason": item.reason},
                        }
                    }
                )
        markElastic(request)
        took = int((time.monotonic() - started) * 1000)
        return writeJSON(request, 200, {"took": took, "errors": errors, "items": rendered})


class ElasticDoc(_ElasticEndpoint):
    """
    C{POST /{index}/_doc}: one document.
    """

    def __init__(self, pipeline: Pipeline, *, maxBody: int, index: str) -> None:
        super().__init__(pipeline, maxBody=maxBody)
        self.index = index

    def parse(self, request: Request, body: bytes, peer: str, received: int) -> tuple[list[Record], Any]:
        return [documentRecord(loadJSON(body), self.index, None, peer, received)], None

    def stored(self, request: Request, parsed: Any, first: int) -> bytes:
        markElastic(request)
        return writeJSON(
            request,
            201,
            {
                "_index": self.index,
                "_id": str(first),
                "_version": 1,
                "result": "created",
                "_shards": _SHARDS,
                "_seq_no": first,
                "_primary_term": 1,
            },
        )


class ElasticIndex(JSONResource):
    """
    C{/{index}}: routes C{_bulk} and C{_doc}; anything else is a 404.
    """

    def __init__(self, pipeline: Pipeline, *, maxBody: int, index: str) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.maxBody = maxBody
        self.index = index

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path == b"_bulk":
            return ElasticBulk(self.pipeline, maxBody=self.maxBody, index=self.index)
        if path == b"_doc":
            return ElasticDoc(self.pipeline, maxBody=self.maxBody, index=self.index)
        return NotFound()

    def render(self, request: Request) -> object:
        return NotFound().render(request)


def _license() -> dict[str, Any]:
    return {
        "license": {
            "status": "active",
            "uid": "logsvc",
            "type": "basic",
            "issue_date": "2024-01-01T00:00:00.000Z",
            "issue_date_in_millis": 1704067200000,
            "max_nodes": 1000,
            "max_resource_units": None,
            "issued_to": "logsvc",
            "issuer": "elasticsearch",
            "start_date_in_millis": -1,
        }
    }


def _xpack() -> dict[str, Any]:
    version = elasticInfo()["version"]
    return {
        "build": {"hash": version["build_hash"], "date": version["build_date"]},
        "license": {"uid": "logsvc", "type": "basic", "mode": "basic", "status": "active"},
        # ILM unavailable: shippers then write to the index they name instead of
        # creating rollover aliases and indices, which logsvc has no use for.
        "features": {
            "ilm": {"available": False, "enabled": False},
            "security": {"available": False, "enabled": False},
        },
        "tagline": "You know, for X",
    }


def _clusterHealth() -> dict[str, Any]:
    return {
        "cluster_name": "logsvc",
        "status": "green",
        "timed_out": False,
        "number_of_nodes": 1,
        "number_of_data_nodes": 1,
        "active_primary_shards": 1,
        "active_shards": 1,
        "relocating_shards": 0,
        "initializing_shards": 0,
        "unassigned_shards": 0,
        "delayed_unassigned_shards": 0,
        "number_of_pending_tasks": 0,
        "number_of_in_flight_fetch": 0,
        "task_max_waiting_in_queue_millis": 0,
        "active_shards_percent_as_number": 100.0,
    }


_ADMIN_ANSWERS = {
    ("_license",): _license,
    ("_xpack",): _xpack,
    ("_cluster", "health"): _clusterHealth,
}


class ElasticAdmin(JSONResource):
    """
    C{/_...} APIs other than C{_bulk}: the few shippers read are answered, the
    setup calls (templates, ILM, pipelines) acknowledged and ignored.
    """

    isLeaf = True

    def _path(self, request: Request) -> tuple[str, ...]:
        segments = list(request.prepath or []) + list(request.postpath or [])
        return tuple(s.decode("utf-8", "replace") for s in segments if s)

    def render_GET(self, request: Request) -> bytes:
        markElastic(request)
        answer = _ADMIN_ANSWERS.get(self._path(request))
        return writeJSON(request, 200, answer() if answer is not None else {})

    def _acknowledge(self, request: Request) -> bytes:
        markElastic(request)
        return writeJSON(request, 200, {"acknowledged": True})

    render_PUT = render_POST = render_DELETE = _acknowledge


def elasticChild(pipeline: Pipeline, maxBody: int, path: bytes) -> IResource:
    """
    @return: the resource for a first path segment the root does not know:
        an C{/_...} API, or an index.
    """
    if path.startswith(b"_"):
        return ElasticAdmin()
    return ElasticIndex(pipeline, maxBody=maxBody, index=path.decode("utf-8", "replace"))
