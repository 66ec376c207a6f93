"""
For tests of the C path: L{requireSpeedups} gives the optional C module,
C{logsvc._speedups}, or skips the test with the command that builds it (CI
builds it and counts a skip as a failure).
"""

from __future__ import annotations

from types import ModuleType

from twisted.trial.unittest import SkipTest

from logsvc import speedups
from logsvc.build_speedups import BUILD_COMMAND


def missingReason(module: ModuleType | None, notUsedBecause: str | None = None) -> str | None:
    """
    @param module: L{logsvc.speedups.module}.
    @param notUsedBecause: L{logsvc.speedups.notUsedBecause}.
    @return: why the C path cannot be tested (the module is not built, or
        not used: it cannot be loaded, or is older than its source, so the
        tests would run yesterday's code), with the command that builds it;
        or L{None} when it can.
    """
    if module is not None:
        return None
    return f"logsvc._speedups {speedups.absence(notUsedBecause)}: run {BUILD_COMMAND}"


def requireSpeedups() -> ModuleType:
    """
    @return: C{logsvc._speedups}, as L{logsvc.speedups.module} has it.
    @raise SkipTest: naming the command that builds it, when it is not
        built, cannot be loaded, or is older than its source.
    """
    reason = missingReason(speedups.module, speedups.notUsedBecause)
    if reason is not None:
        raise SkipTest(reason)
    assert speedups.module is not None
    return speedups.module
