"""
The one query model every reader shares: L{Query}, parsed once from request
arguments, translated by the stores.

What a store needs from a query (the same on every backend):

  - C{query.filter}: every filter as one tree of L{logsvc.search_syntax}
    nodes (L{Column}, L{Field}, L{Text}, L{Regex}, L{Not}, L{And}, L{Or});
    the plain arguments are column and field terms AND'ed with C{q}'s tree
    (C{query.search}; L{Query.plainFilters} lists the plain ones apart, for
    a store that turns them into index ranges).
  - C{query.matches(row)}: the tree compiled once (L{logsvc.matcher}): the
    exact answer for one stored row.  The memory store and the live tail
    use nothing else.
  - A SQL store translates what it can and confirms the rest: exact
    conditions for columns and field terms, its full-text index to narrow
    text terms (a superset), and the compiled matcher for whatever its SQL
    only narrowed (regular expressions, phrases, comparisons of strings
    that may read as numbers or times), counting the rows it confirms
    against a work limit.  See L{logsvc.store.sqlite.plan.translate} (a
    node to C{(sql, params, exact)}, where a negated inexact part narrows
    nothing) and L{logsvc.store.sqlite.plan.ftsExpression}; a store's own
    regular expressions may only ever narrow, RE2 (the matcher) decides.

Order is by event time, ties broken by record id, so a cursor (the C{(ts, id)}
of the last record of a page) names a position that no later insert can move:
paging visits every record that matched when it started exactly once.

The read endpoints are strict about their parameters (L{checkParameters}: an
unknown name is an error naming the closest known one) and take relative times
(C{since=15m}, C{now-2h}, C{until=now}; L{parseTimeBound}).  A relative time is
resolved once, at the first page: the cursor of the next page carries that
instant, so every page of one search has the same absolute bounds.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from logsvc.matcher import Predicate, compileMatcher, decodeFields, fieldMatches
from logsvc.record import RecordError, parseLevel, parseTimestamp
from logsvc.search_syntax import (
    EVERYTHING,
    And,
    Column,
    Field,
    Node,
    Not,
    Or,
    Regex,
    SearchSyntaxError,
    Text,
    conjunction,
    disjunction,
    fieldNumber,
    parseSearch,
)
from logsvc.times import nowMicros
from logsvc.units import TIME_UNITS

__all__ = [
    "DEFAULT_LIMIT",
    "EVERYTHING",
    "MAX_LIMIT",
    "MAX_QUERY_BYTES",
    "MAX_QUERY_DEPTH",
    "MAX_QUERY_REGEXES",
    "MAX_QUERY_SLOW_TERMS",
    "MAX_QUERY_TERMS",
    "Query",
    "QueryError",
    "checkQuerySize",
    "decodeCursor",
    "decodeFields",
    "encodeCursor",
    "fieldMatches",
    "fieldNumber",
    "parseQuery",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000

#: The filter parameters every read endpoint takes (besides C{field.KEY}).
FILTER_PARAMETERS = frozenset({"since", "until", "level", "source", "service", "q"})
#: The prefix of field filters, C{field.KEY=value}.
FIELD_PREFIX = "field."


class QueryError(ValueError):
    """
    A query argument is invalid.

    @ivar param: the argument's name, e.g. C{"since"}.
    @ivar position: for C{q}, the offset (in characters) where it could not
        be read, else L{None}.
    """

    def __init__(self, param: str, message: str, position: int | None = None) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.position = position

    def details(self) -> dict[str, object]:
        """
        @return: what a JSON error body says besides the message:
            C{{"param": ...}}, and C{"position"} when known.
        """
        if self.position is None:
            return {"param": self.param}
        return {"param": self.param, "position": self.position}


@dataclass(frozen=True)
class Query:
    """
    Filters, order and position of a search.

    @ivar since: inclusive lower bound on C{ts}, microseconds, or L{None}.
    @ivar until: exclusive upper bound on C{ts}, microseconds, or L{None}.
    @ivar level: the mildest severity wanted (C{level <= n}), or L{None}.
    @ivar sources: accepted sources (any of them); empty means all.
    @ivar services: accepted services (any of them); empty means all.
    @ivar q: the query language (L{logsvc.search_syntax}): words,
        "phrases", prefix*, -exclusions, field terms, comparisons, regular
        expressions, OR, AND, parentheses.
    @ivar limit: page size, 1..L{MAX_LIMIT}, or L{None} for no limit (export).
    @ivar order: C{"desc"} (newest first) or C{"asc"}.
    @ivar cursor: C{(ts, id)} of the last record already seen, or L{None}.
    @ivar fields: C{(key, value)} pairs that must all hold; see
        L{fieldMatches}.
    @ivar resolvedAt: the instant (microseconds) relative times (C{15m},
        C{now}) were resolved at, or L{None} when none was given; the next
        page's cursor carries it so that page resolves them alike.
    """

    since: int | None = None
    until: int | None = None
    level: int | None = None
    sources: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    q: str = ""
    limit: int | None = DEFAULT_LIMIT
    order: str = "desc"
    cursor: tuple[int, int] | None = None
    fields: tuple[tuple[str, str], ...] = field(default=())
    resolvedAt: int | None = field(default=None, compare=False)

    def words(self) -> list[str]:
        """
        @return: the whitespace-separated terms of L{q}, as typed.
        """
        return self.q.split()

    @cached_property
    def search(self) -> Node:
        """
        L{q}, parsed (L{logsvc.search_syntax}); L{EVERYTHING} when empty.

        @raise SearchSyntaxError: when C{q} cannot be read (L{parseQuery}
            refuses such a C{q} up front, as a L{QueryError}).
        """
        return parseSearch(self.q)

    @cached_property
    def filter(self) -> Node:
        """
        Every filter of this query (not its cursor, order or limit) as one
        tree: the plain arguments as column and field terms, AND the tree
        of L{q}.  What a store must answer; L{matches} is it compiled.
        """
        return conjunction([*self.plainFilters(), self.search])

    def plainFilters(self) -> list[Node]:
        """
        @return: the terms of the plain arguments (C{since}, C{until},
            C{level}, C{source}, C{service}, C{field.K}), all of which must
            hold.
        """
        nodes: list[Node] = [
            disjunction([Column(column, operator, value) for value in values])
            for column, operator, values in self.columnTerms()
        ]
        nodes.extend(Field(key, "=", value) for key, value in self.fields)
        return nodes

    def columnTerms(self) -> list[tuple[str, str, tuple[int | str, ...]]]:
        """
        The plain filters (time range, level, sources, services) as
        C{(column, operator, values)}: a record passes a term when its
        C{column} compares by C{operator} (C{>=}, C{<}, C{<=} or C{=}) with
        any of C{values}.  The one statement of what they mean: L{filter}
        and the SQL stores' conditions are built from it.
        """
        terms: list[tuple[str, str, tuple[int | str, ...]]] = []
        if self.since is not None:
            terms.append(("ts", ">=", (self.since,)))
        if self.until is not None:
            terms.append(("ts", "<", (self.until,)))
        if self.level is not None:
            # That severity or worse: worse levels have smaller numbers.
            terms.append(("level", "<=", (self.level,)))
        for name, values in (("source", self.sources), ("service", self.services)):
            if values:
                terms.append((name, "=", values))
        return terms

    @cached_property
    def matches(self) -> Predicate:
        """
        The one matcher every reader shares (the memory store, the live
        tail, the SQL stores' check of what their SQL narrows down):
        L{filter}, compiled once per query.  C{query.matches(row)} is True
        when the stored C{row} passes every filter (not the cursor).
        """
        return compileMatcher(self.filter)

    def after(self, ts: int, rowid: int) -> Query:
        """
        @return: this query positioned after the record C{(ts, rowid)}.
        """
        return replace(self, cursor=(ts, rowid))


def encodeCursor(ts: int, rowid: int, resolvedAt: int | None = None) -> str:
    """
    @param resolvedAt: the instant the search's relative times were resolved
        at (L{Query.resolvedAt}), carried to the next page.
    @return: an opaque URL-safe token for the position after C{(ts, rowid)}.
    """
    text = f"{ts}:{rowid}" if resolvedAt is None else f"{ts}:{rowid}@{resolvedAt}"
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def decodePosition(token: str) -> tuple[int, int, int | None]:
    """
    @return: the C{(ts, id, resolvedAt)} named by a token from
        L{encodeCursor}; C{resolvedAt} is L{None} when it carries none.
    @raise QueryError: for a token this service did not make.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        position, at, resolvedAt = raw.partition("@")
        ts, rowid = position.split(":")
        return int(ts), int(rowid), int(resolvedAt) if at else None
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise QueryError("cursor", f"invalid cursor {token!r}") from None


def decodeCursor(token: str) -> tuple[int, int]:
    """
    @return: the C{(ts, id)} named by a token from L{encodeCursor}.
    @raise QueryError: for a token this service did not make.
    """
    ts, rowid, _ = decodePosition(token)
    return ts, rowid


class UnknownParameter(QueryError):
    """
    A read endpoint was given a parameter it does not know.

    @ivar suggestion: the closest known parameter, or L{None}.
    """

    def __init__(self, param: str, suggestion: str | None, known: Collection[str]) -> None:
        hint = (
            f"did you mean {suggestion!r}?"
            if suggestion is not None
            else "known: " + ", ".join(sorted(known)) + f", {FIELD_PREFIX}KEY"
        )
        super().__init__(param, f"unknown parameter; {hint}")
        self.suggestion = suggestion

    def details(self) -> dict[str, object]:
        """
        @return: C{{"param": ...}}, and C{"suggestion"} when there is one.
        """
        found = super().details()
        if self.suggestion is not None:
            found["suggestion"] = self.suggestion
        return found


def checkParameters(args: Args, known: Collection[str]) -> None:
    """
    Refuse a parameter a read endpoint does not know, so that a typo
    (C{levle=error}) is an error rather than a search for everything.

    @param known: the endpoint's parameter names; C{field.KEY} is always
        accepted.
    @raise UnknownParameter: for the first unknown name, with the closest
        known one (by L{difflib}) when there is a close one.
    """
    for raw in args:
        name = raw.decode("utf-8", "replace")
        if name in known or (name.startswith(FIELD_PREFIX) and len(name) > len(FIELD_PREFIX)):
            continue
        if name == FIELD_PREFIX:
            raise QueryError(FIELD_PREFIX, "missing field name")
        close = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.6)
        raise UnknownParameter(name, close[0] if close else None, known)


