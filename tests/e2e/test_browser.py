"""
The web UI in a real browser: headless Chromium loads C{/ui/} from a real
``twistd logsvc`` and renders the records the API returns.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.request

from twisted.trial.unittest import SkipTest, TestCase

from tests.e2e.server import TwistdServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def renderedDOM(url: str) -> str:
    """
    @return: the DOM of C{url} after its scripts ran, as serialized by Chromium.
    """
    profile = tempfile.mkdtemp(prefix="logsvc-chromium-")
    try:
        result = subprocess.run(
            [
                CHROMIUM or "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            timeout=90,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return result.stdout.decode("utf-8", "replace")


class BrowserUITests(TestCase):
    def setUp(self) -> None:
        if CHROMIUM is None:
            raise SkipTest("chromium is not installed (apt-get install chromium)")
        self.server = TwistdServer(self.mktemp())
        self.server.start()
        self.addCleanup(self.server.kill)
        records = [
            {"message": "<b>not bold</b> checkout failed", "level": "error", "service": "shop"},
            {"message": "checkout ok", "level": "info", "service": "shop"},
            {"message": "unrelated line", "level": "error", "service": "other"},
        ]
        request = urllib.request.Request(
            self.server.httpURL + "/logs",
            data=json.dumps(records).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            self.assertEqual(response.status, 201)

    def test_search_renders_matching_records_as_text(self) -> None:
        """
        Opening the UI with filters in the URL shows exactly the matching
        records, with log text inserted as text (no HTML injection).
        """
        dom = renderedDOM(self.server.httpURL + "/ui/?service=shop&level=error")
        self.assertIn('<tr class="level-error"', dom)
        self.assertIn("&lt;b&gt;not bold&lt;/b&gt; checkout failed", dom)
        self.assertNotIn("<b>not bold</b>", dom)
        self.assertNotIn("checkout ok", dom)
        self.assertNotIn("unrelated line", dom)
        self.assertIn("1 records shown", dom)

    def test_root_redirects_browsers_to_the_ui(self) -> None:
        """
        A browser opening C{/} lands on the UI, listing every record.
        """
        dom = renderedDOM(self.server.httpURL + "/")
        self.assertIn("3 records shown", dom)
