# -*- test-case-name: tests.test_speedups -*-
"""
Whether logsvc's optional C module, C{logsvc._speedups}, is in use.

logsvc gives the same results without it: every function in it has a
pure-Python reference, which runs when the module is not in use.  The
wheel's build hook compiles it where the installing machine has a C
compiler and the Python headers; in a checkout L{BUILD_COMMAND} builds it in
place.  Code that has a C version reads L{module}, never imports
C{logsvc._speedups} itself, so that a module L{module} refuses is not used.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from logsvc.build_speedups import BUILD_COMMAND, NEEDS, SOURCE_NAME

__all__ = ["BUILD_COMMAND", "absence", "module", "notUsedBecause", "parsersLine", "startupLine"]


def staleness(built: Path) -> str | None:
    """
    @param built: the module's file.
    @return: why it is older than the source beside it (a checkout's
        in-place build, from before the source last changed), or L{None}
        when it is not, or has no source beside it (an installed copy).
    """
    source = built.with_name(SOURCE_NAME)
    if source.is_file() and source.stat().st_mtime > built.stat().st_mtime:
        return f"built before the last change to {source}"
    return None


def load() -> tuple[ModuleType | None, str | None]:
    """
    Import C{logsvc._speedups}, unless it is older than its source (it
    would lack the functions the Python code now expects, or give
    yesterday's answers).

    @return: the module and L{None}; or L{None} and why a built module is
        not used (it cannot be loaded, or L{staleness}); or L{None} twice
        when it is not built.
    """
    try:
        # By name: the module has no stub for type checkers to read.
        loaded = importlib.import_module("logsvc._speedups")
    except ModuleNotFoundError:
        return None, None
    except ImportError as e:
        # Built, but not for this Python, or missing a symbol it needs.
        return None, str(e)
    stale = staleness(Path(loaded.__file__ or ""))
    return (None, stale) if stale is not None else (loaded, None)


#: C{logsvc._speedups}, or L{None} when the pure-Python versions run.
module: ModuleType | None
#: Why a built module is not used (see L{load}); L{None} when it is, or is
#: not built.
notUsedBecause: str | None
module, notUsedBecause = load()


def absence(notUsedBecause: str | None) -> str:
    """
    @param notUsedBecause: why a built module is not used, or L{None}.
    @return: C{"is not built"}, or C{"is not used (why)"}.
    """
    return "is not built" if notUsedBecause is None else f"is not used ({notUsedBecause})"


def parsersLine(speedups: ModuleType | None, notUsedBecause: str | None = None) -> str:
    """
    @param speedups: the C module in use, or L{None}.
    @param notUsedBecause: why a built module is not used, or L{None}.
    @return: the line C{twistd logsvc} logs at start saying which parsers
        run: the C ones, or the pure-Python ones and how to get the others.
    """
    if speedups is not None:
        return "parsers: C speedups in use (logsvc._speedups)"
    return (
        f"parsers: pure Python; the optional C module logsvc._speedups {absence(notUsedBecause)}:"
        f" install {NEEDS} and reinstall logsvc, or run {BUILD_COMMAND} in a checkout"
    )


def startupLine() -> str:
    """
    @return: L{parsersLine} for this process.
    """
    return parsersLine(module, notUsedBecause)