#: The forms C{since} and C{until} take, for error messages.
TIME_FORMS = (
    "RFC 3339 (2026-11-22T10:00:00Z), epoch seconds (1763805600), now, "
    "a time ago (15m, 2h, 7d; units s m h d w) or now-15m"
)

#: A relative time: a whole number of units (L{TIME_UNITS}' s m h d w) ago.
_RELATIVE = re.compile(r"^(?:now\s*-\s*)?(\d+)\s*([smhdw])$", re.IGNORECASE)


def isRelativeTime(text: str) -> bool:
    """
    @return: whether C{text} is a relative time (C{now}, C{15m}, C{now-15m}),
        which L{parseTimeBound} resolves against the current time.
    """
    text = text.strip().lower()
    return text == "now" or _RELATIVE.match(text) is not None


def parseTimeBound(text: str, name: str, now: Callable[[], int]) -> int:
    """
    Parse a C{since} or C{until} value: an absolute time (RFC 3339, epoch
    seconds) or a relative one: C{now}, a duration ago (C{15m}, C{2h},
    C{7d}) or C{now-DURATION}.

    @param now: returns the instant relative times are resolved at, in
        microseconds; called only for a relative time.
    @return: microseconds since the epoch.
    @raise QueryError: naming C{name} and listing the accepted forms.
    """
    stripped = text.strip()
    if isRelativeTime(stripped):
        lowered = stripped.lower()
        if lowered == "now":
            return now()
        found = _RELATIVE.match(lowered)
        assert found is not None
        return now() - int(found.group(1)) * TIME_UNITS[found.group(2)]
    try:
        return parseTimestamp(stripped, name)
    except RecordError as e:
        reason = str(e).split(": ", 1)[1]
        raise QueryError(name, f"{reason}; use {TIME_FORMS}") from None


