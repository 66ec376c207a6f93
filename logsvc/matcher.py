"""
The one matcher: a parsed query (L{logsvc.search_syntax}) compiled once into
a Python predicate over stored rows, which the memory store, the live tail
and the SQL stores (to confirm what their SQL only narrows down) all run, so
a tail matches exactly what a search matches.

Compiling builds a tree of closures, one per node, so matching a record
costs no parsing and no dispatch on node types.  Per record, the words of
its text and its decoded fields are computed at most once, and only when a
node needs them; single words (the common case, and the bulk of a long
query of exclusions) are looked up in the record's set of words, so a query
of many words costs about as much per record as one.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import orjson

from logsvc.record import RecordError, parseTimestamp
from logsvc.search_syntax import (
    EVERYTHING,
    And,
    Column,
    Field,
    Node,
    Not,
    Or,
    Regex,
    Text,
    compileRegex,
    fieldNumber,
    words,
)

#: A stored row: C{(id, ts, received, level, source, service, message,
#: fields)}, as in L{logsvc.record.ROW_COLUMNS}.
Row = tuple[Any, ...]

#: A compiled query: True when a row matches.
Predicate = Callable[[Row], bool]

#: Column name -> index in a row.
COLUMN_INDEX = {"id": 0, "ts": 1, "received": 2, "level": 3, "source": 4, "service": 5}

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def decodeFields(fields: str | None) -> dict[str, Any]:
    """
    @param fields: a row's C{fields} column (a JSON object, or L{None}).
    @return: the fields decoded; C{{}} for none, for JSON that is not an
        object, or for text that is not JSON.
    """
    if not fields:
        return {}
    try:
        decoded = orjson.loads(fields)
    except orjson.JSONDecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def fieldMatches(fields: Mapping[str, object], key: str, expected: str) -> bool:
    """
    The meaning of C{field.KEY=expected} and of C{KEY:expected}: a string
    field equals C{expected}; a number equals it read as a number
    (C{status=200} matches C{200} and C{200.0}; C{"200"} matches only the
    string C{"200"}); C{true}, C{false} and C{null} match those JSON values.
    Objects, arrays and absent keys never match.

    @param fields: a record's decoded fields.
    """
    if key not in fields:
        return False
    actual = fields[key]
    if actual is None:
        return expected == "null"
    if isinstance(actual, str):
        return actual == expected
    if isinstance(actual, bool):
        return expected == ("true" if actual else "false")
    if isinstance(actual, (int, float)):
        number = fieldNumber(expected)
        return number is not None and actual == number
    return False


def fieldCompares(actual: object, op: str, kind: str, operand: int | float | str) -> bool:
    """
    The meaning of a comparison on a field (C{KEY>VALUE} and the like).

    A C{"number"} compares with a number (not C{true}/C{false}) and with a
    string that reads as a number; a C{"time"} (microseconds) with a string
    that reads as a time (RFC 3339); a C{"string"} with strings, by code
    point.  Any other value (absent, null, an object, an array, a string that
    does not read as the kind) never matches.
    """
    compare = _COMPARE[op]
    if kind == "number":
        if isinstance(actual, bool):
            return False
        if isinstance(actual, (int, float)):
            return compare(actual, operand)
        if isinstance(actual, str):
            number = fieldNumber(actual)
            return number is not None and compare(number, operand)
        return False
    if not isinstance(actual, str):
        return False
    if kind == "time":
        try:
            return compare(parseTimestamp(actual), operand)
        except RecordError:
            return False
    return compare(actual, operand)


class _Record:
    """
    One row being matched, with what nodes derive from it computed once.
    """

    __slots__ = ("row", "_words", "_wordSet", "_messageWords", "_fields")

    def __init__(self, row: Row) -> None:
        self.row = row
        self._words: list[str] | None = None
        self._wordSet: frozenset[str] | None = None
        self._messageWords: list[str] | None = None
        self._fields: dict[str, Any] | None = None

    def words(self) -> list[str]:
        if self._words is None:
            # The text the search index holds: message, a space, service.
            self._words = words(self.row[6] + " " + self.row[5])
        return self._words

    def wordSet(self) -> frozenset[str]:
        if self._wordSet is None:
            self._wordSet = frozenset(self.words())
        return self._wordSet

    def messageWords(self) -> list[str]:
        if self._messageWords is None:
            self._messageWords = words(self.row[6])
        return self._messageWords

    def fields(self) -> dict[str, Any]:
        if self._fields is None:
            self._fields = decodeFields(self.row[7])
        return self._fields


_Test = Callable[[_Record], bool]


def matchesWords(text: Text, haystack: list[str]) -> bool:
    """
    @param haystack: the words of a text (L{words}).
    @return: True when C{text}'s words occur in it in a row (the last one as
        a prefix when C{text.prefix}).
    """
    needle = text.tokens
    n = len(needle)
    last = n - 1
    for start in range(len(haystack) - n + 1):
        for i in range(n):
            word = haystack[start + i]
            want = needle[i]
            if i == last and text.prefix:
                if not word.startswith(want):
                    break
            elif word != want:
                break
        else:
            return True
    return False


def _singleWord(node: Node) -> str | None:
    if isinstance(node, Text) and len(node.tokens) == 1 and not node.prefix and not node.messageOnly:
        return node.tokens[0]
    return None


def _compileText(node: Text) -> _Test:
    word = _singleWord(node)
    if word is not None:
        return lambda r: word in r.wordSet()
    if len(node.tokens) == 1 and node.prefix and not node.messageOnly:
        start = node.tokens[0]
        return lambda r: any(w.startswith(start) for w in r.wordSet())
    if node.messageOnly:
        return lambda r: matchesWords(node, r.messageWords())
    return lambda r: matchesWords(node, r.words())


def _compileColumn(node: Column) -> _Test:
    index = COLUMN_INDEX[node.name]
    value = node.value
    if node.op == "exists":
        return lambda r: r.row[index] != ""
    if node.op == "prefix":
        prefix = str(value)
        return lambda r: r.row[index].startswith(prefix)
    compare = _COMPARE[node.op]
    return lambda r: compare(r.row[index], value)


def _compileField(node: Field) -> _Test:
    key = node.key
    if node.op == "exists":
        return lambda r: key in r.fields()
    if node.op == "=":
        expected = node.value
        return lambda r: fieldMatches(r.fields(), key, expected)
    if node.op == "prefix":
        prefix = node.value

        def startsWith(r: _Record) -> bool:
            actual = r.fields().get(key)
            return isinstance(actual, str) and actual.startswith(prefix)

        return startsWith
    op, kind, operand = node.op, node.kind, node.operand
    assert operand is not None
    missing = object()

    def compares(r: _Record) -> bool:
        actual = r.fields().get(key, missing)
        return actual is not missing and fieldCompares(actual, op, kind, operand)

    return compares


def _compileAnd(children: tuple[Node, ...]) -> _Test:
    # Single words, wanted and excluded, become two set operations.
    wanted = frozenset(w for w in map(_singleWord, children) if w is not None)
    excluded = frozenset(
        w for c in children if isinstance(c, Not) and (w := _singleWord(c.child)) is not None
    )
    rest = [
        _compile(c)
        for c in children
        if _singleWord(c) is None and not (isinstance(c, Not) and _singleWord(c.child) is not None)
    ]
    tests: list[_Test] = []
    if wanted:
        tests.append(lambda r: wanted <= r.wordSet())
    if excluded:
        tests.append(lambda r: r.wordSet().isdisjoint(excluded))
    tests.extend(rest)
    if not tests:
        return lambda r: True
    if len(tests) == 1:
        return tests[0]
    return lambda r: all(test(r) for test in tests)


def _compileOr(children: tuple[Node, ...]) -> _Test:
    anyOf = frozenset(w for w in map(_singleWord, children) if w is not None)
    tests = [_compile(c) for c in children if _singleWord(c) is None]
    if anyOf:
        tests.insert(0, lambda r: not r.wordSet().isdisjoint(anyOf))
    if len(tests) == 1:
        return tests[0]
    return lambda r: any(test(r) for test in tests)


def _compile(node: Node) -> _Test:
    if isinstance(node, Text):
        return _compileText(node)
    if isinstance(node, Column):
        return _compileColumn(node)
    if isinstance(node, Field):
        return _compileField(node)
    if isinstance(node, Regex):
        search = compileRegex(node.pattern).search
        return lambda r: search(r.row[6]) is not None
    if isinstance(node, Not):
        test = _compile(node.child)
        return lambda r: not test(r)
    if isinstance(node, And):
        return _compileAnd(node.children)
    if isinstance(node, Or):
        return _compileOr(node.children)
    raise TypeError(f"not a query node: {node!r}")


def compileMatcher(node: Node) -> Predicate:
    """
    Compile a parsed query once.

    @return: a predicate true for the rows C{node} matches; it never raises
        for any row a store holds.
    """
    if node == EVERYTHING:
        return lambda row: True
    test = _compile(node)
    return lambda row: test(_Record(row))


#: One row being matched, with the words and fields nodes derive from it
#: computed once: build one per row and hand it to the tests of several
#: queries (L{compileRecordTest}), so a row is cut into words once however
#: many queries look at it (the live tails).
MatchRecord = _Record

#: A compiled query over a L{MatchRecord}.
RecordTest = Callable[[_Record], bool]


def compileRecordTest(node: Node) -> RecordTest:
    """
    Compile a parsed query once, as L{compileMatcher}, into a test of
    L{MatchRecord}s.
    """
    if node == EVERYTHING:
        return lambda record: True
    return _compile(node)


@lru_cache(maxsize=256)
def cachedMatcher(node: Node) -> Predicate:
    """
    L{compileMatcher}, remembered for the last 256 queries (SQL functions
    get the query again for every row).
    """
    return compileMatcher(node)
