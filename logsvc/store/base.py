"""
The store interface every backend provides (L{IStore}), and what it speaks:
rows (L{Row}) and its one error (L{StoreError}).

A leaf: backends (L{logsvc.store.sqlite}, L{logsvc.store.postgres},
L{logsvc.store.memory}) import it; it imports none of them.
"""

from __future__ import annotations

from typing import Any

from zope.interface import Attribute, Interface

from logsvc.query import QueryError

#: A stored row: columns as in L{logsvc.record.ROW_COLUMNS}.
Row = tuple[Any, ...]


class StoreError(Exception):
    """
    The store could not do what was asked (disk full, database locked or
    corrupt, database server unreachable).  Acknowledgements for the records
    concerned are never sent.
    """


class StoreUnavailable(StoreError):
    """
    The store cannot be reached just now (a database server restarting, a
    dropped connection); it reconnects by itself.  Ingest answers 503 and
    stops reading TCP senders rather than acknowledge anything.
    """


class QueryTimeout(StoreError):
    """
    A read took longer than the search budget (C{--search-timeout}) and was
    stopped.  Its message tells the user how to narrow the query.

    @ivar seconds: the budget, in seconds.
    """

    def __init__(self, seconds: float | None) -> None:
        super().__init__()
        self.seconds = seconds

    def __str__(self) -> str:
        return (
            f"the search took longer than its budget of {self.seconds:g} s (--search-timeout) and was stopped;"
            " narrow it: a shorter time range (since/until), a level, service or source, a field filter,"
            " or rarer words in q"
        )


#: Most records one request may check with the Python matcher (what a
#: store's SQL cannot decide: regular expressions, phrases past the index,
#: comparisons on strings, text in the records the index does not hold
#: yet); past it the request fails with L{WorkLimitExceeded}.  The same on
#: every store.
WORK_LIMIT = 1_000_000


class WorkLimitExceeded(QueryError):
    """
    A request would check more records with the Python matcher than
    L{WORK_LIMIT}.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            "q",
            f"the query had to check more than {limit:,} records one by one (a regular expression,"
            " a comparison or a phrase the index cannot decide); narrow it with words, field terms"
            " or a shorter time range",
        )


class IStore(Interface):
    """
    Durable storage of records: everything the service asks of a store.  All
    methods are called on the reactor thread and never block it; results
    come as Deferreds.

    Ids are the store's order of commits: a reader that has seen id C{n}
    later sees only ids above C{n} appear (never one below), on every node
    sharing the store.  That is what lets a tail resume with C{afterId}.
    """

    dataPath: Any = Attribute(
        """
        The local file holding the records (its file system is the one the
        free-disk floor watches), or L{None} when the data lives elsewhere
        (a database server).
        """
    )

    available: Any = Attribute(
        """
        False while the store cannot be reached (a database server down);
        appends then fail with L{StoreUnavailable}.  An embedded store is
        unavailable only while it cannot open its writer (a full disk at
        start).
        """
    )

    def append(records: list) -> Any:
        """
        Store C{records} (L{logsvc.record.Record}s) in one transaction.

        @return: a Deferred firing with the id of the first record once all of
            them are durable (ids are consecutive, in list order, and above
            every id committed before), or failing with L{StoreError}; nothing
            of a failed append is stored.
        """

    def query(query: Any) -> Any:
        """
        @param query: a L{logsvc.query.Query}.
        @return: a Deferred firing with up to C{query.limit + 1} rows in the
            query's order, so the caller can tell whether another page exists;
            fewer when they pass L{logsvc.pagesize.PAGE_BYTES}: the rows as
            L{logsvc.pagesize.takeRows} takes them (L{logsvc.pagesize.pageCut}
            tells where the page ends).
        """

    def count() -> Any:
        """
        @return: a Deferred firing with the number of stored records.
        """

    def exportPage(query: Any) -> Any:
        """
        One page of an NDJSON export of C{query} (C{query.limit} records at
        most, and about L{logsvc.pagesize.PAGE_BYTES} at most unless one
        record alone is bigger; the caller pages on with the position
        returned).

        @return: a Deferred firing with C{(ndjson, count, last)}: the records
            as NDJSON bytes (one API record object per line), how many, and
            the C{(ts, id)} of the last when more may follow, else L{None}.
        """

    def afterId(query: Any, lastId: int, limit: int) -> Any:
        """
        @return: a Deferred firing with up to C{limit} rows matching
            C{query}'s filters whose id is above C{lastId}, in id order;
            fewer when they pass L{logsvc.pagesize.PAGE_BYTES}
            (C{takeRows(rows, limit - 1)}: the last row is the one that
            passed it).
        """

    def histogram(query: Any, origin: int, width: int) -> Any:
        """
        Count matches by time slot and level: slot C{n} holds C{ts} in
        C{[origin + n * width, origin + (n + 1) * width)}; C{query.since}
        must be set and not before C{origin}.

        @return: a Deferred firing with C{{(slot, level): count}}.
        """

    def top(query: Any, column: str) -> Any:
        """
        @param column: C{"service"}, C{"source"} or C{"level"}.
        @return: a Deferred firing with C{{value: count}} over the matches.
        """

    def timeRange(query: Any) -> Any:
        """
        @return: a Deferred firing with the C{(earliest, latest)} C{ts} of the
            matches, or L{None} when nothing matches.
        """

    def deleteOld(*, cutoff: int | None, maxBytes: int | None, chunk: int) -> Any:
        """
        Retention's step: delete records with C{ts} before C{cutoff}
        (microseconds), else, while the data exceeds C{maxBytes}, the oldest.
        Deletes about C{chunk} records at most (a backend dropping whole
        partitions may delete more at once), so callers call again while the
        result is at least C{chunk}.  An id is never handed out twice, even
        once its record is deleted.

        @return: a Deferred firing with the number of records deleted.
        """

    def components() -> Any:
        """
        @return: the L{logsvc.health.ComponentHealth} of each of the store's
            parts that can fail and recover (C{/health} reports them).
        """

    def dataSize() -> Any:
        """
        @return: a Deferred firing with the bytes the records and their
            indexes take (what C{--max-db-size} bounds).
        """


class ICommitFeed(Interface):
    """
    A store whose commits come from several writers (other nodes) tells its
    readers about all of them: the live tails subscribe here rather than to
    the local pipeline.
    """

    def subscribe(subscriber: Any) -> Any:
        """
        Call C{subscriber(first, records)} on the reactor thread with every
        committed run of records (ids C{first}, C{first + 1}, ...), every
        writer's, in id order, each once.

        @return: a function that unsubscribes.
        """
