# -*- test-case-name: tests.test_batchmatch -*-
"""
Matching one committed batch against many live tails' queries at once.

Per record and per tail, even the compiled matcher (L{logsvc.matcher})
costs Python calls for every term; fifty tails at 10,000 records a second
is half a million such evaluations a second.  L{BatchIndex} turns a batch
into an inverted index once (each word of the batch to the set of its
records, as the bits of an integer), so a query's words, exclusions and
word prefixes cost a dictionary look-up or a bisection of the batch's sorted
words each, and AND, OR and NOT are integer operations over every record of
the batch at once: a tail costs about its number of terms per batch, not
records times terms.  Terms the index cannot answer (phrases, comparisons,
regular expressions, fields, message-only words) are run record by record
with the compiled matcher, once per batch however many tails share them.
The answers are exactly L{logsvc.query.Query.matches}'s.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from functools import lru_cache

from logsvc.matcher import MatchRecord, RecordTest, compileRecordTest
from logsvc.search_syntax import And, Node, Not, Or, Text


class BatchIndex:
    """
    The records of one batch, indexed for L{matching}.

    @ivar records: the batch's rows as L{MatchRecord}s, in order.
    @ivar everything: the bit mask of every record.
    """

    def __init__(self, records: Sequence[MatchRecord]) -> None:
        self.records = records
        self.everything = (1 << len(records)) - 1
        postings: dict[str, int] = {}
        for index, record in enumerate(records):
            bit = 1 << index
            for word in record.wordSet():
                postings[word] = postings.get(word, 0) | bit
        self._postings = postings
        self._sorted = sorted(postings)
        self._masks: dict[Node, int] = {}

    def matching(self, node: Node) -> int:
        """
        @return: the bit mask of the records C{node} matches (bit C{i}:
            record C{i}).
        """
        if isinstance(node, Text) and len(node.tokens) == 1 and not node.prefix and not node.messageOnly:
            # The bulk of long queries: one look-up, no hashing of the node.
            return self._postings.get(node.tokens[0], 0)
        if isinstance(node, And):
            mask = self.everything
            for child in node.children:
                mask &= self.matching(child)
                if not mask:
                    break
            return mask
        if isinstance(node, Or):
            mask = 0
            for child in node.children:
                mask |= self.matching(child)
            return mask
        if isinstance(node, Not):
            return self.everything & ~self.matching(node.child)
        # Terms are remembered for the batch (tails often share them); the
        # operators above are cheaper to redo than to hash.
        known = self._masks.get(node)
        if known is None:
            known = self._masks[node] = self._term(node)
        return known

    def _term(self, node: Node) -> int:
        if isinstance(node, Text) and len(node.tokens) == 1 and not node.messageOnly:
            word = node.tokens[0]
            if not node.prefix:
                return self._postings.get(word, 0)
            mask = 0
            words = self._sorted
            at = bisect_left(words, word)
            while at < len(words) and words[at].startswith(word):
                mask |= self._postings[words[at]]
                at += 1
            return mask
        candidates = self.everything
        if isinstance(node, Text) and not node.messageOnly:
            # A phrase is only in records holding all its words.
            for word in node.tokens[:-1] if node.prefix else node.tokens:
                candidates &= self._postings.get(word, 0)
        # Record by record with the compiled matcher.
        test = _recordTest(node)
        mask = 0
        records = self.records
        for index in indexesOf(candidates):
            if test(records[index]):
                mask |= 1 << index
        return mask


@lru_cache(maxsize=1024)
def _recordTest(node: Node) -> RecordTest:
    return compileRecordTest(node)


def indexesOf(mask: int) -> list[int]:
    """
    @return: the positions of C{mask}'s set bits, in order.
    """
    found = []
    while mask:
        low = mask & -mask
        found.append(low.bit_length() - 1)
        mask ^= low
    return found
