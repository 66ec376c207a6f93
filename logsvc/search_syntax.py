"""
The query language of C{q}, parsed once into a tree of L{Node}s that the
matcher (L{logsvc.matcher}) compiles and the stores translate.

Grammar (see C{docs/query.rst} for the semantics and examples)::

    query    = or
    or       = and { "OR" and }
    and      = unary { [ "AND" ] unary }       juxtaposition means AND
    unary    = { "-" } primary                 "-" leaves matches out
    primary  = "(" or ")" | regex | field | text
    regex    = "~" quoted                      RE2, on the message
    field    = name ( ":" value | ":*" | op value )
    op       = ">" | ">=" | "<" | "<="
    name     = [A-Za-z_][A-Za-z0-9_.]*         directly followed by the ":" or op
    value    = quoted | bare [ "*" ]
    text     = quoted [ "*" ] | bare           words, a phrase, prefix*

C{AND} binds tighter than C{OR}; both are operators only in capitals and
only between two operands (C{a OR} is the words "a" and "or").  A bare
token runs to whitespace or a parenthesis; a quoted one to the next
unescaped C{"} (C{\\"} is a quote; an unclosed quote runs to the end).

Ordinary text is never an error.  C{name:value} is a field term only when
C{name} is an identifier directly followed by the C{:}, the value is not
empty, and the token is not a URL (C{http://x}) or an IPv6 address
(C{fe80::1}); so C{10:32:00}, C{Error:} and C{http://x} are text.  Only a
structure that cannot be read raises L{SearchSyntaxError}, naming the
position: an unbalanced parenthesis, a comparison without a value, an
unknown level, a time or id that does not parse, a regular expression RE2
refuses, nesting deeper than L{MAX_DEPTH}.

Text terms match over the message and the service, by words: the text is
cut into words exactly as SQLite's C{unicode61} tokenizer (with diacritics
kept) cuts it, so the FTS5 index (see L{logsvc.store.sqlite}) and the
matcher agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from logsvc.record import RecordError, parseLevel, parseTimestamp

#: A word: a run of letters and digits (underscore separates, as in unicode61).
_WORD = re.compile(r"[^\W_]+")
#: A term ending in a word then C{*} (C{conn*}) is a prefix search.
_PREFIX = re.compile(r"[^\W_]\*+\s*$")
#: A field term's name and operator, at the start of a token.
_FIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)(:|>=|<=|>|<)")
#: A token that is an IPv6 address (hex groups, at least two colons, maybe
#: an IPv4 tail or a zone): text, not a field term.
_IPV6 = re.compile(r"^[0-9A-Fa-f]*(:[0-9A-Fa-f]*){2,}(\.[0-9.]+)?(%\w+)?$")

#: Deepest nesting of parentheses a query may have.
MAX_DEPTH = 64

#: The record's columns a field term can name; C{fields.NAME} names the
#: field even where a column has the same name.
COLUMNS = ("id", "ts", "received", "level", "source", "service", "message")

#: Comparison operators, and their mirror (for C{level}, where a higher
#: severity is a lower number).
COMPARISONS = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def words(text: str) -> list[str]:
    """
    @return: the words of C{text}, lower-cased, as the FTS5 index holds them.
    """
    return _WORD.findall(text.lower())


class SearchSyntaxError(ValueError):
    """
    C{q} has a structure that cannot be read.

    @ivar position: the offset in C{q} (0-based, in characters) where
        reading failed.
    @ivar reason: what is wrong, without the position.
    """

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"{reason} (at position {position})")
        self.position = position
        self.reason = reason


class Node:
    """
    A node of a parsed query.  Every node is a frozen dataclass: equal
    queries give equal, hashable trees.
    """


@dataclass(frozen=True)
class Text(Node):
    """
    Words in a row (one word, or a phrase), over the message and the service
    (or the message only).

    @ivar tokens: its words, lower-cased, at least one.
    @ivar prefix: the last word matches any word it starts.
    @ivar messageOnly: the words must be in the message (C{message:...}).
    """

    tokens: tuple[str, ...]
    prefix: bool = False
    messageOnly: bool = False


@dataclass(frozen=True)
class Regex(Node):
    """
    An RE2 regular expression found anywhere in the message.

    @ivar pattern: the expression, as typed.
    """

    pattern: str


@dataclass(frozen=True)
class Column(Node):
    """
    A test of a column: C{id}, C{ts}, C{received} (integers: ids and
    microseconds), C{level} (its number: 0 is emergency, 7 debug; C{<=} is
    "as severe or worse"), C{source} or C{service} (strings).

    @ivar op: C{"="}, C{"<"}, C{"<="}, C{">"}, C{">="}, C{"prefix"}
        (strings starting with C{value}) or C{"exists"} (a string that is
        not empty).
    """

    name: str
    op: str
    value: int | str | None


@dataclass(frozen=True)
class Field(Node):
    """
    A test of one of the record's fields (a top-level key of C{fields}).

    @ivar op: C{"="} (the meaning of C{field.KEY=value}: see
        L{logsvc.query.fieldMatches}), C{"exists"} (the key is present,
        whatever its value), C{"prefix"} (a string starting with C{value}),
        or a comparison C{"<"}, C{"<="}, C{">"}, C{">="} of C{kind}.
    @ivar value: the value as typed.
    @ivar kind: for a comparison, how it compares: C{"number"} (with numbers,
        and strings that read as one), C{"time"} (C{operand} in microseconds,
        with strings that read as a time) or C{"string"} (with strings, by
        code point); else C{""}.
    @ivar operand: the value read as C{kind}.
    """

    key: str
    op: str
    value: str = ""
    kind: str = ""
    operand: int | float | str | None = None


@dataclass(frozen=True)
class Not(Node):
    child: Node


@dataclass(frozen=True)
class And(Node):
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or(Node):
    children: tuple[Node, ...]


#: The query that matches every record (an empty C{q}).
EVERYTHING = And(())

#: A term without any word (C{-}, C{""}, C{^}): ignored wherever it stands.
_IGNORED = Or(())


def conjunction(nodes: list[Node] | tuple[Node, ...]) -> Node:
    """
    @return: a node true when all C{nodes} are (nested ANDs flattened).
    """
    flat: list[Node] = []
    for node in nodes:
        if isinstance(node, And):
            flat.extend(node.children)
        else:
            flat.append(node)
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def disjunction(nodes: list[Node]) -> Node:
    """
    @return: a node true when any of C{nodes} is; EVERYTHING when one of
        them always is.
    """
    flat: list[Node] = []
    for node in nodes:
        if node == EVERYTHING:
            return EVERYTHING
        if isinstance(node, Or):
            flat.extend(node.children)
        else:
            flat.append(node)
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def negation(node: Node) -> Node:
    """
    @return: a node true when C{node} is not; C{EVERYTHING} is its own
        negation here, as a term with no word is ignored rather than never
        matching.
    """
    if node == EVERYTHING:
        return node
    if isinstance(node, Not):
        return node.child
    return Not(node)


# Tokens


@dataclass(frozen=True)
class _Token:
    kind: str  # "(" ")" "-" "OR" "AND" "term"
    position: int
    node: Node | None = None


def _quoted(text: str, start: int) -> tuple[str, int]:
    """
    Read a quoted string whose opening quote is at C{start}.

    @return: its text (C{\\"} and C{\\\\} unescaped, other backslashes
        kept) and the position after the closing quote (or the end).
    """
    out = []
    i, n = start + 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "".join(out), n


#: A bare token: up to whitespace or a parenthesis.
_BARE = re.compile(r"[^\s()]*")


def _bareEnd(text: str, i: int) -> int:
    match = _BARE.match(text, i)
    assert match is not None
    return match.end()


def _textTerm(body: str, *, messageOnly: bool = False) -> Node:
    tokens = words(body)
    if not tokens:
        return _IGNORED
    return Text(tuple(tokens), prefix=_PREFIX.search(body) is not None, messageOnly=messageOnly)


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "()":
            found.append(_Token(c, i))
            i += 1
        elif c == "-" and i + 1 < n and not text[i + 1].isspace() and text[i + 1] != ")":
            found.append(_Token("-", i))
            i += 1
        elif c == '"':
            body, i = _quoted(text, i)
            # A * right after the closing quote makes the phrase a prefix.
            if i < n and text[i] == "*":
                body += "*"
                i += 1
            found.append(_Token("term", i, _textTerm(body)))
        elif c == "~" and i + 1 < n and text[i + 1] == '"':
            pattern, end = _quoted(text, i + 1)
            found.append(_Token("term", i, _regex(pattern, i)))
            i = end
        else:
            start = i
            field = _FIELD.match(text, i)
            if field is not None:
                node, end = _fieldTerm(text, start, field)
                if node is not None:
                    found.append(_Token("term", start, node))
                    i = end
                    continue
            i = _bareEnd(text, i)
            body = text[start:i]
            if body in ("OR", "AND"):
                found.append(_Token(body, start))
            else:
                found.append(_Token("term", start, _textTerm(body)))
    return found


def _fieldTerm(text: str, start: int, field: re.Match[str]) -> tuple[Node | None, int]:
    """
    Read a field term whose name and operator C{field} matched at C{start}.

    @return: the node and the position after it, or C{(None, start)} when
        the token is text after all.
    """
    name, op = field.group(1), field.group(2)
    i = field.end()
    n = len(text)
    valueAt = i
    if i >= n or text[i].isspace() or text[i] == ")":
        if op == ":":
            return None, start  # "Error:" is text
        raise SearchSyntaxError(i, f"{name}{op} needs a value")
    if text[i] == "(":
        raise SearchSyntaxError(
            i, f"a value cannot start with '(': write ({name}{op}a OR {name}{op}b), or quote the value"
        )
    if text[i] == '"':
        value, end = _quoted(text, i)
        prefix = False
        quoted = True
    else:
        end = _bareEnd(text, i)
        value = text[i:end]
        quoted = False
        if op == ":":
            token = text[start:end]
            if value.startswith("//") or _IPV6.match(token) is not None:
                return None, start  # a URL or an IPv6 address is text
        prefix = op == ":" and value.endswith("*") and value != "*"
        if prefix:
            value = value.rstrip("*")
    column = name in COLUMNS
    key = name
    if name.startswith("fields.") and len(name) > len("fields."):
        key = name[len("fields.") :]
        column = False
    exists = op == ":" and value == "*" and not quoted
    if column:
        return _columnTerm(name, op, value, exists=exists, prefix=prefix, position=valueAt), end
    if exists:
        return Field(key, "exists"), end
    if op == ":":
        return Field(key, "prefix" if prefix else "=", value), end
    number = fieldNumber(value)
    if number is not None:
        return Field(key, op, value, "number", number), end
    try:
        micros = parseTimestamp(value) if _looksLikeTime(value) else None
    except RecordError:
        micros = None
    if micros is not None:
        return Field(key, op, value, "time", micros), end
    return Field(key, op, value, "string", value), end


def _looksLikeTime(value: str) -> bool:
    # A date: four digits and a dash (RFC 3339, ISO 8601).
    return len(value) >= 10 and value[:4].isdigit() and value[4] == "-"


def fieldNumber(text: str) -> int | float | None:
    """
    @return: C{text} as a JSON number (an C{int} when integral in form, e.g.
        C{"200"}; a C{float} for C{"1.5"} or C{"1e3"}), or L{None} when it is
        not a finite number.
    """
    try:
        number = int(text)
    except ValueError:
        pass
    else:
        # Past 64 bits SQLite holds numbers as floats: compare as one too.
        return number if -(2**63) <= number < 2**63 else float(number)
    try:
        real = float(text)
    except (ValueError, OverflowError):
        return None
    if real != real or real in (float("inf"), float("-inf")):
        return None
    return real


class RegexError(ValueError):
    """
    RE2 refused a regular expression (bad syntax, a feature RE2 lacks such
    as backreferences, or bigger than L{REGEX_MAX_MEMORY} compiled).
    """


#: Most memory one compiled regular expression may take (RE2's budget; a
#: pattern past it is refused rather than slow).
REGEX_MAX_MEMORY = 8 << 20


@lru_cache(maxsize=256)
def compileRegex(pattern: str) -> Any:
    """
    Compile C{pattern} with RE2 (linear time in the text, whatever the
    pattern), case-sensitive unless it says C{(?i)}.

    @return: the compiled expression (its C{search(text)} finds a match).
    @raise RegexError: when RE2 refuses it.
    """
    import re2

    options = re2.Options()
    options.log_errors = False
    options.max_mem = REGEX_MAX_MEMORY
    try:
        return re2.compile(pattern, options)
    except re2.error as e:
        reason = e.args[0] if e.args else str(e)
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(str(reason)) from None


def _columnTerm(name: str, op: str, value: str, *, exists: bool, prefix: bool, position: int) -> Node:
    if name == "message":
        if op != ":":
            raise SearchSyntaxError(position, "message takes words (message:timeout), not a comparison")
        return EVERYTHING if exists else _textTerm(value + ("*" if prefix else ""), messageOnly=True)
    if name in ("source", "service"):
        if exists:
            return Column(name, "exists", None)
        if op == ":":
            return Column(name, "prefix" if prefix else "=", value)
        return Column(name, op, value)
    if exists:
        return EVERYTHING  # every record has an id, times and a level
    typed: int
    if prefix:
        value += "*"
    if name == "level":
        try:
            typed = parseLevel(value)
        except RecordError:
            raise SearchSyntaxError(position, f"unknown level {value!r}") from None
        # A higher severity is a lower number: level>=warning is level <= 4.
        return Column(name, "=" if op == ":" else COMPARISONS[op], typed)
    if name == "id":
        try:
            typed = int(value)
        except ValueError:
            raise SearchSyntaxError(position, f"not a record id: {value!r}") from None
    else:
        try:
            typed = parseTimestamp(value, name)
        except RecordError:
            raise SearchSyntaxError(position, f"{name} needs a time (RFC 3339 or epoch seconds), not {value!r}") from None
    return Column(name, "=" if op == ":" else op, typed)


def _regex(pattern: str, position: int) -> Node:
    try:
        compileRegex(pattern)
    except RegexError as e:
        raise SearchSyntaxError(position, f"regular expression: {e}") from None
    return Regex(pattern)


# The parser


class _Parser:
    def __init__(self, tokens: list[_Token], length: int) -> None:
        self.tokens = tokens
        self.length = length
        self.i = 0
        self._operators()

    def _operators(self) -> None:
        """
        Turn C{OR} and C{AND} that are not between two operands into words.
        """
        tokens = self.tokens
        previousEnds = False
        for index, token in enumerate(tokens):
            if token.kind in ("OR", "AND"):
                following = tokens[index + 1].kind if index + 1 < len(tokens) else None
                if previousEnds and following is not None and following != ")":
                    previousEnds = False
                    continue
                tokens[index] = token = _Token("term", token.position, Text((token.kind.lower(),)))
            previousEnds = token.kind in ("term", ")")

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def parse(self) -> Node:
        node = self.parseOr(0)
        token = self.peek()
        if token is not None:
            # Only a ")" stops parseOr early.
            raise SearchSyntaxError(token.position, "')' without a matching '('")
        return node

    def parseOr(self, depth: int) -> Node:
        alternatives = [self.parseAnd(depth)]
        while (token := self.peek()) is not None and token.kind == "OR":
            self.i += 1
            alternatives.append(self.parseAnd(depth))
        kept = [a for a in alternatives if a != _IGNORED]
        if not kept:
            return _IGNORED
        return kept[0] if len(kept) == 1 else disjunction(kept)

    def parseAnd(self, depth: int) -> Node:
        parts: list[Node] = []
        while (token := self.peek()) is not None and token.kind not in ("OR", ")"):
            if token.kind == "AND":
                self.i += 1
                continue
            parts.append(self.parseUnary(depth))
        kept = [p for p in parts if p != EVERYTHING and p != _IGNORED]
        if not kept:
            return _IGNORED if all(p == _IGNORED for p in parts) else EVERYTHING
        return conjunction(kept)

    def parseUnary(self, depth: int) -> Node:
        negated = False
        while (token := self.peek()) is not None and token.kind == "-":
            negated = not negated
            self.i += 1
        if token is None:
            return _IGNORED  # a lone "-" at the end
        node = self.parsePrimary(depth)
        return negation(node) if negated and node != _IGNORED else node

    def parsePrimary(self, depth: int) -> Node:
        token = self.peek()
        assert token is not None
        self.i += 1
        if token.kind == "(":
            if depth + 1 > MAX_DEPTH:
                raise SearchSyntaxError(token.position, f"parentheses nested deeper than {MAX_DEPTH}")
            inner = self.parseOr(depth + 1)
            close = self.peek()
            if close is None or close.kind != ")":
                raise SearchSyntaxError(token.position, "'(' without a matching ')'")
            self.i += 1
            return inner
        if token.kind == "term":
            assert token.node is not None
            return token.node
        # A stray operator or ")" here: ")" ends the group in parseAnd, "-"
        # is taken by parseUnary, OR/AND were resolved in _operators.
        raise SearchSyntaxError(token.position, f"unexpected {token.kind!r}")


@lru_cache(maxsize=256)
def parseSearch(text: str) -> Node:
    """
    Parse C{q}.  See the module docstring for the syntax.

    @return: the query's tree; L{EVERYTHING} for a query without any term.
    @raise SearchSyntaxError: for a structure that cannot be read.
    """
    node = _Parser(_tokens(text), len(text)).parse()
    return EVERYTHING if node == _IGNORED else node
