"""
The modules of L{logsvc} import each other without a circle: each module
can be read, and loaded, knowing only what is below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

PACKAGE = Path(__file__).resolve().parent.parent / "logsvc"


def importGraph() -> dict[str, set[str]]:
    """
    @return: each module of logsvc (dotted name) and the logsvc modules it
        imports anywhere in its text (at the top or inside a function).
    """
    modules: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    found.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {other for other in found if other in modules and other != name}
    return graph


def findCycle(graph: dict[str, set[str]]) -> list[str] | None:
    """
    @return: one import circle (its modules, the first repeated at the
        end), or L{None}.
    """
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path = [start]
        nexts = [iter(sorted(graph[start]))]
        while nexts:
            following = next(nexts[-1], None)
            if following is None:
                done.add(path.pop())
                nexts.pop()
            elif following in path:
                return path[path.index(following) :] + [following]
            elif following not in done:
                path.append(following)
                nexts.append(iter(sorted(graph[following])))
    return None


class ImportCircleTests(SynchronousTestCase):
    def test_noCircle(self) -> None:
        """No logsvc module imports, directly or through others, one that imports it."""
        self.assertIsNone(findCycle(importGraph()))

    def test_findsCircle(self) -> None:
        """The check finds a circle where there is one."""
        self.assertEqual(findCycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}), ["a", "b", "c", "a"])
        self.assertIsNone(findCycle({"a": {"b"}, "b": set(), "c": {"b"}}))
