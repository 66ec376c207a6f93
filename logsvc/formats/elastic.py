"""
Elasticsearch's bulk API: NDJSON pairs of an action line and a document line.

L{parseBulk} returns one L{BulkItem} per action, each holding either a record
or the error to report in that item, so one bad document never costs the
others.  A document maps to a record as a JSON record does
(L{logsvc.record.normalize}), after the Elastic Common Schema objects shippers
write are unfolded:

  - C{host.name} (or C{host.hostname}) -> source; C{service.name} -> service;
    C{log.level} -> level; the other keys of these objects -> fields as
    C{"host.ip"}, C{"log.file"}, ... (dotted, one level);
  - a document without message/msg takes C{log} as message when it is a
    string (Fluent Bit's tail and Docker records);
  - the index (from the action, else from the URL) -> C{fields["_index"]}, an
    C{_id} given in the action -> C{fields["_id"]}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from logsvc.formats.jsonline import JSONSyntaxError, loadJSON
from logsvc.formats.syslog import SyslogError, rfc3339Micros
from logsvc.record import Record, RecordError, normalize

#: Actions that carry a document and are stored.
STORING_ACTIONS = ("index", "create")
#: Actions that carry a document line but cannot be honoured here.
DOCUMENT_ACTIONS = ("index", "create", "update")
ACTIONS = ("index", "create", "update", "delete")

DEFAULT_INDEX = "logs"


@dataclass(slots=True)
class BulkItem:
    """
    One action of a bulk request.

    @ivar action: C{"index"}, C{"create"}, C{"update"} or C{"delete"} (or the
        unknown word the line held).
    @ivar index: the target index name.
    @ivar docID: the C{_id} the action gave, or L{None}.
    @ivar record: the record to store, or L{None} when the item failed.
    @ivar status: the HTTP status of a failed item.
    @ivar errorType: Elasticsearch's error type of a failed item.
    @ivar reason: why it failed.
    """

    action: str
    index: str
    docID: str | None = None
    record: Record | None = None
    status: int = 201
    errorType: str = ""
    reason: str = ""

    def fail(self, status: int, errorType: str, reason: str) -> BulkItem:
        self.record = None
        self.status = status
        self.errorType = errorType
        self.reason = reason
        return self


def _unfold(doc: dict[str, Any], name: str, obj: dict[str, Any], key: str, target: str) -> None:
    """
    Replace the ECS object C{doc[name]} (C{obj}) by its C{key} under
    C{target} (unless C{target} is taken), moving its other keys to
    C{doc["name.key"]}.
    """
    del doc[name]
    value = obj.pop(key, None)
    if value is None and name == "host":
        value = obj.pop("hostname", None)
    for inner, item in obj.items():
        doc.setdefault(f"{name}.{inner}", item)
    if value is not None:
        if isinstance(value, (dict, list)) or target in doc:
            doc.setdefault(f"{name}.{key}", value)
        else:
            doc[target] = value


def documentRecord(doc: Any, index: str, docID: str | None, peer: str, received: int) -> Record:
    """
    Map one bulk document to a record (see the module docstring).

    @raise RecordError: when the document is not an object or does not normalize.
    """
    if type(doc) is not dict:
        raise RecordError("document must be a JSON object")
    host = doc.get("host")
    if type(host) is dict:
        _unfold(doc, "host", host, "name", "host")
    elif "host.name" in doc and "host" not in doc:
        doc["host"] = doc.pop("host.name")
    service = doc.get("service")
    if type(service) is dict:
        _unfold(doc, "service", service, "name", "service")
    elif "service.name" in doc and "service" not in doc:
        doc["service"] = doc.pop("service.name")
    log = doc.get("log")
    if type(log) is dict:
        _unfold(doc, "log", log, "level", "level")
    elif type(log) is str and "message" not in doc and "msg" not in doc:
        doc["message"] = doc.pop("log")
    if "log.level" in doc and "level" not in doc:
        doc["level"] = doc.pop("log.level")
    stamp = doc.get("@timestamp")
    if type(stamp) is str and "ts" not in doc and "timestamp" not in doc and "time" not in doc:
        # Shippers' stamps repeat their second: take the cached fast path,
        # and leave anything unusual to the record model's parser.
        try:
            doc["@timestamp"] = rfc3339Micros(stamp)
        except SyslogError:
            pass
    doc["_index"] = index
    if docID is not None:
        doc["_id"] = docID
    return normalize(doc, peer, received)


def parseBulk(data: bytes, peer: str, received: int, defaultIndex: str | None = None) -> list[BulkItem]:
    """
    Parse a bulk body into items, in request order.  Blank lines are skipped.

    Failures are per item: an invalid action line (its next line is still
    taken as its document, as Elasticsearch does), an action without a
    document line at the end of the body, C{update} and C{delete} (logsvc is
    append-only), a document that is not JSON or does not normalize.

    @param defaultIndex: the index named in the URL (C{/{index}/_bulk}).
    @raise RecordError: when the body holds no action at all.
    """
    lines = [line for line in data.split(b"\n") if line.strip()]
    if not lines:
        raise RecordError("request body is required: no bulk actions")
    items: list[BulkItem] = []
    # Shippers repeat one action line for every document: decode each once.
    actions: dict[bytes, tuple[str, str, str | None] | str] = {}
    fallbackIndex = defaultIndex or DEFAULT_INDEX
    position = 0
    count = len(lines)
    while position < count:
        actionLine = lines[position]
        position += 1
        action = actions.get(actionLine)
        if action is None:
            action = actions[actionLine] = _readAction(actionLine, fallbackIndex)
        if isinstance(action, str):
            item = BulkItem("index", fallbackIndex)
            items.append(item.fail(400, "illegal_argument_exception", action))
            position += 1  # its document, if any
            continue
        name, index, docID = action
        item = BulkItem(name, index, docID)
        items.append(item)
        if name not in ACTIONS:
            item.fail(400, "illegal_argument_exception", f"unknown bulk action {name!r}")
            position += 1
            continue
        if name == "delete":
            item.fail(400, "illegal_argument_exception", "logsvc is append-only: delete is not supported")
            continue
        if position >= count:
            item.fail(400, "action_request_validation_exception", f"{name} action without a document line")
            continue
        docLine = lines[position]
        position += 1
        if name == "update":
            item.fail(400, "illegal_argument_exception", "logsvc is append-only: update is not supported")
            continue
        try:
            item.record = documentRecord(loadJSON(docLine), index, docID, peer, received)
        except JSONSyntaxError as e:
            item.fail(400, "document_parsing_exception", f"failed to parse document: {e}")
        except RecordError as e:
            item.fail(400, "document_parsing_exception", str(e))
    return items


def _readAction(line: bytes, fallbackIndex: str) -> tuple[str, str, str | None] | str:
    """
    @return: an action line's name, index and C{_id}, or why it is no action.
    """
    try:
        action = loadJSON(line)
    except JSONSyntaxError as e:
        return f"malformed action line: {e}"
    if not isinstance(action, dict) or len(action) != 1 or not isinstance(next(iter(action.values())), dict):
        return 'malformed action line: expected {"index"|"create"|"update"|"delete": {...}}'
    name, meta = next(iter(action.items()))
    index = meta.get("_index")
    docID = meta.get("_id")
    return (
        name,
        index if isinstance(index, str) and index else fallbackIndex,
        None if docID is None else str(docID),
    )
