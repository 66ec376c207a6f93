"""
Tests for L{logsvc.batchmatch}: a batch's index answers every query exactly
as the compiled matcher does record by record.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from logsvc.batchmatch import BatchIndex, indexesOf
from logsvc.matcher import MatchRecord
from logsvc.query import parseQuery
from tests.storetests import LANGUAGE_CASES, languageRecords

ROWS = [(n + 1, *record) for n, record in enumerate(languageRecords())]


def byIndex(q: str) -> list[int]:
    query = parseQuery({b"q": [q.encode()]}, allowUnlimited=True)
    index = BatchIndex([MatchRecord(row) for row in ROWS])
    return [ROWS[i][0] for i in indexesOf(index.matching(query.filter))]


def byRecord(q: str) -> list[int]:
    query = parseQuery({b"q": [q.encode()]}, allowUnlimited=True)
    return [row[0] for row in ROWS if query.matches(row)]


class BatchIndexTests(SynchronousTestCase):
    def test_languageCases(self) -> None:
        """Every case of the shared query-language table matches the same records through the index."""
        for q, expected in LANGUAGE_CASES:
            self.assertEqual(byIndex(q), expected, q)

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["", "-", "NOT "]),
                st.sampled_from(["timeout", "disk", "full", "con*", "d*", '"disk full"', "service:api", "level:error", "zzz", "a*"]),
            ),
            min_size=1,
            max_size=6,
        ),
        st.sampled_from([" ", " OR "]),
    )
    def test_sameAsMatcher(self, terms: list[tuple[str, str]], joiner: str) -> None:
        """Random combinations of words, prefixes, phrases, columns, NOT and OR match as the compiled matcher does."""
        q = joiner.join(sign + term for sign, term in terms)
        self.assertEqual(byIndex(q), byRecord(q), q)

    def test_indexesOf(self) -> None:
        """A mask's set bits, in order."""
        self.assertEqual(indexesOf(0b101001), [0, 3, 5])
        self.assertEqual(indexesOf(0), [])
