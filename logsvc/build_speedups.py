# -*- test-case-name: tests.test_build_speedups -*-
"""
Build logsvc's optional C module, C{logsvc._speedups}, from
C{logsvc/_speedups.c} with the compiler and flags of the running Python
(setuptools' C{build_ext}; C{CC}, C{CFLAGS} and C{LDSHARED} in the
environment override them as usual).

In a checkout, one command builds it in place, beside its source, where
C{python -m twisted.trial tests} and C{twistd logsvc} run from the checkout
import it::

    python -m logsvc.build_speedups

The wheel's build hook (C{hatch_build.py}) calls the same L{build}, so
C{pip install .} leaves the same file in the checkout's C{logsvc/} as well as
putting it in the wheel.  A failed build is never fatal to an install:
logsvc then runs its pure-Python parsers (see L{logsvc.speedups}).

This module imports nothing of logsvc: the build hook loads it by its path,
in a build environment without logsvc's dependencies.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

#: The command that builds the module in place in a checkout.
BUILD_COMMAND = "python -m logsvc.build_speedups"

#: What a machine needs to build the module.
NEEDS = "a C compiler and the Python headers (e.g. apt-get install gcc python3-dev)"

#: The module's source, in the package directory.
SOURCE_NAME = "_speedups.c"


class BuildFailed(Exception):
    """
    The module could not be built; C{str(error)} is the cause (the
    compiler's own output went to standard error).
    """


def moduleFileName() -> str:
    """
    @return: the name of the module's file for the running Python, e.g.
        C{_speedups.cpython-311-x86_64-linux-gnu.so}.
    """
    return "_speedups" + sysconfig.get_config_var("EXT_SUFFIX")


def build(package: Path, *, into: Path | None = None) -> Path:
    """
    Compile C{package/_speedups.c} into a module file for the running
    Python.

    The file is written under a temporary name and renamed into place, so
    a process that has the previous one loaded keeps running.  Any previous
    file is removed first: after a failed build none is left, so the code
    never runs an older build of a source that no longer compiles.

    @param package: the directory holding C{_speedups.c} (a checkout's
        C{logsvc/}).
    @param into: the directory the module file is written to; C{package}
        by default (the in-place build).
    @return: the module file's path, C{into/}L{moduleFileName}C{()}.
    @raise BuildFailed: no source, no setuptools, no compiler, no headers,
        the compiler or linker failed, or C{into} cannot be written.
    """
    into = package if into is None else into
    target = into / moduleFileName()
    try:
        target.unlink(missing_ok=True)
    except OSError as e:
        raise BuildFailed(f"cannot remove the previous {target}: {e.strerror or e}")
    source = package / SOURCE_NAME
    if not source.is_file():
        raise BuildFailed(
            f"{source} does not exist (the module is built from a checkout of logsvc)"
        )
    try:
        from setuptools import Distribution, Extension
        from setuptools.command.build_ext import build_ext
        from setuptools.errors import BaseError, CCompilerError
    except ImportError:
        raise BuildFailed("setuptools is not installed (pip install setuptools)")
    extension = Extension("logsvc._speedups", [str(source)])
    with tempfile.TemporaryDirectory(prefix="logsvc-speedups-") as scratch:
        command = build_ext(Distribution({"name": "logsvc", "ext_modules": [extension]}))
        command.build_lib = os.path.join(scratch, "lib")
        command.build_temp = os.path.join(scratch, "temp")
        command.ensure_finalized()
        try:
            command.run()
        except CCompilerError as e:
            raise BuildFailed(_compilerFailure(command, e))
        except BaseError as e:
            raise BuildFailed(str(e) or type(e).__name__)
        built = Path(command.get_ext_fullpath(extension.name))
        partial = into / (target.name + ".partial")
        try:
            partial.write_bytes(built.read_bytes())
            partial.chmod(0o755)
            os.replace(partial, target)
        except OSError as e:
            # A read-only source tree, say.
            raise BuildFailed(f"cannot write {target}: {e.strerror or e}")
    return target


def _compilerFailure(command: Any, error: Exception) -> str:
    """
    @return: the cause of a failed compile or link in a few words (the
        error's text repeats the whole command line).
    """
    compiler = getattr(command.compiler, "compiler_so", None) or ["the C compiler"]
    if shutil.which(compiler[0]) is None:
        return f"no C compiler: {compiler[0]} not found"
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.is_file():
        return f"no Python headers: {headers} not found"
    stage = "linking" if type(error).__name__ == "LinkError" else "compiling"
    return f"{stage} {SOURCE_NAME} with {compiler[0]} failed; its errors are printed above"


def failureLine(cause: str) -> str:
    """
    @return: the one line that says a build failed, what that means and how
        to build the module.
    """
    return (
        f"warning: logsvc's optional C module logsvc._speedups was not built ({cause}):"
        f" logsvc will use its pure-Python parsers; for the fast ones install {NEEDS}"
        f" and reinstall logsvc (or run {BUILD_COMMAND} in a checkout)"
    )


def main(argv: list[str] | None = None) -> int:
    """
    Build the module in place (or C{--into DIR}); print its path, or
    L{failureLine} and exit 1.
    """
    parser = argparse.ArgumentParser(
        prog=BUILD_COMMAND, description="Build logsvc's optional C module, logsvc._speedups."
    )
    parser.add_argument(
        "--into", type=Path, default=None, help="write the module file to DIR (default: in place)"
    )
    arguments = parser.parse_args(argv)
    try:
        target = build(Path(__file__).resolve().parent, into=arguments.into)
    except BuildFailed as e:
        print(failureLine(str(e)), file=sys.stderr)
        return 1
    print(f"built {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
