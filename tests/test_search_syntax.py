"""
Tests for L{logsvc.search_syntax}: parsing C{q}, matching, and the FTS5
queries built from it, which no user text may break; plus paging invariants
of both stores under concurrent inserts.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from logsvc.query import Query, parseQuery
from logsvc.record import Record
from logsvc.search_syntax import Term, parseSearch, words
from logsvc.store.memory import MemoryStore
from logsvc.store.sqlite.connection import INSERT_SQL, createSchema, registerFunctions
from logsvc.store.sqlite.plan import hitsSelect, selectPage
from logsvc.store.sqlite.searchindex import createSearchSchema, indexRange
from logsvc.testing import MemoryLogService

#: Text users might type: quotes, stars, dashes, FTS5 operators, unicode.
USER_TEXT = st.text(
    alphabet=st.sampled_from(list('ab "*-:^()ANDORNEAR{}+\\\'é日_ .,\t\x00') + ["\U0001f600", "ß", "İ"]),
    max_size=30,
) | st.text(max_size=30)


def memoryConnection() -> sqlite3.Connection:
    """An in-memory database with logsvc's schema and functions, and a search index beside it."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    registerFunctions(conn)
    createSchema(conn)
    conn.execute("ATTACH DATABASE ':memory:' AS search")
    createSearchSchema(conn, 0, schema="search")
    return conn


class ParseTests(SynchronousTestCase):
    def test_terms(self) -> None:
        """Words, phrases, prefixes and exclusions become terms in order."""
        search = parseSearch('Disk "no route" conn* -debug -"a b"')
        self.assertEqual(
            search.terms,
            (
                Term(("disk",)),
                Term(("no", "route")),
                Term(("conn",), prefix=True),
                Term(("debug",), negated=True),
                Term(("a", "b"), negated=True),
            ),
        )

    def test_punctuation_is_phrase(self) -> None:
        """A term with punctuation inside is the phrase of its words."""
        self.assertEqual(parseSearch("/api/users-list").terms, (Term(("api", "users", "list")),))

    def test_unclosed_quote(self) -> None:
        """An unclosed quote runs to the end of the text."""
        self.assertEqual(parseSearch('a "b c').terms, (Term(("a",)), Term(("b", "c"))))

    def test_quoted_prefix(self) -> None:
        """A star after a closing quote makes the phrase a prefix."""
        self.assertEqual(parseSearch('"conn ref"*').terms, (Term(("conn", "ref"), prefix=True),))

    def test_empty_terms_ignored(self) -> None:
        """Terms without a word are ignored; nothing left matches everything."""
        search = parseSearch('- "" * -- () ^')
        self.assertTrue(search.empty)
        self.assertTrue(search.matches("anything", "x"))

    def test_operators_quoted(self) -> None:
        """FTS5 operators typed by users are quoted words in the FTS5 query."""
        self.assertEqual(parseSearch("a OR b NEAR").ftsQuery(), '"a" AND "or" AND "b" AND "near"')

    def test_exclusions_only(self) -> None:
        """A search of only exclusions has no FTS5 query and matches what lacks the words."""
        search = parseSearch("-debug -trace")
        self.assertIsNone(search.ftsQuery())
        self.assertTrue(search.matches("info line", "api"))
        self.assertFalse(search.matches("a debug line", "api"))

    def test_matches(self) -> None:
        """Matching is by whole words, case-insensitive, phrases in order."""
        search = parseSearch('"connection refused" time*')
        self.assertTrue(search.matches("Connection refused: timeout", "db"))
        self.assertFalse(search.matches("refused connection timeout", "db"))
        self.assertFalse(search.matches("connections refused timeout", "db"))

    def test_words(self) -> None:
        """Words are runs of letters and digits in any script; underscore separates."""
        self.assertEqual(words("user_id=42, Straße 日本語!"), ["user", "id", "42", "straße", "日本語"])


class NeverBreaksTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(USER_TEXT)
    def test_fts_query_valid(self, text: str) -> None:
        """Any q and field value gives an FTS5 query SQLite accepts, and a page that runs."""
        conn = memoryConnection()
        conn.execute(INSERT_SQL, Record(1, 1, 6, "h", "s", "a b " + text, '{"k": "v"}'))
        indexRange(conn, 0, 1, records="main")
        query = Query(q=text, fields=(("k" + text, text),))
        match = hitsSelect(query)
        if match is not None:
            conn.execute(*match).fetchall()
        selectPage(conn, query)
        parseSearch(text).matches(text, text)

    @settings(max_examples=100, deadline=None)
    @given(USER_TEXT, USER_TEXT)
    def test_http_never_500(self, q: str, value: str) -> None:
        """GET /logs answers 200 for any q and field filter."""
        service = MemoryLogService()
        service.store.append([Record(1, 1, 6, "h", "s", "some text", '{"k": 1}')])
        stub: StubTreq = service.treq
        response = self.successResultOf(stub.get("http://x/logs", params={"q": q, "field.k": value}))
        self.assertEqual(response.code, 200)
        self.successResultOf(response.content())

    def test_query_args(self) -> None:
        """q with undecodable bytes is parsed, not refused."""
        query = parseQuery({b"q": [b"\xff\xfe \"x"]})
        self.assertEqual(query.search.terms, (Term(("x",)),))


def _page(store: Any, query: Query) -> list[Any]:
    if isinstance(store, MemoryStore):
        found: list[Any] = []
        store.query(query).addCallback(found.extend)
        return found
    return selectPage(store, query)


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), st.lists(st.tuples(st.integers(0, 20), st.sampled_from(["red", "blue"])), min_size=1, max_size=4)),
        st.tuples(st.just("page"), st.none()),
        st.tuples(st.just("index"), st.none()),
    ),
    max_size=40,
)


class PagingInvariantTests(SynchronousTestCase):
    """Paging with a cursor while records keep arriving, in both stores."""

    @settings(max_examples=80, deadline=None)
    @given(
        initial=st.lists(st.tuples(st.integers(0, 20), st.sampled_from(["red", "blue"])), max_size=30),
        ops=OPS,
        order=st.sampled_from(["asc", "desc"]),
        q=st.sampled_from(["", "red", "-red", '"word red"']),
        limit=st.integers(1, 4),
    )
    def test_every_match_once(self, initial: list[tuple[int, str]], ops: list[Any], order: str, q: str, limit: int) -> None:
        """Every record matching when paging began is seen once; nothing is seen twice."""
        memory = MemoryStore()
        conn = memoryConnection()
        indexed = [0]

        def insert(items: list[tuple[int, str]]) -> None:
            records = [Record(ts, ts, 6, "h", "s", f"word {colour}", None) for ts, colour in items]
            memory.append(records)
            conn.executemany(INSERT_SQL, records)

        insert(initial)
        query = Query(q=q, order=order, limit=limit)
        expected = {row[0] for row in _page(memory, Query(q=q, limit=None))}
        for store in (memory, conn):
            seen: list[int] = []
            position = query
            pending = list(ops)
            while True:
                while pending and pending[0][0] != "page":
                    action, items = pending.pop(0)
                    if action == "insert" and store is memory:
                        insert(items)
                    elif action == "index" and store is conn:
                        top = conn.execute("SELECT ifnull(max(id), 0) FROM logs").fetchone()[0]
                        indexRange(conn, indexed[0], top, records="main")
                        indexed[0] = top
                if pending:
                    pending.pop(0)
                rows = _page(store, position)
                page = rows[:limit]
                seen.extend(row[0] for row in page)
                if len(rows) <= limit:
                    break
                position = position.after(page[-1][1], page[-1][0])
            self.assertEqual(len(seen), len(set(seen)), store)
            self.assertTrue(expected <= set(seen), store)
