"""
Tests for L{logsvc.speedups}, what tells code and people whether the
optional C module is in use, and for the tests' L{tests.speedups} helper.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from twisted.trial.unittest import SynchronousTestCase

from logsvc import speedups
from logsvc.build_speedups import BUILD_COMMAND, SOURCE_NAME, moduleFileName
from logsvc.speedups import parsersLine, startupLine
from tests.speedups import missingReason, requireSpeedups


def builtModule(directory: Path, *, sourceAge: float) -> ModuleType:
    """
    @return: a stand-in for the C module whose file is in C{directory},
        beside a source C{sourceAge} seconds older than it (negative: newer).
    """
    directory.mkdir()
    built = directory / moduleFileName()
    source = directory / SOURCE_NAME
    built.write_bytes(b"")
    source.write_bytes(b"")
    now = built.stat().st_mtime
    os.utime(source, (now - sourceAge, now - sourceAge))
    module = ModuleType("logsvc._speedups")
    module.__file__ = str(built)
    return module


class ParsersLineTests(SynchronousTestCase):
    def test_inUse(self) -> None:
        """With the C module the line says the C parsers are in use."""
        self.assertEqual(
            parsersLine(ModuleType("logsvc._speedups")),
            "parsers: C speedups in use (logsvc._speedups)",
        )

    def test_notBuilt(self) -> None:
        """Without it the line says pure Python, what to install and the build command."""
        line = parsersLine(None)
        self.assertTrue(line.startswith("parsers: pure Python; "), line)
        self.assertIn("logsvc._speedups is not built", line)
        self.assertIn("apt-get install gcc python3-dev", line)
        self.assertIn(BUILD_COMMAND, line)

    def test_cannotBeLoaded(self) -> None:
        """A module that is there but does not load is named with the import's error."""
        line = parsersLine(None, "undefined symbol: PyFoo")
        self.assertIn("logsvc._speedups cannot be loaded (undefined symbol: PyFoo)", line)

    def test_thisProcess(self) -> None:
        """startupLine describes the module this process imported."""
        self.assertEqual(startupLine(), parsersLine(speedups.module, speedups.importError))


class RequireSpeedupsTests(SynchronousTestCase):
    def test_builtHere(self) -> None:
        """
        The tests run with the C module built from the current source (CI
        builds it; elsewhere this skips with the command that does).
        """
        self.assertIs(requireSpeedups(), speedups.module)
        self.assertEqual(startupLine(), "parsers: C speedups in use (logsvc._speedups)")

    def test_missing(self) -> None:
        """A module not built, or not loadable, is reported with the build command."""
        self.assertEqual(missingReason(None), f"logsvc._speedups is not built: run {BUILD_COMMAND}")
        self.assertEqual(
            missingReason(None, "bad ELF"),
            f"logsvc._speedups cannot be loaded (bad ELF): run {BUILD_COMMAND}",
        )

    def test_olderThanSource(self) -> None:
        """A module older than the source beside it is reported, so no test runs stale C."""
        module = builtModule(Path(self.mktemp()), sourceAge=-10)
        reason = missingReason(module)
        self.assertIsNotNone(reason)
        assert reason is not None
        self.assertIn("is older than", reason)
        self.assertTrue(reason.endswith(f": run {BUILD_COMMAND}"), reason)

    def test_current(self) -> None:
        """A module newer than its source, or without one beside it (installed), is fine."""
        module = builtModule(Path(self.mktemp()), sourceAge=10)
        self.assertIsNone(missingReason(module))
        os.remove(Path(str(module.__file__)).parent / SOURCE_NAME)
        self.assertIsNone(missingReason(module))
