# -*- test-case-name: tests.test_web_fields -*-
"""
What the fields of a query's records hold: C{GET /fields} (the field names
seen, with counts) and C{GET /stats?by=field.KEY} (a field's top values,
with counts and the share of records that have the field).

Both read the newest matches of the query, at most L{FIELD_SAMPLE} of them
(or C{sample}, up to L{MAX_SAMPLE})
(through the store's ordinary pages, so every store answers alike and the
cost is bounded whatever the range holds): exact when the query matches
fewer, a sample of the newest otherwise, and the answer says which
(C{"sampled": true}).

    GET /fields?q=service:api&since=now-24h
    -> {"total": 1000, "sampled": true,
        "fields": [{"name": "user", "count": 812, "share": 0.812}, ...]}
    GET /fields?limit=5&values=8
    -> the same, each field with its top 8 "values" (as by=field.KEY lists
       them): one read of the sample for the UI's field facets, not one per field.
    GET /stats?by=field.user&limit=3
    -> {"total": 1000, "sampled": true, "by": "field.user", "present": 812,
        "share": 0.812, "values": [{"value": 42, "count": 170}, ...]}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import replace
from typing import Any

import orjson
from twisted.internet.defer import Deferred
from twisted.web.server import Request

from logsvc.matcher import decodeFields
from logsvc.pagesize import pageCut
from logsvc.query import FILTER_PARAMETERS, MAX_LIMIT, Query, QueryError, parseQuery
from logsvc.store.base import IStore, Row
from logsvc.times import nowMicros
from logsvc.web.common import JSONResource, renderAsync, writeJSON
from logsvc.web.errors import errorBody

#: How many of the newest matches the field aggregations read unless
#: C{sample} says otherwise (Kibana's Discover computes its field list from
#: 500), and the most C{sample} may ask.
FIELD_SAMPLE = 1_000
MAX_SAMPLE = 10_000
#: Most names C{GET /fields} lists unless C{limit} says otherwise.
DEFAULT_NAMES = 100
MAX_NAMES = 1000
#: Most values per field C{GET /fields?values=N} may list.
MAX_VALUES = 1000
#: The parameters of C{GET /fields} (besides C{field.KEY}).
FIELDS_PARAMETERS = FILTER_PARAMETERS | {"limit", "values", "sample"}


def newestMatches(store: IStore, query: Query, size: int | None = None) -> Deferred[tuple[list[Row], bool]]:
    """
    Read the newest C{size} (by default L{FIELD_SAMPLE}) matches of C{query}
    (its cursor, order and limit ignored), page by page.

    @return: a Deferred firing with the rows and whether more matches exist
        (so the rows are a sample).
    """
    if size is None:
        size = FIELD_SAMPLE
    wanted = size
    found: list[Row] = []
    done: Deferred[tuple[list[Row], bool]] = Deferred()

    def page(position: Query) -> None:
        store.query(position).addCallbacks(got, done.errback, callbackArgs=(position,))

    def got(taken: list[Row], position: Query) -> None:
        want = wanted - len(found)
        rows, more = pageCut(taken, position.limit)
        found.extend(rows[:want])
        if len(rows) > want or (more and len(found) >= wanted):
            done.callback((found, True))
        elif not more or not rows:
            done.callback((found, False))
        else:
            last = rows[-1]
            page(position.after(last[1], last[0]))

    page(replace(query, order="desc", cursor=None, limit=min(size, MAX_LIMIT)))
    return done


def countNames(rows: Iterable[Row]) -> Counter[str]:
    """
    @return: how many of C{rows} have each top-level field name.
    """
    counts: Counter[str] = Counter()
    for row in rows:
        if row[7]:
            counts.update(decodeFields(row[7]).keys())
    return counts


def countFieldValues(rows: Iterable[Row], keys: Collection[str]) -> dict[str, Counter[bytes]]:
    """
    @return: for each of C{keys}, how many of C{rows} hold each value of
        that field (as its JSON text, so C{42} and C{"42"} stay apart); the
        counts of a key add up to the rows that have it.  Each row's fields
        are decoded once, whatever the number of keys.
    """
    counts: dict[str, Counter[bytes]] = {key: Counter() for key in keys}
    for row in rows:
        if not row[7]:
            continue
        fields = decodeFields(row[7])
        for key, perValue in counts.items():
            if key in fields:
                perValue[orjson.dumps(fields[key])] += 1
    return counts


def countValues(rows: Iterable[Row], key: str) -> tuple[int, Counter[bytes]]:
    """
    @return: how many of C{rows} have the field C{key}, and how many hold
        each value (see L{countFieldValues}).
    """
    counts = countFieldValues(rows, (key,))[key]
    return sum(counts.values()), counts


def rankedValues(counts: Counter[bytes], limit: int) -> list[dict[str, Any]]:
    """
    @return: the C{limit} most frequent values, most frequent first (ties by
        their JSON text), as C{{"value", "count"}}.
    """
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [{"value": orjson.loads(value), "count": n} for value, n in ranked]


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def fieldValuesBody(rows: list[Row], sampled: bool, key: str, limit: int) -> dict[str, Any]:
    """
    @return: the answer of C{GET /stats?by=field.KEY}: the top C{limit}
        values over C{rows}, most frequent first (ties by their JSON text).
    """
    present, counts = countValues(rows, key)
    return {
        "total": len(rows),
        "sampled": sampled,
        "by": "field." + key,
        "present": present,
        "share": _share(present, len(rows)),
        "values": rankedValues(counts, limit),
    }


class FieldsResource(JSONResource):
    """
    C{GET /fields}: the field names of a query's records; see the module
    docstring.
    """

    isLeaf = True

    def __init__(self, store: IStore, *, now: Callable[[], int] = nowMicros) -> None:
        super().__init__()
        self.store = store
        self._now = now

    def render_GET(self, request: Request) -> object:
        args = request.args or {}
        try:
            query = parseQuery(
                {k: v for k, v in args.items() if k not in (b"limit", b"sample")},
                accepted=FIELDS_PARAMETERS,
                now=self._now,
            )
            limit = parseCount(args, "limit", DEFAULT_NAMES, MAX_NAMES) or DEFAULT_NAMES
            values = parseCount(args, "values", 0, MAX_VALUES) or 0
            sample = parseCount(args, "sample", None, MAX_SAMPLE)
        except QueryError as e:
            return errorBody(request, 400, str(e), **e.details())

        def render(result: tuple[list[Row], bool]) -> bytes:
            rows, sampled = result
            counts = countNames(rows)
            ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
            fields: list[dict[str, Any]] = [
                {"name": name, "count": n, "share": _share(n, len(rows))} for name, n in ranked
            ]
            if values:
                perField = countFieldValues(rows, [name for name, _ in ranked])
                for entry in fields:
                    entry["values"] = rankedValues(perField[entry["name"]], values)
            body = {"total": len(rows), "sampled": sampled, "fields": fields}
            return writeJSON(request, 200, body)

        return renderAsync(request, newestMatches(self.store, query, sample).addCallback(render))


def parseCount(args: dict[bytes, list[bytes]], name: str, default: int | None, most: int) -> int | None:
    """
    @return: the whole number C{args} give for C{name} (1..C{most}), else
        C{default}.
    @raise QueryError: for anything else.
    """
    values = args.get(name.encode("ascii"))
    text = values[-1].decode("utf-8", "replace").strip() if values else ""
    if not text:
        return default
    try:
        count = int(text)
    except ValueError:
        raise QueryError(name, f"not an integer: {text!r}") from None
    if not 1 <= count <= most:
        raise QueryError(name, f"must be between 1 and {most}")
    return count


def topFieldValues(
    store: IStore, query: Query, key: str, limit: int, sample: int | None = None
) -> Deferred[dict[str, Any]]:
    """
    @param sample: how many of the newest matches to read (by default
        L{FIELD_SAMPLE}).
    @return: a Deferred firing with L{fieldValuesBody} over the newest
        matches of C{query}.
    """
    return newestMatches(store, query, sample).addCallback(lambda result: fieldValuesBody(result[0], result[1], key, limit))
