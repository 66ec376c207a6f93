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
from logsvc.speedups import parsersLine, staleness, startupLine
from tests.speedups import missingReason, requireSpeedups


def builtModule(directory: Path, *, sourceAge: float) -> Path:
    """
    @return: the path of a stand-in for the module's file in C{directory},
        beside a source C{sourceAge} seconds older than it (negative: newer).
    """
    directory.mkdir()
    built = directory / moduleFileName()
    source = directory / SOURCE_NAME
    built.write_bytes(b"")
    source.write_bytes(b"")
    now = built.stat().st_mtime
    os.utime(source, (now - sourceAge, now - sourceAge))
    return built


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

    def test_notUsed(self) -> None:
        """A module that is built but not used is named with the reason."""
        line = parsersLine(None, "undefined symbol: PyFoo")
        self.assertIn("logsvc._speedups is not used (undefined symbol: PyFoo)", line)

    def test_thisProcess(self) -> None:
        """startupLine describes the module this process uses."""
        self.assertEqual(startupLine(), parsersLine(speedups.module, speedups.notUsedBecause))


class StalenessTests(SynchronousTestCase):
    def test_olderThanSource(self) -> None:
        """A module file older than the source beside it is stale, naming the source."""
        built = builtModule(Path(self.mktemp()), sourceAge=-10)
        self.assertEqual(
            staleness(built), f"built before the last change to {built.with_name(SOURCE_NAME)}"
        )

    def test_current(self) -> None:
        """A module newer than its source, or without one beside it (installed), is used."""
        built = builtModule(Path(self.mktemp()), sourceAge=10)
        self.assertIsNone(staleness(built))
        os.remove(built.with_name(SOURCE_NAME))
        self.assertIsNone(staleness(built))


class RequireSpeedupsTests(SynchronousTestCase):
    def test_builtHere(self) -> None:
        """
        The tests run with the C module built from the current source (CI
        builds it; elsewhere this skips with the command that does).
        """
        self.assertIs(requireSpeedups(), speedups.module)
        self.assertEqual(startupLine(), "parsers: C speedups in use (logsvc._speedups)")

    def test_missing(self) -> None:
        """A module not built, or not used, is reported with the build command."""
        self.assertEqual(missingReason(None), f"logsvc._speedups is not built: run {BUILD_COMMAND}")
        self.assertEqual(
            missingReason(None, "bad ELF"),
            f"logsvc._speedups is not used (bad ELF): run {BUILD_COMMAND}",
        )
        self.assertIsNone(missingReason(ModuleType("logsvc._speedups")))
