"""
The wheel's build hook (hatchling's custom hook): compile logsvc's optional
C module, C{logsvc._speedups}, and ship it in the wheel.

The module is built in place, in the source tree's C{logsvc/} (by
L{logsvc.build_speedups}, the code behind C{python -m
logsvc.build_speedups}), and that file goes into the wheel: C{pip install .}
from a checkout thus also leaves the module where C{python -m twisted.trial
tests} run from the checkout imports it.  When it cannot be built (no
compiler, no Python headers) the hook prints one warning line and the wheel
is pure Python; the install never fails for it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def loadBuilder(root: Path) -> ModuleType:
    """
    @return: C{logsvc/build_speedups.py} of the tree at C{root}, loaded by
        its path: importing C{logsvc} would need its dependencies, which the
        build environment does not have.
    """
    spec = importlib.util.spec_from_file_location(
        "logsvc_build_speedups", root / "logsvc" / "build_speedups.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """
    Build C{logsvc._speedups} in place and include it in the wheel, which
    is then tagged for this Python and platform; on failure warn and leave
    the wheel pure Python.
    """

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        builder = loadBuilder(Path(self.root))
        try:
            built = builder.build(Path(self.root) / "logsvc")
        except builder.BuildFailed as e:
            self.app.display_warning(builder.failureLine(str(e)))
            return
        except Exception as e:
            # Whatever else goes wrong (a setuptools that changed, say), the
            # pure-Python wheel works: the install must not fail for it.
            self.app.display_warning(builder.failureLine(f"{type(e).__name__}: {e}"))
            return
        self.app.display_info(f"built {built}")
        # An editable install imports the package from the source tree,
        # where the module now is; a standard wheel carries a copy.
        if version != "editable":
            build_data["force_include"][str(built)] = f"logsvc/{built.name}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