Args = Mapping[bytes, Sequence[bytes]]

#: The most a query may ask of the service, for searches and live tails
#: alike: every tail's query is matched against every committed record on
#: the reactor thread, so these bound what one tail can cost per record
#: (C{bench/bench_tails.py} measures it at these limits).
#: Bytes of C{q} (UTF-8).
MAX_QUERY_BYTES = 4096
#: Terms of C{q} (words, phrases, prefixes, comparisons, regular
#: expressions) plus C{field.} filters.
MAX_QUERY_TERMS = 32
#: Terms a live tail must check record by record (phrases, field and column
#: comparisons, regular expressions, C{message:} words) rather than look up
#: in the batch's index of words (L{logsvc.batchmatch}).
MAX_QUERY_SLOW_TERMS = 8
#: Regular expressions in C{q} (each scans the whole message).
MAX_QUERY_REGEXES = 2
#: Nesting of parentheses and negations in C{q}.
MAX_QUERY_DEPTH = 8


def checkQuerySize(tree: Node, fieldFilters: int = 0) -> None:
    """
    @param tree: a parsed C{q}.
    @param fieldFilters: how many C{field.} filters come with it.
    @raise QueryError: naming the limit C{tree} passes (L{MAX_QUERY_TERMS},
        L{MAX_QUERY_SLOW_TERMS}, L{MAX_QUERY_REGEXES}, L{MAX_QUERY_DEPTH}).
    """
    terms = slow = fieldFilters
    regexes = 0
    deepest = 0
    stack: list[tuple[Node, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, (And, Or)):
            stack.extend((child, depth + 1) for child in node.children)
        elif isinstance(node, Not):
            stack.append((node.child, depth + 1))
        else:
            terms += 1
            regexes += isinstance(node, Regex)
            slow += not (isinstance(node, Text) and len(node.tokens) == 1 and not node.messageOnly)
    if terms > MAX_QUERY_TERMS:
        raise QueryError("q", f"{terms} terms, more than {MAX_QUERY_TERMS}; narrow it with fewer terms")
    if slow > MAX_QUERY_SLOW_TERMS:
        raise QueryError(
            "q",
            f"{slow} phrases, comparisons, field filters or regular expressions, more than {MAX_QUERY_SLOW_TERMS};"
            " narrow it with fewer",
        )
    if regexes > MAX_QUERY_REGEXES:
        raise QueryError("q", f"{regexes} regular expressions, more than {MAX_QUERY_REGEXES}")
    # The top And/Or is level 1; a term under it is depth 1 or 2.
    if deepest > MAX_QUERY_DEPTH:
        raise QueryError("q", f"nested {deepest} deep, more than {MAX_QUERY_DEPTH}")


def _values(args: Args, name: str) -> list[str]:
    return [v.decode("utf-8", "replace") for v in args.get(name.encode("ascii"), [])]


def _one(args: Args, name: str) -> str | None:
    values = _values(args, name)
    return values[-1] if values else None


def _time(args: Args, name: str, now: Callable[[], int]) -> int | None:
    value = _one(args, name)
    if value is None or value == "":
        return None
    return parseTimeBound(value, name, now)


def parseQuery(
    args: Args,
    *,
    allowUnlimited: bool = False,
    accepted: Collection[str] | None = None,
    now: Callable[[], int] = nowMicros,
) -> Query:
    """
    Build a L{Query} from request arguments (C{request.args}).

    C{since}/C{until}: RFC 3339, epoch seconds or relative (C{now}, C{15m},
    C{now-2h}; see L{parseTimeBound}); C{level}: any level alias;
    C{source}/C{service}: repeatable; C{q}: the query language; C{limit}: 1..10000
    (default 100); C{order}: C{asc}|C{desc}; C{cursor}: a C{next} token;
    C{field.KEY=value}: repeatable exact matches on fields.

    @param allowUnlimited: when true and C{limit} is absent, the query has no
        limit (streaming export).
    @param accepted: the endpoint's parameter names (L{checkParameters});
        L{None} accepts any.
    @param now: the current time in microseconds, asked at most once, and
        only when a relative time is given and the cursor carries no instant
        of an earlier page.
    @raise QueryError: naming the first invalid argument.
    """
    if accepted is not None:
        checkParameters(args, accepted)
    cursorText = _one(args, "cursor")
    cursor, resolvedAt = None, None
    if cursorText:
        ts, rowid, resolvedAt = decodePosition(cursorText)
        cursor = (ts, rowid)
    instant: list[int] = [] if resolvedAt is None else [resolvedAt]

    def resolvedNow() -> int:
        if not instant:
            instant.append(now())
        return instant[0]

    since = _time(args, "since", resolvedNow)
    until = _time(args, "until", resolvedNow)
    levelText = _one(args, "level")
    level = None
    if levelText:
        try:
            level = parseLevel(levelText)
        except RecordError:
            raise QueryError("level", f"unknown level {levelText!r}") from None
    limitText = _one(args, "limit")
    limit: int | None
    if limitText is None or limitText == "":
        limit = None if allowUnlimited else DEFAULT_LIMIT
    else:
        try:
            limit = int(limitText)
        except ValueError:
            raise QueryError("limit", f"not an integer: {limitText!r}") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise QueryError("limit", f"must be between 1 and {MAX_LIMIT}")
    order = (_one(args, "order") or "desc").lower()
    if order not in ("asc", "desc"):
        raise QueryError("order", f"must be asc or desc, not {order!r}")
    q = _one(args, "q") or ""
    if len(q.encode("utf-8")) > MAX_QUERY_BYTES:
        raise QueryError("q", f"longer than {MAX_QUERY_BYTES} bytes; narrow it with fewer terms, or with since, level, service")
    try:
        tree = parseSearch(q)
    except SearchSyntaxError as e:
        raise QueryError("q", str(e), e.position) from None
    fields = []
    for key in args:
        if key.startswith(b"field."):
            name = key[6:].decode("utf-8", "replace")
            if not name:
                raise QueryError("field.", "missing field name")
            for value in args[key]:
                fields.append((name, value.decode("utf-8", "replace")))
    checkQuerySize(tree, len(fields))
    return Query(
        since=since,
        until=until,
        level=level,
        sources=tuple(v for v in _values(args, "source") if v != ""),
        services=tuple(_values(args, "service")),
        q=q,
        limit=limit,
        order=order,
        cursor=cursor,
        fields=tuple(fields),
        resolvedAt=instant[0] if instant else None,
    )
