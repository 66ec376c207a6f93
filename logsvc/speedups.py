# -*- test-case-name: tests.test_speedups -*-
"""
Whether logsvc's optional C module, C{logsvc._speedups}, is in use.

logsvc gives the same results without it: every function in it has a
pure-Python reference, which runs when the module is not built.  The wheel's
build hook compiles it where the installing machine has a C compiler and the
Python headers; in a checkout L{BUILD_COMMAND} builds it in place.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from logsvc.build_speedups import BUILD_COMMAND, NEEDS

__all__ = ["BUILD_COMMAND", "importError", "module", "parsersLine", "startupLine"]

#: C{logsvc._speedups}, or L{None} when it is not built (or cannot be
#: loaded).
module: ModuleType | None
#: Why L{module} is L{None} although a module file is there: the import's
#: error; L{None} when it loaded or is not built.
importError: str | None = None
try:
    # By name: the module has no stub for type checkers to read.
    module = importlib.import_module("logsvc._speedups")
except ModuleNotFoundError:
    module = None
except ImportError as e:
    # Built, but not for this Python, or missing a symbol it needs.
    module = None
    importError = str(e)


def parsersLine(speedups: ModuleType | None, error: str | None = None) -> str:
    """
    @param speedups: the C module in use, or L{None}.
    @param error: why it cannot be loaded although it is built (see
        L{importError}), or L{None}.
    @return: the line C{twistd logsvc} logs at start saying which parsers
        run: the C ones, or the pure-Python ones and how to get the others.
    """
    if speedups is not None:
        return "parsers: C speedups in use (logsvc._speedups)"
    why = "is not built" if error is None else f"cannot be loaded ({error})"
    return (
        f"parsers: pure Python; the optional C module logsvc._speedups {why}:"
        f" install {NEEDS} and reinstall logsvc, or run {BUILD_COMMAND} in a checkout"
    )


def startupLine() -> str:
    """
    @return: L{parsersLine} for this process.
    """
    return parsersLine(module, importError)
