"""
The search language of C{q}, parsed once into a L{Search} that both stores
and the live tail evaluate the same way.

Syntax (whitespace separates terms; every term must hold)::

    timeout              the word, in any case (words are runs of letters and digits)
    "connection refused" the words next to each other, in this order
    conn*                a word starting with "conn"
    -debug  -"a b"       leave out records with that word / phrase / prefix
    /api/users           a term with punctuation is the phrase of its words

Nothing a user types is an error: quotes that never close end at the end of
the text, FTS5 operators (C{AND}, C{OR}, C{NEAR}, C{^}, C{:}, parentheses) are
ordinary words or separators, and a term without any word is ignored.

Matching is over the message and the service, by words: the text is cut into
words exactly as SQLite's C{unicode61} tokenizer (with diacritics kept) cuts
it, so the FTS5 index (see L{logsvc.store.sqlite}) and L{Search.matches}
agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

#: A word: a run of letters and digits (underscore separates, as in unicode61).
_WORD = re.compile(r"[^\W_]+")
#: A term ending in a word then C{*} (C{conn*}) is a prefix search.
_PREFIX = re.compile(r"[^\W_]\*+\s*$")


def words(text: str) -> list[str]:
    """
    @return: the words of C{text}, lower-cased, as the FTS5 index holds them.
    """
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Term:
    """
    One term of a search.

    @ivar tokens: its words, lower-cased, at least one.
    @ivar prefix: the last word matches any word it starts.
    @ivar negated: records matching the term are left out.
    """

    tokens: tuple[str, ...]
    prefix: bool = False
    negated: bool = False

    @property
    def exactInIndex(self) -> bool:
        """
        True when the FTS5 index alone decides this term (one word): longer
        terms are phrases, which the index (built with C{detail=column}, no
        positions) only narrows down and L{Search.matches} confirms.
        """
        return len(self.tokens) == 1

    def ftsExpression(self) -> str:
        """
        @return: an FTS5 expression true for every record the term matches
            (exactly those when L{exactInIndex}); every word is quoted, so no
            user text is ever FTS5 syntax.
        """
        parts = [_quote(token) for token in self.tokens]
        if self.prefix:
            parts[-1] += " *"
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def matchesWords(self, haystack: list[str]) -> bool:
        """
        @param haystack: the words of a text (L{words}).
        @return: True when the term (ignoring its negation) occurs in it.
        """
        needle = self.tokens
        n = len(needle)
        last = n - 1
        for start in range(len(haystack) - n + 1):
            for i in range(n):
                word = haystack[start + i]
                want = needle[i]
                if i == last and self.prefix:
                    if not word.startswith(want):
                        break
                elif word != want:
                    break
            else:
                return True
        return False


def _quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


@dataclass(frozen=True)
class Search:
    """
    A parsed C{q}: terms that must all hold.

    @ivar text: the C{q} it was parsed from.
    @ivar terms: the terms, in the order typed.
    """

    text: str
    terms: tuple[Term, ...]

    @property
    def empty(self) -> bool:
        """
        True when the search matches everything (no term).
        """
        return not self.terms

    @property
    def positive(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if not t.negated)

    @property
    def negative(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if t.negated)

    def ftsQuery(self) -> str | None:
        """
        @return: an FTS5 query (without column filter) whose matches are a
            superset of this search's matches, or L{None} when no positive
            term gives the index something to look up (a search of only
            exclusions scans instead).
        """
        positive = self.positive
        if not positive:
            return None
        query = " AND ".join(t.ftsExpression() for t in positive)
        for term in self.negative:
            if term.exactInIndex:
                query += " NOT " + term.ftsExpression()
        return query

    @property
    def exactInIndex(self) -> bool:
        """
        True when L{ftsQuery} matches exactly this search's records, so no
        record found through the index needs L{matches}.
        """
        return all(t.exactInIndex for t in self.terms)

    def matches(self, message: str, service: str) -> bool:
        """
        @return: True when a record with this message and service matches.
        """
        if not self.terms:
            return True
        haystack = words(message + " " + service)
        for term in self.terms:
            if term.matchesWords(haystack) == term.negated:
                return False
        return True


def _terms(text: str) -> list[tuple[str, bool, bool]]:
    """
    Split C{q} into C{(body, quoted, negated)}: whitespace separates, double
    quotes group (an unclosed quote runs to the end), a leading C{-} negates.
    """
    found = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        negated = False
        if text[i] == "-" and i + 1 < n and not text[i + 1].isspace():
            negated = True
            i += 1
        if text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:
                end = n
            body = text[i + 1 : end]
            i = end + 1
            # A * right after the closing quote makes the phrase a prefix.
            if i < n and text[i] == "*":
                body += "*"
                i += 1
            found.append((body, True, negated))
        else:
            start = i
            while i < n and not text[i].isspace():
                i += 1
            found.append((text[start:i], False, negated))
    return found


@lru_cache(maxsize=256)
def parseSearch(text: str) -> Search:
    """
    Parse C{q}; never raises.  See the module docstring for the syntax.
    """
    terms = []
    for body, _quoted, negated in _terms(text):
        tokens = words(body)
        if not tokens:
            continue
        prefix = _PREFIX.search(body) is not None
        terms.append(Term(tuple(tokens), prefix=prefix, negated=negated))
    return Search(text, tuple(terms))
