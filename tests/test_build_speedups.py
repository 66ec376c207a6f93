"""
Tests for L{logsvc.build_speedups} and the wheel's build hook
(C{hatch_build.py}): with a C compiler the module is built, importable and in
a wheel tagged for this Python; without one the wheel is pure Python, after
one warning line, and nothing fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from twisted.trial.unittest import SkipTest, TestCase

from logsvc.build_speedups import BUILD_COMMAND, NEEDS, moduleFileName

ROOT = Path(__file__).resolve().parent.parent

#: Loads a module file by its path in a fresh interpreter and prints its name.
LOAD = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("logsvc._speedups", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(module.__name__)
"""

#: A compiler that fails on every file (C{CC} in the environment).
NO_COMPILER = "/bin/false"


def requireCompiler() -> None:
    """
    @raise SkipTest: naming the install command, when the running Python's
        C compiler or headers are missing.
    """
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if shutil.which(compiler) is None or not headers.is_file():
        raise SkipTest(f"no C compiler ({compiler}) or no {headers}: install {NEEDS}")


def run(command: list[str], cwd: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    """
    @return: C{command}'s result, run with this Python's environment plus
        C{environment}, its output captured as text.
    """
    env = dict(os.environ, **environment)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


class BuildCommandTests(TestCase):
    def test_buildsImportableModule(self) -> None:
        """The build command writes a module file for this Python that imports as logsvc._speedups."""
        requireCompiler()
        into = Path(self.mktemp()).resolve()
        into.mkdir()
        result = run([sys.executable, "-m", "logsvc.build_speedups", "--into", str(into)], ROOT)
        self.assertEqual(result.returncode, 0, result.stderr)
        built = into / moduleFileName()
        self.assertEqual(result.stdout, f"built {built}\n")
        loaded = run([sys.executable, "-c", LOAD, str(built)], ROOT)
        self.assertEqual(
            (loaded.returncode, loaded.stdout), (0, "logsvc._speedups\n"), loaded.stderr
        )

    def test_failureRemovesOldModule(self) -> None:
        """A failed build exits 1 with one warning line naming the build command, and leaves no older module."""
        into = Path(self.mktemp()).resolve()
        into.mkdir()
        (into / moduleFileName()).write_bytes(b"an older build")
        result = run(
            [sys.executable, "-m", "logsvc.build_speedups", "--into", str(into)],
            ROOT,
            CC=NO_COMPILER,
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(list(into.iterdir()), [])
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        self.assertEqual(len(warnings), 1, result.stderr)
        self.assertIn("pure-Python parsers", warnings[0])
        self.assertIn(BUILD_COMMAND, warnings[0])

    def test_unwritableDestination(self) -> None:
        """A module that cannot be written (a read-only tree, say) is a failed build, not a crash."""
        requireCompiler()
        into = Path(self.mktemp()).resolve() / "missing"
        result = run([sys.executable, "-m", "logsvc.build_speedups", "--into", str(into)], ROOT)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn(f"(cannot write {into / moduleFileName()}: No such file", result.stderr)
        self.assertNotIn("Traceback", result.stderr)


class WheelTests(TestCase):
    """
    Wheels built by hatchling, as C{pip install .} builds them, from a copy
    of the source tree.
    """

    def setUp(self) -> None:
        self.source = Path(self.mktemp()).resolve()
        ignored = shutil.ignore_patterns("__pycache__", "_speedups.*.so", "dropin.cache")
        for tree in ("logsvc", "twisted"):
            shutil.copytree(ROOT / tree, self.source / tree, ignore=ignored)
        for name in ("pyproject.toml", "hatch_build.py", "README.rst", ".gitignore"):
            shutil.copy(ROOT / name, self.source / name)

    def buildWheel(self, **environment: str) -> tuple[zipfile.ZipFile, str]:
        """
        @return: the wheel built from the copy, opened, and what the build
            printed.
        """
        out = self.source / "dist"
        result = run(
            [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
            self.source,
            **environment,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        [wheel] = out.glob("*.whl")
        archive = zipfile.ZipFile(wheel)
        self.addCleanup(archive.close)
        return archive, result.stdout + result.stderr

    def test_withCompiler(self) -> None:
        """
        The wheel holds the module, is tagged for this Python and platform,
        and the module is left in the source tree's logsvc/ too.
        """
        requireCompiler()
        archive, _ = self.buildWheel()
        name = f"logsvc/{moduleFileName()}"
        self.assertIn(name, archive.namelist())
        self.assertNotIn("logsvc/_speedups.c", archive.namelist())
        tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
        self.assertRegex(Path(str(archive.filename)).name, rf"-{tag}-{tag}-[a-z].*\.whl$")
        self.assertEqual(
            (self.source / name).read_bytes(), archive.read(name), "the in-place build"
        )

    def test_withoutCompiler(self) -> None:
        """Without a compiler the build succeeds with one warning and the wheel is pure Python."""
        archive, output = self.buildWheel(CC=NO_COMPILER)
        self.assertTrue(str(archive.filename).endswith("-py3-none-any.whl"), archive.filename)
        self.assertEqual([n for n in archive.namelist() if n.startswith("logsvc/_speedups")], [])
        self.assertEqual(output.count("pure-Python parsers"), 1, output)
