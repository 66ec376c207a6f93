# -*- test-case-name: tests.test_timebounds -*-
"""
Records whose event time cannot be right: the one rule every transport
follows, applied where every record passes (L{logsvc.pipeline.Pipeline.submit}).

A record stamped more than C{--max-future} after it was received (a clock
far off, a year 9999 typo), or, with C{--retain}, stamped before the
retention window (it would be deleted at the next sweep, or sort before
everything), is kept with its receive time as C{ts}, and the time it
carried in C{fields.original_ts} (RFC 3339).  Such a record would otherwise
be the newest of every default query for ever, or vanish unseen.  Copying
records between stores does not pass here: timestamps stay as they are.
"""

from __future__ import annotations

import orjson

from logsvc.record import Record, formatMicros

#: Default seconds a record's time may be ahead of its receive time.
DEFAULT_MAX_FUTURE = 86_400.0

#: The field that keeps a replaced event time.
ORIGINAL_TS = "original_ts"


class TimeBounds:
    """
    The window of believable event times around each record's receive
    time; see the module docstring.
    """

    def __init__(self, maxFuture: float | None = DEFAULT_MAX_FUTURE, maxAge: float | None = None) -> None:
        """
        @param maxFuture: seconds ahead of the receive time, or L{None} for
            no bound.
        @param maxAge: seconds before the receive time (the retention
            window), or L{None} for no bound.
        """
        self.ahead = None if maxFuture is None else int(maxFuture * 1_000_000)
        self.behind = None if maxAge is None else int(maxAge * 1_000_000)

    def outside(self, record: Record) -> bool:
        """
        @return: whether C{record}'s time is outside the window.
        """
        ts, received = record[0], record[1]
        return (self.ahead is not None and ts > received + self.ahead) or (
            self.behind is not None and ts < received - self.behind
        )

    def apply(self, records: list[Record]) -> tuple[list[Record], int]:
        """
        @return: C{records} with every record outside the window retimed
            (the same list when none is), and how many were.
        """
        if self.ahead is None and self.behind is None:
            return records, 0
        # Bounds no time reaches stand for "no bound": one test per record.
        ahead = 2**63 if self.ahead is None else self.ahead
        behind = 2**63 if self.behind is None else self.behind
        result = records
        retimed = 0
        for index, record in enumerate(records):
            ts, received = record[0], record[1]
            if ts > received + ahead or ts < received - behind:
                if result is records:
                    result = list(records)
                result[index] = retime(record)
                retimed += 1
        return result, retimed


def retime(record: Record) -> Record:
    """
    @return: C{record} with its receive time as C{ts} and its own time in
        C{fields.original_ts} (a field of that name already there stays).
    """
    fields = orjson.loads(record.fields) if record.fields else {}
    if not isinstance(fields, dict):
        fields = {}
    fields.setdefault(ORIGINAL_TS, formatOriginal(record.ts))
    return record._replace(ts=record.received, fields=orjson.dumps(fields).decode())


def formatOriginal(micros: int) -> str:
    """
    @return: C{micros} as RFC 3339 when it is a representable time, else
        the number of microseconds as text.
    """
    try:
        return formatMicros(micros)
    except (ValueError, OverflowError, OSError):
        return str(micros)
