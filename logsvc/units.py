# -*- test-case-name: tests.test_units -*-
"""
Sizes, durations and intervals as people write them (C{64KiB}, C{30d},
C{1h}), parsed in one place for the command line and the HTTP API alike.

Every parser is pure and raises C{ValueError} with a message that shows an
accepted form; naming the option or query parameter, and quoting the text,
is its caller's part.
"""

from __future__ import annotations

import math
import re

#: Bytes per size unit, lower case; decimal units are powers of 1000, binary
#: ones (and the bare letters, as C{ulimit} and C{dd} read them) of 1024.
SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}

#: Microseconds per time unit, lower case.
SECOND = 1_000_000
TIME_UNITS = {
    "us": 1,
    "ms": 1000,
    "s": SECOND,
    "m": 60 * SECOND,
    "h": 3600 * SECOND,
    "d": 86400 * SECOND,
    "w": 7 * 86400 * SECOND,
}

_NOT_A_SIZE = "not a size (e.g. 65536, 64KiB, 10MB)"
_NOT_A_DURATION = "not a duration (e.g. 90s, 15m, 12h, 30d)"

_NUMBER_AND_UNIT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


def _split(text: str) -> tuple[float, str] | None:
    found = _NUMBER_AND_UNIT.match(text)
    if found is None:
        return None
    return float(found.group(1)), found.group(2).lower()


def parseSize(text: str) -> int:
    """
    Parse a byte size: a number with an optional unit (C{k}, C{KiB}, C{MB},
    C{GiB}, ...; see L{SIZE_UNITS}).

    @return: bytes, rounded down, C{>= 0}.
    @raise ValueError: for anything else.
    """
    split = _split(text)
    if split is None or split[1] not in SIZE_UNITS:
        raise ValueError(_NOT_A_SIZE)
    value = split[0] * SIZE_UNITS[split[1]]
    if not math.isfinite(value):
        raise ValueError(_NOT_A_SIZE)
    return int(value)


def formatSize(size: int) -> str:
    """
    @return: C{size} bytes in the largest binary unit that divides it
        (C{65536} -> C{"64KiB"}), which L{parseSize} reads back.
    """
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def parseDuration(text: str, *, defaultUnit: str = "s") -> float:
    """
    Parse a duration: a number with an optional unit C{us}, C{ms}, C{s},
    C{m}, C{h}, C{d}, C{w} (C{"30d"}, C{"1.5h"}, C{"90"}).

    @param defaultUnit: the unit of a bare number.
    @return: seconds, C{>= 0} and finite.
    @raise ValueError: for anything else.
    """
    split = _split(text)
    unit = (split[1] or defaultUnit) if split is not None else ""
    if split is None or unit not in TIME_UNITS:
        raise ValueError(_NOT_A_DURATION)
    seconds = split[0] * TIME_UNITS[unit] / SECOND
    if not math.isfinite(seconds):
        raise ValueError(_NOT_A_DURATION)
    return seconds


def parseInterval(text: str) -> int:
    """
    Parse a bucket width: a positive whole number and a unit C{s}, C{m},
    C{h}, C{d} or C{w} (C{10s}, C{1m}, C{1h}, C{1d}).

    @return: microseconds, C{> 0}.
    @raise ValueError: for anything else.
    """
    split = _split(text)
    if (
        split is None
        or split[1] not in TIME_UNITS
        or split[1] in ("us", "ms")
        or split[0] != int(split[0])
        or split[0] <= 0
        or "." in text
    ):
        raise ValueError("not an interval (e.g. 10s, 1m, 1h, 1d)")
    return int(split[0]) * TIME_UNITS[split[1]]


def formatInterval(width: int) -> str:
    """
    @param width: microseconds.
    @return: C{width} in the largest unit that divides it (C{"1h"},
        C{"90s"}), which L{parseInterval} reads back when it is whole
        seconds.
    """
    for unit in ("d", "h", "m", "s"):
        if width % TIME_UNITS[unit] == 0:
            return f"{width // TIME_UNITS[unit]}{unit}"
    return f"{width / SECOND}s"
