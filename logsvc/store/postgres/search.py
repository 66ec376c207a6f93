# -*- test-case-name: tests.test_store_postgres -*-
"""
Search on PostgreSQL with exactly the semantics of L{logsvc.search_syntax}:
each record's words are cut by logsvc (L{logsvc.search_syntax.words}, the
same function the matcher uses), not by PostgreSQL's text parser, and
stored as a C{tsvector} of those words with their positions; a search
becomes a C{tsquery} over them.  Words are compared as written (no stemming,
no stop words), C{conn*} is a lexeme prefix (C{:*}), a phrase is C{<->}
between its words, an exclusion is C{!}.  So a GIN index over the column
answers every search exactly, with no second check.

Where a record's words do not fit a C{tsvector} (a word over 2,046 bytes,
more than 16,383 words, a word more than 255 times, the vector over
L{MAX_VECTOR_BYTES}), PostgreSQL would silently clip positions; such a
record is stored with no vector (NULL) and checked by the matcher (L{logsvc.query.Query.matches})
instead, which queries read through a small partial index.

Pure: no database, no Twisted.
"""

from __future__ import annotations

from collections.abc import Iterable

from logsvc.search_syntax import And, Node, Not, Or, Text, words

#: Longest lexeme PostgreSQL takes, in UTF-8 bytes.
MAX_LEXEME_BYTES = 2046
#: Highest position PostgreSQL keeps exactly.
MAX_POSITION = 16383
#: Most positions PostgreSQL keeps for one lexeme.
MAX_POSITIONS = 255
#: Largest vector literal stored (PostgreSQL's limit is 1 MiB).
MAX_VECTOR_BYTES = 512 * 1024


def _quote(word: str) -> str:
    # tsvector and tsquery literals: a backslash escapes, a quote doubles.
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def vectorText(message: str, service: str) -> str | None:
    """
    @return: the C{tsvector} literal of the words of a record (its message
        and service, as the matcher reads them) with their positions,
        or L{None} when they do not fit a C{tsvector} exactly.

    On the writer thread for every record, so written for speed: a word is
    a run of letters and digits, so it never holds a quote or a backslash
    and needs no escaping; the limits are checked only where they can be
    reached.
    """
    found = words(message + " " + service)
    count = len(found)
    if count > MAX_POSITION:
        return None
    if len(set(found)) == count:
        # Most records repeat no word: one position each.
        text = " ".join([f"'{word}':{n}" for n, word in enumerate(found, 1)])
        positions: Iterable[str] = found
    else:
        where: dict[str, str] = {}
        n = 0
        for word in found:
            n += 1
            seen = where.get(word)
            where[word] = str(n) if seen is None else f"{seen},{n}"
        if count > MAX_POSITIONS and any(p.count(",") >= MAX_POSITIONS for p in where.values()):
            return None
        text = " ".join([f"'{word}':{p}" for word, p in where.items()])
        positions = where
    if len(text) > MAX_LEXEME_BYTES // 4:
        # A word over the lexeme limit, or a vector over its own, needs
        # this much text at least.
        if len(text.encode("utf-8")) > MAX_VECTOR_BYTES or any(
            len(word.encode("utf-8")) > MAX_LEXEME_BYTES for word in positions
        ):
            return None
    return text


#: A C{tsquery} no record matches (a word is never a backslash), and its
#: negation, a tautology PostgreSQL accepts.
NEVER = "'\\\\'"
ALWAYS = "!" + NEVER


def isTextOnly(node: Node) -> bool:
    """
    True when C{node} is made of text terms over the message and service
    only (words, phrases, prefixes, with AND, OR and exclusions), which a
    C{tsquery} decides exactly.
    """
    if isinstance(node, Text):
        return not node.messageOnly
    if isinstance(node, Not):
        return isTextOnly(node.child)
    if isinstance(node, (And, Or)):
        return all(isTextOnly(c) for c in node.children)
    return False


def _textQuery(text: Text) -> str:
    if any(len(token.encode("utf-8")) > MAX_LEXEME_BYTES for token in text.tokens):
        return NEVER  # no vectored record holds such a word
    parts = [_quote(token) for token in text.tokens]
    if text.prefix:
        parts[-1] += ":*"
    body = " <-> ".join(parts)
    return "(" + body + ")" if len(parts) > 1 else body


def queryText(node: Node) -> str:
    """
    @param node: a tree for which L{isTextOnly} holds.
    @return: the C{tsquery} literal true exactly for the records (with a
        vector) that C{node} matches.
    """
    if isinstance(node, Text):
        return _textQuery(node)
    if isinstance(node, Not):
        return "!(" + queryText(node.child) + ")"
    if isinstance(node, (And, Or)):
        if not node.children:
            return ALWAYS
        joiner = " & " if isinstance(node, And) else " | "
        return joiner.join("(" + queryText(c) + ")" for c in node.children)
    raise TypeError(f"not a text term: {node!r}")
