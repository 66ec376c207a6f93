"""
Tests for L{logsvc.query}: parsing request arguments into a L{Query}, cursors.
"""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from logsvc.query import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Query,
    QueryError,
    decodeCursor,
    encodeCursor,
    parseQuery,
)

TU = 1_767_323_045_000_000


def args(**kwargs: object) -> dict[bytes, list[bytes]]:
    """Request args as twisted.web gives them: bytes names to lists of bytes values."""
    result: dict[bytes, list[bytes]] = {}
    for name, value in kwargs.items():
        values = value if isinstance(value, list) else [value]
        result[name.encode()] = [v if isinstance(v, bytes) else str(v).encode() for v in values]
    return result


class ParseQueryTests(SynchronousTestCase):
    def assertQueryError(self, param: str, **kwargs: object) -> QueryError:
        with self.assertRaises(QueryError) as caught:
            parseQuery(args(**kwargs))
        self.assertEqual(caught.exception.param, param)
        self.assertTrue(str(caught.exception).startswith(f"{param}: "), str(caught.exception))
        return caught.exception

    def test_defaults(self) -> None:
        """No arguments is the newest 100 records of everything."""
        self.assertEqual(parseQuery({}), Query())
        self.assertEqual((Query().limit, Query().order), (DEFAULT_LIMIT, "desc"))

    def test_sinceUntil(self) -> None:
        """since and until take RFC 3339 or epoch seconds, in microseconds."""
        query = parseQuery(args(since="2026-01-02T03:04:05Z", until="1767323046"))
        self.assertEqual((query.since, query.until), (TU, TU + 1_000_000))

    def test_emptyTimesIgnored(self) -> None:
        """Empty since/until/level/limit values mean absent."""
        self.assertEqual(parseQuery(args(since="", until="", level="", limit="")), Query())

    def test_badTimes(self) -> None:
        """A bad since or until is a QueryError naming that parameter."""
        error = self.assertQueryError("since", since="yesterday")
        self.assertTrue(str(error).startswith("since: cannot parse 'yesterday'; use RFC 3339"), str(error))
        self.assertQueryError("until", until="2026-02-30T00:00:00Z")
        self.assertQueryError("until", until="-3")

    def test_level(self) -> None:
        """level takes any level alias or number."""
        for text, severity in (("error", 3), ("WARN", 4), ("err", 3), ("0", 0), ("40", 3)):
            self.assertEqual(parseQuery(args(level=text)).level, severity, text)

    def test_badLevel(self) -> None:
        """An unknown level is a QueryError naming level."""
        error = self.assertQueryError("level", level="loud")
        self.assertIn("'loud'", str(error))

    def test_sourcesAndServices(self) -> None:
        """source and service are repeatable; an empty source is ignored, an empty service kept."""
        query = parseQuery(args(source=["a", "", "b"], service=["x", ""]))
        self.assertEqual(query.sources, ("a", "b"))
        self.assertEqual(query.services, ("x", ""))

    def test_q(self) -> None:
        """q is kept as text and split into words."""
        query = parseQuery(args(q="disk  full"))
        self.assertEqual((query.q, query.words()), ("disk  full", ["disk", "full"]))

    def test_limit(self) -> None:
        """limit takes 1..MAX_LIMIT."""
        self.assertEqual(parseQuery(args(limit="1")).limit, 1)
        self.assertEqual(parseQuery(args(limit=str(MAX_LIMIT))).limit, MAX_LIMIT)
        self.assertEqual(MAX_LIMIT, 10_000)

    def test_badLimit(self) -> None:
        """A limit out of range or not an integer is a QueryError naming limit."""
        for bad in ("0", "-1", str(MAX_LIMIT + 1), "ten", "1.5"):
            self.assertQueryError("limit", limit=bad)

    def test_unlimited(self) -> None:
        """With allowUnlimited and no limit, the query has no limit; an explicit limit still counts."""
        self.assertIsNone(parseQuery({}, allowUnlimited=True).limit)
        self.assertEqual(parseQuery(args(limit="5"), allowUnlimited=True).limit, 5)

    def test_order(self) -> None:
        """order takes asc or desc, any case."""
        self.assertEqual(parseQuery(args(order="asc")).order, "asc")
        self.assertEqual(parseQuery(args(order="DESC")).order, "desc")

    def test_badOrder(self) -> None:
        """Any other order is a QueryError naming order."""
        self.assertQueryError("order", order="newest")

    def test_cursor(self) -> None:
        """cursor takes a token made by encodeCursor."""
        self.assertEqual(parseQuery(args(cursor=encodeCursor(TU, 42))).cursor, (TU, 42))

    def test_badCursor(self) -> None:
        """A garbage cursor is a QueryError naming cursor."""
        self.assertQueryError("cursor", cursor="garbage!")

    def test_fields(self) -> None:
        """field.NAME=value arguments are exact field matches, repeatable."""
        query = parseQuery(args(**{"field.user": ["ann", "bob"], "field.code": "500"}))
        self.assertEqual(sorted(query.fields), [("code", "500"), ("user", "ann"), ("user", "bob")])

    def test_emptyFieldName(self) -> None:
        """A field argument without a name is a QueryError naming it."""
        with self.assertRaises(QueryError) as caught:
            parseQuery(args(**{"field.": "x"}))
        self.assertEqual(caught.exception.param, "field.")

    def test_lastValueWins(self) -> None:
        """For single-valued arguments given twice, the last one counts."""
        self.assertEqual(parseQuery(args(limit=["5", "7"])).limit, 7)

    def test_invalidUTF8Args(self) -> None:
        """Argument bytes that are not UTF-8 are decoded with replacement, not an exception."""
        self.assertEqual(parseQuery(args(q=b"caf\xe9")).q, "caf\ufffd")

    def test_after(self) -> None:
        """Query.after positions a copy after a record, leaving the rest alone."""
        query = Query(level=3, limit=5)
        self.assertEqual(query.after(TU, 9), Query(level=3, limit=5, cursor=(TU, 9)))


