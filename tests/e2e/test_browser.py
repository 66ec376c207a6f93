"""
The web UI in a real browser: headless Chromium loads C{/ui/} from a real
``twistd logsvc`` and renders the records the API returns.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.request

from twisted.trial.unittest import SkipTest, TestCase

from tests.e2e.server import ROOT, TwistdServer

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


NODE = shutil.which("node")

_TAIL_SCRIPT = """
%(readEvents)s
const controller = new AbortController();
const response = await fetch(%(url)s, {headers: {Accept: "text/event-stream"}, signal: controller.signal});
const seen = [];
setTimeout(() => controller.abort(), 20000);
try {
  await readEvents(response, (event) => {
    if (!event.data.length) return;
    seen.push([event.id, JSON.parse(event.data.join("\\n")).message]);
    if (seen.length === %(expected)d) controller.abort();
  }, controller.signal);
} catch (e) {}
console.log(JSON.stringify(seen));
process.exit(0);
"""


class UITailReaderTests(TestCase):
    def test_ui_event_reader_replays_then_follows(self) -> None:
        """
        The UI's own Server-Sent Events reader (from app.js, run in node),
        resuming with since_id, gets the committed records after that id and
        then live ones, each once, in id order.
        """
        if NODE is None:
            raise SkipTest("node is not installed")
        server = TwistdServer(self.mktemp())
        server.start()
        self.addCleanup(server.kill)
        with socket.create_connection(("127.0.0.1", server.tcpPort), timeout=10) as s:
            s.sendall(b"".join(b'{"service": "t", "msg": "old %d"}\n' % i for i in range(3)))
            s.shutdown(socket.SHUT_WR)
            s.recv(1)
        source = open(os.path.join(ROOT, "logsvc", "web", "static", "app.js")).read()
        readEvents = source[source.index("async function readEvents") : source.index("function startTail")]
        script = os.path.join(self.mktemp() + ".mjs")
        with open(script, "w") as f:
            f.write(
                _TAIL_SCRIPT
                % {
                    "readEvents": readEvents,
                    "url": json.dumps(server.httpURL + "/logs/tail?service=t&since_id=1"),
                    "expected": 4,
                }
            )
        reader = subprocess.Popen([NODE, script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(reader.kill)
        # Live records: sent until the reader has them all, in bounded rounds.
        for attempt in range(40):
            with socket.create_connection(("127.0.0.1", server.tcpPort), timeout=10) as s:
                s.sendall(b'{"service": "t", "msg": "live %d"}\n' % attempt)
            try:
                out, _ = reader.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            reader.kill()
            self.fail(f"the UI reader did not get the records: {reader.communicate()}")
        seen = json.loads(out)
        self.assertEqual([m for _, m in seen[:3]], ["old 1", "old 2", "live 0"])
        ids = [int(i) for i, _ in seen]
        self.assertEqual(ids, sorted(set(ids)))
        self.assertEqual(ids[0], 2)
