"""
Tests for L{logsvc.web.ui}: the UI's static files as served, and the rules
they keep (no build step, nothing from outside, log text only as text).
"""

from __future__ import annotations

import os
import re

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from logsvc.web.ui import STATIC_DIR, UIResource

#: ES module imports: `import ... from "./name.js"`.
_IMPORT = re.compile(r'^import\s[^;]*?from\s+"([^"]+)";', re.MULTILINE | re.DOTALL)


def staticFiles() -> dict[str, str]:
    files = {}
    for name in sorted(os.listdir(STATIC_DIR)):
        with open(os.path.join(STATIC_DIR, name), encoding="utf-8") as f:
            files[name] = f.read()
    return files


class UIResourceTests(SynchronousTestCase):
    def setUp(self) -> None:
        root = Resource()
        root.putChild(b"ui", UIResource())
        self.treq = StubTreq(root)

    def get(self, path: str) -> tuple[int, bytes, bytes]:
        response = self.successResultOf(self.treq.get("http://x" + path))
        body = self.successResultOf(response.content())
        kind = response.headers.getRawHeaders(b"content-type", [b""])[0]
        return response.code, kind, body

    def test_every_module_the_page_loads_is_served(self) -> None:
        """
        C{index.html} loads C{app.js} as a module, and every module imported
        from there is served as JavaScript: the page needs no build step.
        """
        code, kind, page = self.get("/ui/")
        self.assertEqual((code, kind), (200, b"text/html; charset=utf-8"))
        self.assertIn(b'<script type="module" src="app.js"></script>', page)
        pending, seen = ["app.js"], set()
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            code, kind, body = self.get("/ui/" + name)
            self.assertEqual((code, kind), (200, b"text/javascript; charset=utf-8"), name)
            for target in _IMPORT.findall(body.decode()):
                self.assertTrue(target.startswith("./"), target)
                pending.append(target[2:])
        self.assertEqual(
            seen, {name for name in os.listdir(STATIC_DIR) if name.endswith(".js")}
        )

    def test_unknown_file_is_a_json_404(self) -> None:
        """
        A name the directory does not hold is a JSON 404.
        """
        code, kind, body = self.get("/ui/nothing.js")
        self.assertEqual(code, 404)
        self.assertIn(b"no such file", body)


class StaticRulesTests(SynchronousTestCase):
    def test_nothing_is_fetched_from_outside(self) -> None:
        """
        No static file names another origin (no CDN, no web font): the UI
        works with nothing but the server.  (The SVG namespace is a name,
        never fetched.)
        """
        for name, text in staticFiles().items():
            text = text.replace('"http://www.w3.org/2000/svg"', "")
            self.assertIsNone(re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), name)

    def test_log_text_goes_in_as_text(self) -> None:
        """
        No script parses HTML (innerHTML, outerHTML, insertAdjacentHTML,
        document.write): records can only ever be inserted as text.
        """
        for name, text in staticFiles().items():
            if name.endswith(".js"):
                self.assertIsNone(
                    re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", text), name
                )
