"""The store interface every backend provides."""

from __future__ import annotations

from typing import Any

from zope.interface import Interface

#: A stored row: columns as in L{logsvc.record.ROW_COLUMNS}.
Row = tuple[Any, ...]


class StoreError(Exception):
    """
    The store could not do what was asked (disk full, database locked or
    corrupt).  Acknowledgements for the records concerned are never sent.
    """


class IStore(Interface):
    """
    Durable storage of records.  All methods are called on the reactor thread
    and never block it; results come as Deferreds.
    """

    def append(records: list) -> Any:
        """
        Store C{records} (L{logsvc.record.Record}s) in one transaction.

        @return: a Deferred firing with the id of the first record once all of
            them are durable (ids are consecutive, in list order), or failing
            with L{StoreError}; nothing of a failed append is stored.
        """

    def query(query: Any) -> Any:
        """
        @param query: a L{logsvc.query.Query}.
        @return: a Deferred firing with up to C{query.limit + 1} rows in the
            query's order, so the caller can tell whether another page exists.
        """

    def count() -> Any:
        """
        @return: a Deferred firing with the number of stored records.
        """
