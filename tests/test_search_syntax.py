"""
Tests for L{logsvc.search_syntax}: the grammar of C{q} (every construct,
precedence, errors with positions, hostile input), the FTS5 queries built
from it, which no user text may break; plus paging invariants of both
stores under concurrent inserts.  The semantics, the same on every store
and on the tail, are in L{tests.storetests.LANGUAGE_CASES}.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from logsvc.matcher import compileMatcher
from logsvc.query import Query, QueryError, parseQuery
from logsvc.record import Record, parseTimestamp
from logsvc.search_syntax import (
    EVERYTHING,
    MAX_DEPTH,
    And,
    Column,
    Field,
    Not,
    Or,
    Regex,
    SearchSyntaxError,
    Text,
    parseSearch,
    words,
)
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
    """Every construct of the grammar, parsed into its tree."""

    def test_words_phrases_prefixes_exclusions(self) -> None:
        """Words, phrases, prefixes and exclusions: terms that must all hold, in order."""
        self.assertEqual(
            parseSearch('Disk "no route" conn* -debug -"a b"'),
            And(
                (
                    Text(("disk",)),
                    Text(("no", "route")),
                    Text(("conn",), prefix=True),
                    Not(Text(("debug",))),
                    Not(Text(("a", "b"))),
                )
            ),
        )

    def test_punctuation_is_phrase(self) -> None:
        """A term with punctuation inside is the phrase of its words."""
        self.assertEqual(parseSearch("/api/users-list"), Text(("api", "users", "list")))

    def test_unclosed_quote(self) -> None:
        """An unclosed quote runs to the end of the text."""
        self.assertEqual(parseSearch('a "b c'), And((Text(("a",)), Text(("b", "c")))))

    def test_quoted_prefix(self) -> None:
        """A star after a closing quote makes the phrase a prefix."""
        self.assertEqual(parseSearch('"conn ref"*'), Text(("conn", "ref"), prefix=True))

    def test_empty_terms_ignored(self) -> None:
        """Terms without a word are ignored; nothing left matches everything."""
        self.assertEqual(parseSearch('- "" * ^ ()'), EVERYTHING)
        self.assertEqual(parseSearch(""), EVERYTHING)
        self.assertEqual(parseSearch("a OR ^"), Text(("a",)))

    def test_column_terms(self) -> None:
        """name:value on a column is an exact, case-sensitive test of it; * is a prefix or existence."""
        self.assertEqual(parseSearch("service:api"), Column("service", "=", "api"))
        self.assertEqual(parseSearch("source:web-3"), Column("source", "=", "web-3"))
        self.assertEqual(parseSearch("service:ap*"), Column("service", "prefix", "ap"))
        self.assertEqual(parseSearch("service:*"), Column("service", "exists", None))
        self.assertEqual(parseSearch('service:"a b*"'), Column("service", "=", "a b*"))
        self.assertEqual(parseSearch("-service:web"), Not(Column("service", "=", "web")))
        self.assertEqual(parseSearch("id>=10"), Column("id", ">=", 10))
        self.assertEqual(parseSearch("ts<1767323045"), Column("ts", "<", 1_767_323_045_000_000))
        self.assertEqual(parseSearch("level:*"), EVERYTHING)

    def test_levels(self) -> None:
        """Level names in any case; level>=X means X or worse (a lower number)."""
        self.assertEqual(parseSearch("level:WARN"), Column("level", "=", 4))
        self.assertEqual(parseSearch("level>=warning"), Column("level", "<=", 4))
        self.assertEqual(parseSearch("level>warning"), Column("level", "<", 4))
        self.assertEqual(parseSearch("level<=info"), Column("level", ">=", 6))
        self.assertEqual(parseSearch("level<error"), Column("level", ">", 3))

    def test_field_terms(self) -> None:
        """Other names are fields: equality, existence, prefix, comparisons typed by their value."""
        self.assertEqual(parseSearch("user:42"), Field("user", "=", "42"))
        self.assertEqual(parseSearch('path:"/api/v1"'), Field("path", "=", "/api/v1"))
        self.assertEqual(parseSearch('path:"say \\"hi\\""'), Field("path", "=", 'say "hi"'))
        self.assertEqual(parseSearch("trace_id:*"), Field("trace_id", "exists"))
        self.assertEqual(parseSearch('trace_id:"*"'), Field("trace_id", "=", "*"))
        self.assertEqual(parseSearch("user:ad*"), Field("user", "prefix", "ad"))
        self.assertEqual(parseSearch("ms>500"), Field("ms", ">", "500", "number", 500))
        self.assertEqual(parseSearch("ms<=1.5"), Field("ms", "<=", "1.5", "number", 1.5))
        self.assertEqual(
            parseSearch("at>2026-12-04T10:00:00Z"),
            Field("at", ">", "2026-12-04T10:00:00Z", "time", parseTimestamp("2026-12-04T10:00:00Z")),
        )
        self.assertEqual(parseSearch("name<m"), Field("name", "<", "m", "string", "m"))
        self.assertEqual(parseSearch("http.status:200"), Field("http.status", "=", "200"))

    def test_fields_prefix_forces_field(self) -> None:
        """fields.NAME names the field even where a column has that name."""
        self.assertEqual(parseSearch("fields.level:x"), Field("level", "=", "x"))
        self.assertEqual(parseSearch("fields.service:*"), Field("service", "exists"))
        self.assertEqual(parseSearch("message:time*"), Text(("time",), prefix=True, messageOnly=True))

    def test_text_not_fields(self) -> None:
        """Times, URLs, IPv6 addresses, a trailing colon and non-identifiers stay text."""
        self.assertEqual(parseSearch("10:32:00"), Text(("10", "32", "00")))
        self.assertEqual(parseSearch("http://x"), Text(("http", "x")))
        self.assertEqual(parseSearch("fe80::1"), Text(("fe80", "1")))
        self.assertEqual(parseSearch("dead:beef::1"), Text(("dead", "beef", "1")))
        self.assertEqual(parseSearch("::1"), Text(("1",)))
        self.assertEqual(parseSearch("Error:"), Text(("error",)))
        self.assertEqual(parseSearch("a-b:c"), Text(("a", "b", "c")))
        self.assertEqual(parseSearch("x->y"), Text(("x", "y")))

    def test_regex(self) -> None:
        """~"..." is an RE2 expression on the message; backslashes reach it unchanged."""
        self.assertEqual(parseSearch('~"timeout after \\d+ ms"'), Regex("timeout after \\d+ ms"))
        self.assertEqual(parseSearch('~"a\\"b"'), Regex('a"b'))

    def test_precedence(self) -> None:
        """AND (or juxtaposition) binds tighter than OR; parentheses group; - applies to one operand."""
        a, b, c = Text(("a",)), Text(("b",)), Text(("c",))
        self.assertEqual(parseSearch("a b OR c"), Or((And((a, b)), c)))
        self.assertEqual(parseSearch("a AND b OR c"), Or((And((a, b)), c)))
        self.assertEqual(parseSearch("a OR b c"), Or((a, And((b, c)))))
        self.assertEqual(parseSearch("a (b OR c)"), And((a, Or((b, c)))))
        self.assertEqual(parseSearch("a OR b OR c"), Or((a, b, c)))
        self.assertEqual(parseSearch("-(a OR b) c"), And((Not(Or((a, b))), c)))
        self.assertEqual(parseSearch("--a"), a)
        self.assertEqual(parseSearch("((a))"), a)

    def test_operators_only_between_operands(self) -> None:
        """OR and AND are operators only in capitals between two operands; else words."""
        self.assertEqual(parseSearch("a or b"), And((Text(("a",)), Text(("or",)), Text(("b",)))))
        self.assertEqual(parseSearch("OR"), Text(("or",)))
        self.assertEqual(parseSearch("a OR"), And((Text(("a",)), Text(("or",)))))
        self.assertEqual(parseSearch("AND a"), And((Text(("and",)), Text(("a",)))))
        self.assertEqual(parseSearch("(a OR)"), And((Text(("a",)), Text(("or",)))))

    def test_words(self) -> None:
        """Words are runs of letters and digits in any script; underscore separates."""
        self.assertEqual(words("user_id=42, Straße 日本語!"), ["user", "id", "42", "straße", "日本語"])


class SyntaxErrorTests(SynchronousTestCase):
    """Structures that cannot be read: errors that say where."""

    def assertErrorAt(self, text: str, position: int, reason: str) -> None:
        with self.assertRaises(SearchSyntaxError) as caught:
            parseSearch(text)
        self.assertEqual(caught.exception.position, position, text)
        self.assertIn(reason, caught.exception.reason, text)

    def test_unbalanced(self) -> None:
        """An unclosed '(' points at itself; a stray ')' at itself."""
        self.assertErrorAt("a (b OR c", 2, "without a matching ')'")
        self.assertErrorAt("a b) c", 3, "without a matching '('")
        self.assertErrorAt("((a)", 0, "without a matching ')'")

    def test_comparison_without_value(self) -> None:
        """A comparison needs a value, right after the operator."""
        self.assertErrorAt("ms>", 3, "needs a value")
        self.assertErrorAt("a ms>= b", 6, "needs a value")
        self.assertErrorAt("(ms<)", 4, "needs a value")

    def test_bad_values(self) -> None:
        """Unknown levels, times and ids that do not parse, a group as a value."""
        self.assertErrorAt("level:loud", 6, "unknown level")
        self.assertErrorAt("x ts>yesterday", 5, "needs a time")
        self.assertErrorAt("id:abc", 3, "not a record id")
        self.assertErrorAt("service:(a OR b)", 8, "cannot start with '('")
        self.assertErrorAt("message>3", 8, "takes words")

    def test_bad_regex(self) -> None:
        """RE2 refusing a pattern (syntax, backreferences, size) is an error at the ~."""
        self.assertErrorAt('a ~"(unclosed"', 2, "regular expression")
        self.assertErrorAt('~"(a)\\1"', 0, "regular expression")
        self.assertErrorAt('~"((a{100}){100}){100}"', 0, "regular expression")

    def test_query_error(self) -> None:
        """parseQuery refuses such a q as a QueryError on q with the position."""
        with self.assertRaises(QueryError) as caught:
            parseQuery({b"q": [b"a (b"]})
        self.assertEqual((caught.exception.param, caught.exception.position), ("q", 2))
        self.assertEqual(caught.exception.details(), {"param": "q", "position": 2})

    def test_http_400(self) -> None:
        """GET /logs answers a bad q with a JSON 400 naming q and the position."""
        service = MemoryLogService()
        response = self.successResultOf(service.treq.get("http://x/logs", params={"q": "ms> 5"}))
        self.assertEqual(response.code, 400)
        body = self.successResultOf(response.json())
        self.assertEqual((body["param"], body["position"]), ("q", 3))
        self.assertIn("needs a value", body["error"])


class HostileInputTests(SynchronousTestCase):
    """Input built to hurt: it parses, compiles and matches in bounded time, or is refused."""

    def test_ten_thousand_terms(self) -> None:
        """10,000 terms (words, exclusions, fields, ORs) parse, compile and match quickly."""
        text = " ".join(
            f"-w{i}" if i % 4 == 0 else f"x{i}:v OR w{i}" if i % 4 == 1 else f"ms>{i}" if i % 4 == 2 else f"w{i}*"
            for i in range(10_000)
        )
        started = time.process_time()
        query = Query(q=text)
        node = query.search
        self.assertIsInstance(node, Or)
        row = (1, 1, 1, 6, "h", "s", "w2 x", '{"ms": 1}')
        self.assertFalse(query.matches(row))
        self.assertLess(time.process_time() - started, 5.0)

    def test_ten_thousand_exclusions_per_record_cheap(self) -> None:
        """A query of 10,000 exclusions costs about one set operation per record."""
        query = Query(q=" ".join(f"-w{i}" for i in range(10_000)))
        row = (1, 1, 1, 6, "h", "s", "some ordinary message with words", None)
        query.matches(row)  # parsed and compiled once
        started = time.process_time()
        for _ in range(1000):
            query.matches(row)
        self.assertLess(time.process_time() - started, 1.0)

    def test_ten_thousand_terms_in_sqlite(self) -> None:
        """Queries of 10,000 terms run on SQLite (past 200 terms the matcher decides) with the matcher's answers."""
        from tests.storetests import languageRecords

        records = languageRecords()
        conn = memoryConnection()
        conn.executemany(INSERT_SQL, records)
        indexRange(conn, 0, len(records), records="main")
        rows = [(n + 1, *record) for n, record in enumerate(records)]
        for q in [
            " ".join(f"-w{i}" for i in range(10_000)),
            " OR ".join(f"user:{i}" for i in range(10_000)),
            " ".join(f"-x{i}:v" for i in range(10_000)),
        ]:
            query = Query(q=q, limit=None, order="asc")
            expected = [row[0] for row in rows if query.matches(row)]
            self.assertEqual([row[0] for row in selectPage(conn, query)], expected)

    def test_deep_parentheses(self) -> None:
        """Nesting up to MAX_DEPTH parses; deeper is an error at the first '(' too deep, never a crash."""
        depth = MAX_DEPTH
        self.assertEqual(parseSearch("(" * depth + "a" + ")" * depth), Text(("a",)))
        for n in (depth + 1, 10_000, 100_000):
            with self.assertRaises(SearchSyntaxError) as caught:
                parseSearch("(" * n + "a" + ")" * n)
            self.assertEqual(caught.exception.position, depth)
        with self.assertRaises(SearchSyntaxError):
            parseSearch("(" * 100_000)
        self.assertEqual(parseSearch("-" * 100_000 + "a"), Text(("a",)))

    def test_catastrophic_regexes(self) -> None:
        """Patterns that backtrack exponentially elsewhere run in linear time under RE2."""
        text = "a" * 100_000 + "!"
        started = time.process_time()
        for pattern in ["(a+)+$", "(a|a)*b", "(a|aa)+$", "(.*a){20}$", "^(a?){30}a{30}$"]:
            query = Query(q=f'~"{pattern}"')
            query.matches((1, 1, 1, 6, "h", "s", text, None))
        self.assertLess(time.process_time() - started, 2.0)


class NeverBreaksTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(USER_TEXT)
    def test_parse_or_position(self, text: str) -> None:
        """Any q either parses (and its FTS5 query and page run) or is a SearchSyntaxError with a position inside it."""
        try:
            node = parseSearch(text)
        except SearchSyntaxError as e:
            self.assertTrue(0 <= e.position <= len(text))
            return
        conn = memoryConnection()
        conn.execute(INSERT_SQL, Record(1, 1, 6, "h", "s", "a b " + text, '{"k": "v"}'))
        indexRange(conn, 0, 1, records="main")
        query = Query(q=text, fields=(("k" + text, text),))
        match = hitsSelect(query)
        if match is not None:
            conn.execute(*match).fetchall()
        selectPage(conn, query)
        compileMatcher(node)((1, 1, 1, 6, "h", "s", text, None))

    @settings(max_examples=100, deadline=None)
    @given(USER_TEXT, USER_TEXT)
    def test_http_never_500(self, q: str, value: str) -> None:
        """GET /logs answers 200, or 400 for a q that cannot be read, for any q and field filter."""
        service = MemoryLogService()
        service.store.append([Record(1, 1, 6, "h", "s", "some text", '{"k": 1}')])
        stub: StubTreq = service.treq
        response = self.successResultOf(stub.get("http://x/logs", params={"q": q, "field.k": value}))
        self.assertIn(response.code, (200, 400))
        self.successResultOf(response.content())

    def test_query_args(self) -> None:
        """q with undecodable bytes is parsed, not refused."""
        query = parseQuery({b"q": [b"\xff\xfe \"x"]})
        self.assertEqual(query.search, Text(("x",)))


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


