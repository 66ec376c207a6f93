"""
For tests of the C path: L{requireSpeedups} gives the optional C module,
C{logsvc._speedups}, or skips the test with the command that builds it (CI
builds it and counts a skip as a failure).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from twisted.trial.unittest import SkipTest

from logsvc import speedups
from logsvc.build_speedups import BUILD_COMMAND, SOURCE_NAME


def missingReason(module: ModuleType | None, error: str | None = None) -> str | None:
    """
    @param module: the C module as imported, or L{None}.
    @param error: why a built module could not be loaded, if it could not.
    @return: why the C path cannot be tested (not built, cannot be loaded,
        or built from an older source than the one beside it, so the tests
        would run yesterday's code), with the command that builds it; or
        L{None} when it can.
    """
    if module is None:
        why = "is not built" if error is None else f"cannot be loaded ({error})"
        return f"logsvc._speedups {why}: run {BUILD_COMMAND}"
    built = Path(module.__file__ or "")
    source = built.parent / SOURCE_NAME
    if source.is_file() and source.stat().st_mtime > built.stat().st_mtime:
        return f"logsvc._speedups is older than {source}: run {BUILD_COMMAND}"
    return None


def requireSpeedups() -> ModuleType:
    """
    @return: C{logsvc._speedups}, built from the current source.
    @raise SkipTest: naming the command that builds it, when it is not built,
        cannot be loaded, or is older than its source.
    """
    reason = missingReason(speedups.module, speedups.importError)
    if reason is not None:
        raise SkipTest(reason)
    assert speedups.module is not None
    return speedups.module
