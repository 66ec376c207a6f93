"""
Tests for L{logsvc.store.memory.MemoryStore}: the store contract of
L{tests.storetests}, which the SQLite store passes too.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from logsvc.store.base import IStore
from logsvc.store.memory import MemoryStore
from tests.storetests import StoreTestsMixin, record


class MemoryStoreTests(StoreTestsMixin, TestCase):
    def makeStore(self) -> IStore:
        return MemoryStore()

    def test_interface(self) -> None:
        """MemoryStore provides IStore."""
        self.assertTrue(verifyObject(IStore, self.store))

    def test_synchronous(self) -> None:
        """Every Deferred a MemoryStore returns has already fired."""
        first = self.successResultOf(self.store.append([record("a")]))
        self.assertEqual(first, 1)
        self.assertEqual(self.successResultOf(self.store.count()), 1)
