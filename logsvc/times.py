# -*- test-case-name: tests.test_times -*-
"""
Times as logsvc keeps them: integers, microseconds since the Unix epoch,
UTC.  One conversion from and to C{datetime}, and L{Memo}, the cache every
parser that meets the same second (or day) again and again uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

#: The Unix epoch, as an aware datetime.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Microseconds per second.
SECOND = 1_000_000


def nowMicros() -> int:
    """
    @return: the current wall-clock time in microseconds since the epoch.
    """
    return time.time_ns() // 1000


def datetimeToMicros(moment: datetime) -> int:
    """
    @param moment: an aware datetime (a naive one is taken as UTC).
    @return: microseconds since the epoch, exactly (no float on the way).
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - EPOCH
    return (delta.days * 86400 + delta.seconds) * SECOND + delta.microseconds


def microsToDatetime(micros: int) -> datetime:
    """
    @return: the aware UTC datetime of C{micros} since the epoch.
    """
    return EPOCH + timedelta(microseconds=micros)


_Key = TypeVar("_Key")
_Value = TypeVar("_Value")


class Memo(dict[_Key, _Value]):
    """
    C{memo[key]} is C{compute(key)}: computed once and kept, up to C{limit}
    (by default 4,096) keys at a time (then forgotten all at once).  Looking
    one up is a plain dict subscript, the cheapest thing code run once per
    record can do; an exception from C{compute} propagates and nothing is
    kept.
    """

    def __init__(self, compute: Callable[[_Key], _Value], *, limit: int = 4096) -> None:
        super().__init__()
        self._compute = compute
        self._limit = limit

    def __missing__(self, key: _Key) -> _Value:
        if len(self) > self._limit:
            self.clear()
        value = self[key] = self._compute(key)
        return value