#: Terms the combined queries are built from: every kind of term.
_ATOMS = [
    "timeout", "api", '"timeout after"', "time*", "ms", "service:api", "service:ap*", "source:web-3",
    "user:42", "user:admin", "user:4*", "trace_id:*", "ms>500", "ms<=fast", "status>=500",
    "when>2026-12-04T11:00:00Z", "level>=warning", "level:error", "fields.level:*", "ok:true",
    '~"^GET"', '~"\\d{4} ms"', "message:api", "10:32:00", "id>4", "nested:*",
]


def _combined() -> Any:
    """Queries of atoms joined by juxtaposition, AND, OR, exclusions and parentheses."""
    atom = st.sampled_from(_ATOMS)

    def extend(inner: Any) -> Any:
        return st.one_of(
            st.tuples(inner, st.sampled_from([" ", " AND ", " OR "]), inner).map("".join),
            inner.map(lambda q: f"-({q})"),
            inner.map(lambda q: f"({q})"),
        )

    return st.recursive(atom, extend, max_leaves=6)


class SameAnswersTests(SynchronousTestCase):
    """The matcher and the SQLite translation agree on combined queries."""

    @settings(max_examples=200, deadline=None)
    @given(_combined(), st.booleans())
    def test_sqlite_equals_matcher(self, q: str, indexed: bool) -> None:
        """Any combination of terms finds the same records in SQLite (indexed or not) as the compiled matcher."""
        from tests.storetests import languageRecords

        records = languageRecords()
        conn = memoryConnection()
        conn.executemany(INSERT_SQL, records)
        if indexed:
            indexRange(conn, 0, len(records), records="main")
        rows = [(n + 1, *record) for n, record in enumerate(records)]
        matcher = compileMatcher(parseSearch(q))
        expected = [row[0] for row in rows if matcher(row)]
        found = [row[0] for row in selectPage(conn, Query(q=q, limit=None, order="asc"))]
        self.assertEqual(found, expected, q)
        page = [row[0] for row in selectPage(conn, Query(q=q, limit=2, order="desc"))]
        self.assertEqual(page, expected[::-1][:3], q)