class CursorTests(SynchronousTestCase):
    def test_roundTrip(self) -> None:
        """decodeCursor(encodeCursor(ts, id)) is (ts, id), for small and large values."""
        for ts, rowid in ((0, 1), (TU, 42), (253402300799_999999, 2**62)):
            self.assertEqual(decodeCursor(encodeCursor(ts, rowid)), (ts, rowid))

    def test_urlSafe(self) -> None:
        """A cursor needs no URL quoting."""
        token = encodeCursor(253402300799_999999, 2**62)
        self.assertRegex(token, r"^[A-Za-z0-9_-]+$")

    def test_garbage(self) -> None:
        """Tokens this service did not make are rejected with a QueryError naming cursor."""
        bogus = [
            "",
            "abc",
            "!!!",
            "\u00e9t\u00e9",
            base64.urlsafe_b64encode(b"1:2:3").decode(),
            base64.urlsafe_b64encode(b"x:1").decode(),
            base64.urlsafe_b64encode(b"12").decode(),
            base64.urlsafe_b64encode(b"\xff\xfe:1").decode(),
        ]
        for token in bogus:
            with self.assertRaises(QueryError) as caught:
                decodeCursor(token)
            self.assertEqual(caught.exception.param, "cursor", token)


_argNames = st.sampled_from(
    [
        "since",
        "until",
        "level",
        "source",
        "service",
        "q",
        "limit",
        "order",
        "cursor",
        "field.x",
        "field.",
    ]
)
_argValues = st.lists(
    st.one_of(
        st.binary(max_size=12),
        st.text(max_size=12).map(str.encode),
        st.integers().map(lambda n: str(n).encode()),
    ),
    min_size=1,
    max_size=2,
)


class ParseQueryPropertyTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None)
    @given(arguments=st.dictionaries(_argNames.map(str.encode), _argValues, max_size=5))
    def test_queryOrQueryError(self, arguments: dict[bytes, list[bytes]]) -> None:
        """Any request arguments give a valid Query or a QueryError naming a parameter, never another error."""
        try:
            query = parseQuery(arguments)
        except QueryError as e:
            self.assertIn(
                e.param, ["since", "until", "level", "limit", "order", "cursor", "field.", "q"]
            )
            return
        self.assertIn(query.order, ("asc", "desc"))
        self.assertTrue(query.limit is not None and 1 <= query.limit <= MAX_LIMIT)


class ParameterTests(SynchronousTestCase):
    def test_unknownNamesClosest(self) -> None:
        """checkParameters refuses the first unknown name with the closest known one."""
        from logsvc.query import UnknownParameter, checkParameters

        known = {"since", "until", "level", "service"}
        checkParameters(args(since="1h", **{"field.user": "x"}), known)
        with self.assertRaises(UnknownParameter) as caught:
            checkParameters(args(servcie="api"), known)
        self.assertEqual((caught.exception.param, caught.exception.suggestion), ("servcie", "service"))
        with self.assertRaises(UnknownParameter) as caught:
            checkParameters(args(zzz="1"), known)
        self.assertIsNone(caught.exception.suggestion)

    def test_parseQueryChecksWhenAsked(self) -> None:
        """parseQuery checks names only when given the endpoint's accepted names."""
        self.assertEqual(parseQuery(args(levle="error")), Query())
        with self.assertRaises(QueryError):
            parseQuery(args(levle="error"), accepted={"level"})

    def test_relativeForms(self) -> None:
        """now, a duration ago and now-DURATION resolve against now; absolute times do not ask it."""
        from logsvc.query import isRelativeTime, parseTimeBound

        def now() -> int:
            return TU

        for text, expected in [
            ("now", TU),
            ("15m", TU - 15 * 60_000_000),
            ("now-15m", TU - 15 * 60_000_000),
            ("2h", TU - 2 * 3_600_000_000),
            ("7d", TU - 7 * 86_400_000_000),
            ("1w", TU - 7 * 86_400_000_000),
            ("30s", TU - 30_000_000),
        ]:
            self.assertTrue(isRelativeTime(text), text)
            self.assertEqual(parseTimeBound(text, "since", now), expected, text)

        def never() -> int:
            raise AssertionError("absolute times need no clock")

        self.assertEqual(parseTimeBound("2026-01-02T03:04:05Z", "since", never), TU)
        self.assertEqual(parseTimeBound("1767323045", "since", never), TU)
        for bad in ("-15m", "now-", "15", "now15m", "15x"):
            self.assertFalse(isRelativeTime(bad) and bad != "15", bad)

    def test_cursorCarriesResolution(self) -> None:
        """A cursor made with the resolution instant gives it back, and parseQuery reuses it."""
        from logsvc.query import decodePosition

        token = encodeCursor(TU, 7, 123)
        self.assertEqual(decodePosition(token), (TU, 7, 123))
        self.assertEqual(decodeCursor(token), (TU, 7))
        query = parseQuery(args(since="1m", cursor=token), now=lambda: 1 / 0)  # type: ignore[arg-type,return-value]
        self.assertEqual((query.since, query.resolvedAt, query.cursor), (123 - 60_000_000, 123, (TU, 7)))
