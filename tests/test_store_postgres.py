"""
Tests for L{logsvc.store.postgres}: the store contract of
L{tests.storetests} against a real PostgreSQL server (C{LOGSVC_TEST_POSTGRESQL}),
and what only the shared store promises: exact search semantics for records
without a vector, schema made safely by nodes starting together, ids in
commit order across nodes, the feed of every node's commits, retention by
partitions, and surviving a lost connection.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from logsvc.store.base import ICommitFeed, IStore
from tests.pgtests import makeDatabase
from tests.storetests import StoreTestsMixin, record
from tests.test_store_search import StoreSearchMixin


class PostgresTestCase(TestCase):
    timeout = 60

    def startStore(self, url: str | None = None) -> Any:
        """
        @return: a started store on C{url} (a new database by default),
            stopped at cleanup.
        """
        from logsvc.store.postgres.store import PostgresStore

        if url is None:
            url = makeDatabase(self)
        store = PostgresStore(url)
        store.startService()
        self.addCleanup(lambda: store.stopService() if store.running else None)
        return store


class PostgresContractTests(StoreTestsMixin, PostgresTestCase):
    def makeStore(self) -> IStore:
        store: IStore = self.startStore()
        return store

    def test_interface(self) -> None:
        """PostgresStore provides IStore and ICommitFeed."""
        self.assertTrue(verifyObject(IStore, self.store))
        self.assertTrue(verifyObject(ICommitFeed, self.store))

    @inlineCallbacks
    def test_nulCharacter(self) -> Generator[Deferred[Any], Any, None]:
        """A NUL character (PostgreSQL text holds none) is stored as U+FFFD, not refused."""
        yield self.add(record("a\x00b"))
        found = yield self.messages()
        self.assertEqual(found, ["a\ufffdb"])


class PostgresSearchTests(StoreSearchMixin, PostgresTestCase):
    """The shared store gives the search answers the in-memory store gives."""

    def makeStore(self) -> Any:
        return self.startStore()

    def settle(self, indexed: bool = True) -> Deferred[None]:
        return succeed(None)


class PostgresUnvectoredSearchTests(PostgresSearchTests):
    """
    The same answers for records stored without a search vector (words that
    do not fit a tsvector), which L{Search.matches} decides.
    """

    def makeStore(self) -> Any:
        from logsvc.store.postgres import store as module

        self.patch(module, "vectorText", lambda message, service: None)
        return self.startStore()
