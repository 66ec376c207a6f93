"""
The web UI in headless Chromium against a real ``twistd logsvc``: the time
picker, the histogram (hover, drag-zoom, zoom out), opening a record, filter
for/out, facets, the live tail, shared links and link errors.

One server with one seeded data set and one browser serve the view tests
(started on first use, stopped when the test process ends), so the suite
pays for Chromium once; every test opens its page afresh.  Screenshots go to
L{tests.e2e.browser.screenshotDirectory}.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from twisted.trial.unittest import SkipTest, TestCase

from tests.e2e.browser import BROWSER_ZONE, Browser
from tests.e2e.server import ROOT, TwistdServer, startWithTokens

MULTI_LINE = (
    "Traceback (most recent call last):\n"
    '  File "app.py", line 10, in handle\n'
    "    pay()\n"
    '  File "pay.py", line 3, in pay\n'
    "    raise TimeoutError\n"
    "TimeoutError: payments did not answer in 5 s"
)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seedRecords(now: datetime) -> list[dict[str, Any]]:
    """
    The view tests' records: 20 in the last 5 minutes, 200 between 40
    minutes and 23 hours ago, two special ones (HTML-like text, a multi-line
    message) 4-5 minutes ago, and one 3 days ago (outside the default window).
    No record is within 10 minutes of a boundary the tests use (15 minutes,
    24 hours), so a slow run counts the same.
    """
    services = ["api", "web", "worker", "db"]
    levels = ["info", "info", "debug", "warning", "info", "error", "info", "critical"]
    records: list[dict[str, Any]] = []
    for i in range(20):
        records.append(
            {
                "ts": rfc3339(now - timedelta(seconds=60 + 12 * i)),
                "level": ["info", "warning", "error", "debug"][i % 4],
                "service": services[i % 2],
                "host": f"{services[i % 2]}-{i % 3 + 1}",
                "message": f"GET /api/v1/orders/{i} took {10 * i} ms",
                "user": str(40 + i % 3),
                "ms": 10 * i,
                "status": [200, 200, 404, 500][i % 4],
            }
        )
    span = timedelta(hours=23) - timedelta(minutes=40)
    for i in range(200):
        service = services[i % 4]
        records.append(
            {
                "ts": rfc3339(now - timedelta(minutes=40) - span * (i / 200)),
                "level": levels[i % len(levels)],
                "service": service,
                "host": f"{service}-{i % 3 + 1}",
                "message": f"batch {i} done in {i * 7 % 900} ms",
                "user": ["alice", "bob", "42"][i % 3],
                "ms": i * 7 % 900,
            }
        )
    records.append(
        {
            "ts": rfc3339(now - timedelta(minutes=5)),
            "level": "error",
            "service": "shop",
            "message": "<b>not bold</b> checkout failed",
        }
    )
    records.append(
        {
            "ts": rfc3339(now - timedelta(minutes=4)),
            "level": "error",
            "service": "api",
            "host": "api-1",
            "message": MULTI_LINE,
            "trace_id": "abc123",
        }
    )
    records.append({"ts": rfc3339(now - timedelta(days=3)), "level": "info", "service": "old", "message": "three days ago"})
    return records


def post(server: TwistdServer, records: list[dict[str, Any]], token: str | None = None) -> None:
    """
    C{POST /logs} the records (with C{token} as the bearer token), asserting a 201.
    """
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = "Bearer " + token
    request = urllib.request.Request(server.httpURL + "/logs", data=json.dumps(records).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201, response.status


def getJSON(server: TwistdServer, path: str, **params: str) -> Any:
    with urllib.request.urlopen(f"{server.httpURL}{path}?{urlencode(params)}", timeout=10) as response:
        return json.loads(response.read())


class SeededUI:
    """
    A server holding L{seedRecords} and a browser, shared by the view tests.
    """

    def __init__(self) -> None:
        self.browser = Browser.start()
        try:
            self.server = TwistdServer(os.path.abspath("ui-server"))
            self.server.start()
        except BaseException:
            self.browser.quit()
            raise
        self.now = datetime.now(timezone.utc)
        self.records = seedRecords(self.now)
        post(self.server, self.records)

    def close(self) -> None:
        self.browser.quit()
        self.server.kill()


_shared: SeededUI | None = None


def sharedUI() -> SeededUI:
    """
    @return: the one L{SeededUI} of this process, started on first use.
    """
    global _shared
    if _shared is None:
        _shared = SeededUI()
        atexit.register(_shared.close)
    return _shared


class BrowserViewTests(TestCase):
    def setUp(self) -> None:
        ui = sharedUI()
        self.server = ui.server
        self.browser = ui.browser
        self.records = ui.records
        self.now = ui.now
        # The page is left blank between tests (no timers, no tail), and the
        # preferences (the zone), the browser's, reset for the next test.
        self.addCleanup(self.browser.open, "about:blank")
        self.addCleanup(lambda: self.browser.js("localStorage.removeItem('logsvc-zone')"))
        self.addCleanup(lambda: self.browser.colorScheme("light"))
        self.addCleanup(self.assertNoConsoleErrors)

    def assertNoConsoleErrors(self) -> None:
        self.assertEqual(self.browser.consoleErrors(), [])

    def load(self, query: str = "") -> None:
        """
        Open C{/ui/?query} and wait until its view is drawn.
        """
        self.browser.open(self.server.httpURL + "/ui/" + ("?" + query if query else ""))
        self.browser.waitReady()

    def act(self, action: Any) -> None:
        """
        Do C{action} (a click, a key) and wait for the search it starts.
        """
        before = self.browser.generation()
        action()
        self.browser.waitReady(before)

    def total(self) -> int:
        return int(self.browser.find("#total").get_attribute("data-total"))

    def rowTexts(self, column: str) -> list[str]:
        return [str(t) for t in self.browser.js(
            "return [...document.querySelectorAll('#rows td.' + arguments[0])].map(e => e.textContent)", column
        )]

    def countBetween(self, since: datetime, until: datetime) -> int:
        return sum(1 for r in self.records if since <= datetime.fromisoformat(r["ts"]) < until)

    def test_default_view_is_the_last_24_hours(self) -> None:
        """
        A bare C{/ui/} shows the last 24 hours (kept as C{since=now-24h} in
        the URL): the total of matches, a histogram with both axes and bars
        stacked by level, facets with the server's counts, and older records
        on request.
        """
        self.load()
        self.assertEqual(self.browser.params()["since"], ["now-24h"])
        self.assertEqual(self.total(), len(self.records) - 1)
        self.assertIn(f"{len(self.records) - 1} matches", self.browser.text("#total"))
        self.assertEqual(self.browser.text("#range"), "Last 24 hours")
        for level in ("error", "info", "critical"):
            self.assertTrue(self.browser.findAll(f".chart .bucket rect.level-{level}"), level)
        self.assertGreaterEqual(len(self.browser.findAll(".chart text.time")), 4)
        self.assertGreaterEqual(len(self.browser.findAll(".chart text.count")), 2)
        self.assertEqual(len(self.browser.findAll("#rows tr")), 100)
        byLevel = getJSON(self.server, "/stats", by="level", since=rfc3339(self.now - timedelta(hours=24)))
        shown = {
            li.get_attribute("data-value"): int(li.find_element("css selector", ".count").text)
            for li in self.browser.findAll('#facets section[data-facet="level"] li')
        }
        self.assertEqual(shown, {v["value"]: v["count"] for v in byLevel["values"]})
        for facet in ("service", "source", "user"):
            self.assertTrue(self.browser.findAll(f'#facets section[data-facet="{facet}"] li'), facet)
        self.browser.screenshot("overview-light")
        self.browser.colorScheme("dark")
        self.browser.screenshot("overview-dark")
        self.browser.find("#more").click()
        self.browser.waitUntil(lambda: len(self.browser.findAll("#rows tr")) == 200, "the older page")
        ids = [int(tr.get_attribute("data-id")) for tr in self.browser.findAll("#rows tr")]
        self.assertEqual(len(set(ids)), 200)

    def test_time_picker_presets_and_absolute_ranges(self) -> None:
        """
        A preset sets a relative range, kept relative in the URL; an absolute
        range typed in the shown zone is stored as UTC and counts exactly
        the records in it.
        """
        self.load()
        self.browser.find("#range").click()
        self.assertTrue(self.browser.find("#range-panel").is_displayed())
        self.browser.screenshot("time-picker")
        self.act(lambda: self.browser.find('#presets button[data-since="now-15m"]').click())
        self.assertEqual(self.browser.params()["since"], ["now-15m"])
        self.assertNotIn("until", self.browser.params())
        self.assertEqual(self.browser.text("#range"), "Last 15 minutes")
        self.assertEqual(self.total(), 22)
        # The picker says which instants the relative range stood for.
        shown = self.browser.find("#range").get_attribute("title")
        since, until = (
            datetime.strptime(part.strip(), "%Y-%m-%d %H:%M:%S")
            for part in shown.removesuffix(BROWSER_ZONE).split("→")
        )
        self.assertEqual(until - since, timedelta(minutes=15))

        zone = ZoneInfo(BROWSER_ZONE)
        since = (self.now - timedelta(hours=3)).replace(second=0, microsecond=0)
        until = since + timedelta(hours=1)
        self.browser.find("#range").click()
        for field, moment in (("#range-since", since), ("#range-until", until)):
            box = self.browser.find(field)
            box.clear()
            box.send_keys(moment.astimezone(zone).strftime("%Y-%m-%d %H:%M"))
        self.act(lambda: self.browser.find("#range-apply").click())
        params = self.browser.params()
        self.assertEqual(params["since"], [since.strftime("%Y-%m-%dT%H:%M:00.000Z")])
        self.assertEqual(params["until"], [until.strftime("%Y-%m-%dT%H:%M:00.000Z")])
        self.assertEqual(self.total(), self.countBetween(since, until))

    def test_histogram_hover_drag_zoom_and_zoom_out(self) -> None:
        """
        Hovering a bar shows its counts; dragging across the histogram shows
        that range (absolute in the URL) with its exact total; Zoom out
        doubles the window and Back returns to the zoomed one; a click on a
        bar zooms into its bucket.
        """
        from selenium.webdriver import ActionChains

        self.load()
        overlay = self.browser.find(".chart .overlay")
        width = overlay.size["width"]
        ActionChains(self.browser.driver).move_to_element_with_offset(overlay, width // 2 - 3, 0).perform()
        tip = self.browser.find("#histogram .tip")
        self.browser.waitUntil(tip.is_displayed, "the hover")
        self.assertRegex(tip.text, r"\d+ match")
        self.browser.screenshot("histogram-hover")

        def drag() -> None:
            ActionChains(self.browser.driver).move_to_element_with_offset(
                overlay, -width // 10, 0
            ).click_and_hold().move_by_offset(width // 5, 0).release().perform()

        self.act(drag)
        params = self.browser.params()
        since = datetime.fromisoformat(params["since"][0])
        until = datetime.fromisoformat(params["until"][0])
        self.assertLess(abs((until - since) / timedelta(hours=24) - 0.2), 0.01)
        self.assertEqual(self.total(), self.countBetween(since, until))
        zoomed = self.browser.driver.current_url

        self.act(lambda: self.browser.find("#zoom-out").click())
        params = self.browser.params()
        wider = datetime.fromisoformat(params["until"][0]) - datetime.fromisoformat(params["since"][0])
        self.assertLess(abs(wider / (until - since) - 2), 0.01)

        self.act(self.browser.driver.back)
        self.assertEqual(self.browser.driver.current_url, zoomed)
        self.assertEqual(self.total(), self.countBetween(since, until))

        # A click on a bar zooms into its bucket.
        self.load()
        overlay = self.browser.find(".chart .overlay")
        self.act(lambda: ActionChains(self.browser.driver).move_to_element(overlay).click().perform())
        params = self.browser.params()
        bucket = datetime.fromisoformat(params["until"][0]) - datetime.fromisoformat(params["since"][0])
        self.assertEqual(bucket, timedelta(minutes=15))

    def test_open_record_highlight_fold_copy_and_close(self) -> None:
        """
        The query's words are highlighted; a long multi-line message is
        folded with a toggle; clicking a row opens every field of the record,
        and the open record is in the URL; a value can be copied; Esc closes
        the record and Back reopens it.
        """
        from selenium.webdriver.common.keys import Keys

        self.load("q=payments")
        rows = self.browser.findAll("#rows tr")
        self.assertEqual(len(rows), 1)
        toggle = rows[0].find_element("css selector", "button.fold")
        self.assertEqual(toggle.text, "show all (6 lines)")
        self.assertNotIn("TimeoutError", rows[0].text)
        toggle.click()
        self.assertIn("TimeoutError: payments did not answer", rows[0].text)
        self.assertEqual([m.text for m in rows[0].find_elements("css selector", "mark")], ["payments"])
        self.assertTrue(self.browser.find("#detail").get_attribute("hidden"))

        rows[0].find_element("css selector", "td.service").click()
        detail = self.browser.find("#detail")
        self.browser.waitUntil(detail.is_displayed, "the record panel")
        values = {
            row.get_attribute("data-field"): row.find_element("css selector", "pre").text
            for row in detail.find_elements("css selector", "tr[data-field]")
        }
        self.assertEqual(values["message"], MULTI_LINE)
        self.assertEqual(
            [m.text for m in detail.find_elements("css selector", 'tr[data-field="message"] mark')],
            ["payments"],
        )
        self.assertEqual(values["fields.trace_id"], "abc123")
        self.assertEqual(values["service"], "api")
        self.assertEqual(values["source"], "api-1")
        recordId = int(values["id"])
        self.assertEqual(self.browser.params()["open"][0].split("@")[0], str(recordId))
        self.browser.screenshot("record")
        copy = self.browser.find('#detail tr[data-field="fields.trace_id"] button.copy')
        copy.click()
        self.browser.waitUntil(lambda: copy.text == "copied", "the copy to be confirmed")
        self.browser.find("body").send_keys(Keys.ESCAPE)
        self.browser.waitUntil(lambda: not self.browser.find("#detail").is_displayed(), "Esc to close")
        self.assertNotIn("open", self.browser.params())
        # Back reopens it, from the list shown: no new search.
        searches = self.browser.generation()
        self.browser.driver.back()
        self.browser.waitUntil(self.browser.find("#detail").is_displayed, "Back to reopen the record")
        self.assertEqual(self.browser.text("#detail h2"), f"Record {recordId}")
        self.assertEqual(self.browser.generation(), searches)

    def test_log_text_is_inserted_as_text(self) -> None:
        """
        Text that looks like HTML is shown as typed, never parsed as markup.
        """
        self.load("q=bold")
        cell = self.browser.find("#rows td.msg")
        self.assertIn("<b>not bold</b> checkout failed", cell.text)
        self.assertEqual(self.browser.findAll("#rows td.msg b"), [])
        self.assertIn("&lt;b&gt;", cell.get_attribute("innerHTML"))

    def test_shared_link_reopens_the_same_view(self) -> None:
        """
        The URL of a view (query, relative range, open record) opened as a
        fresh page shows the same view.
        """
        self.load("q=checkout")
        self.browser.find("#range").click()
        self.act(lambda: self.browser.find('#presets button[data-since="now-1h"]').click())
        self.browser.find("#rows tr td.msg").click()
        self.browser.waitUntil(self.browser.find("#detail").is_displayed, "the record panel")
        heading = self.browser.text("#detail h2")
        link = self.browser.driver.current_url
        self.browser.open("about:blank")
        self.browser.open(link)
        self.browser.waitReady()
        self.browser.waitUntil(self.browser.find("#detail").is_displayed, "the record panel")
        self.assertEqual(self.browser.text("#detail h2"), heading)
        self.assertEqual(self.browser.find("#q").get_attribute("value"), "checkout")
        self.assertEqual(self.browser.text("#range"), "Last 1 hour")
        self.assertEqual(self.browser.params()["since"], ["now-1h"])

    def test_record_from_a_link_outside_the_page(self) -> None:
        """
        A link naming a record that is not among the newest shown still
        opens it (it is looked up at the time the link carries).
        """
        old = next(r for r in self.records if r["message"] == "batch 199 done in 493 ms")
        rows = getJSON(self.server, "/logs", q='"batch 199"', since=rfc3339(self.now - timedelta(hours=24)))["logs"]
        self.assertEqual(len(rows), 1)
        self.load("open=" + quote(f"{rows[0]['id']}@{rows[0]['ts']}"))
        self.browser.waitUntil(self.browser.find("#detail").is_displayed, "the record panel")
        self.assertIn(old["message"], self.browser.text("#detail"))

    def test_invalid_link_parameters_are_shown(self) -> None:
        """
        A link with a time the UI cannot read shows the error and no records
        (the URL is left as it was); one the server refuses shows the
        server's error.
        """
        self.load("q=x&since=yesterday")
        self.assertIn("since: cannot read", self.browser.text("#error"))
        self.assertTrue(self.browser.find("#error").is_displayed())
        self.assertEqual(self.browser.findAll("#rows tr"), [])
        self.assertEqual(self.browser.params()["since"], ["yesterday"])
        self.browser.screenshot("invalid-link")
        self.load("level=bogus")
        self.assertIn("level: unknown level 'bogus'", self.browser.text("#error"))
        self.assertEqual(self.browser.findAll("#rows tr"), [])
        self.load("tail=maybe&open=x")
        self.assertIn("open: not a record id", self.browser.text("#error"))
        self.assertIn("tail: must be 1 or 0", self.browser.text("#error"))

    def test_times_in_the_browser_zone_with_a_utc_switch(self) -> None:
        """
        Times are shown in the browser's zone, named in the header; the zone
        button switches to UTC.
        """
        self.load("q=bold")
        record = next(r for r in self.records if r["service"] == "shop")
        moment = datetime.fromisoformat(record["ts"])
        self.assertEqual(self.browser.text("#ts-head"), f"time ({BROWSER_ZONE})")
        local = moment.astimezone(ZoneInfo(BROWSER_ZONE))
        self.assertEqual(self.rowTexts("ts"), [local.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]])
        self.act(lambda: self.browser.find("#zone").click())
        self.assertEqual(self.browser.text("#ts-head"), "time (UTC)")
        self.assertEqual(self.rowTexts("ts"), [moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]])
        self.assertEqual(self.browser.text("#zone"), "UTC")

    def test_filter_for_and_out_edit_the_query(self) -> None:
        """
        "filter for" and "filter out" on a record's value add C{name:value}
        and C{-name:value} to the query text (the opposite term goes) and
        search for it.
        """
        self.load("q=orders")
        self.browser.find("#rows tr td.msg").click()
        self.browser.waitUntil(self.browser.find("#detail").is_displayed, "the record panel")
        service = self.browser.find('#detail tr[data-field="service"] pre').text
        self.act(lambda: self.browser.find('#detail tr[data-field="service"] .filter-for').click())
        self.assertEqual(self.browser.find("#q").get_attribute("value"), f"orders service:{service}")
        self.assertEqual(set(self.rowTexts("service")), {service})
        self.assertNotIn("open", self.browser.params())
        self.browser.find("#rows tr td.msg").click()
        self.browser.waitUntil(self.browser.find("#detail").is_displayed, "the record panel")
        self.act(lambda: self.browser.find('#detail tr[data-field="service"] .filter-out').click())
        self.assertEqual(self.browser.find("#q").get_attribute("value"), f"orders -service:{service}")
        self.assertEqual(self.browser.params()["q"], [f"orders -service:{service}"])
        services = set(self.rowTexts("service"))
        self.assertTrue(services)
        self.assertNotIn(service, services)
        # Any value filters, the record's id too.
        first = self.browser.find("#rows tr")
        recordId = first.get_attribute("data-id")
        first.find_element("css selector", "td.msg").click()
        self.browser.waitUntil(self.browser.find("#detail").is_displayed, "the record panel")
        self.act(lambda: self.browser.find('#detail tr[data-field="id"] .filter-out').click())
        self.assertEqual(self.browser.find("#q").get_attribute("value"), f"orders -service:{service} -id:{recordId}")
        self.assertNotIn(recordId, [tr.get_attribute("data-id") for tr in self.browser.findAll("#rows tr")])


    def test_facets_filter_for_and_out(self) -> None:
        """
        Clicking a facet's value filters for it, its "−" filters it out, and
        the facets follow the query.
        """
        self.load()
        self.act(lambda: self.browser.find('#facets section[data-facet="level"] li[data-value="error"] .value').click())
        self.assertEqual(self.browser.find("#q").get_attribute("value"), "level:error")
        self.assertEqual(set(self.rowTexts("level")), {"error"})
        self.assertEqual(
            [li.get_attribute("data-value") for li in self.browser.findAll('#facets section[data-facet="level"] li')],
            ["error"],
        )
        facet = '#facets section[data-facet="service"] li[data-value="api"]'
        self.act(lambda: self.browser.find(facet + " .filter-out").click())
        self.assertEqual(self.browser.find("#q").get_attribute("value"), "level:error -service:api")
        self.assertEqual(set(self.rowTexts("level")), {"error"})
        self.assertNotIn("api", set(self.rowTexts("service")))
        self.assertEqual(
            self.total(),
            sum(
                1
                for r in self.records
                if r["level"] == "error" and r["service"] != "api" and r["service"] != "old"
            ),
        )
        self.browser.screenshot("facets")

    def test_field_facets_follow_the_query(self) -> None:
        """
        The facets of the most frequent fields list the server's top values
        for the query and range, with the share of matches that have the
        field; clicking one filters for it.
        """
        self.load("since=now-15m")
        users = '#facets section[data-facet="user"]'
        self.assertIn("91%", self.browser.text(users + " h3"))  # 20 of the 22 records
        shown = {
            li.get_attribute("data-value"): int(li.find_element("css selector", ".count").text)
            for li in self.browser.findAll(users + " li")
        }
        self.assertEqual(shown, {"40": 7, "41": 7, "42": 6})
        self.act(lambda: self.browser.find(users + ' li[data-value="41"] .value').click())
        self.assertEqual(self.browser.find("#q").get_attribute("value"), "user:41")
        self.assertEqual(self.total(), 7)
        self.assertEqual(
            [li.get_attribute("data-value") for li in self.browser.findAll(users + " li")], ["41"]
        )


    def test_query_error_points_at_its_position(self) -> None:
        """
        A query the server cannot read is shown with the server's error and
        a caret under the position it names; the cursor goes there.
        """
        self.load("q=" + quote("service:api (timeout"))
        self.assertIn("q:", self.browser.text("#error"))
        pointer = self.browser.text("#error pre.pointer")
        query, caret = pointer.split("\n")
        self.assertEqual(query, "service:api (timeout")
        position = len(caret) - 1
        self.assertEqual(caret, " " * position + "^")
        self.assertEqual(self.browser.js("return document.activeElement.id"), "q")
        self.assertEqual(self.browser.js("return document.getElementById('q').selectionStart"), position)
        self.assertEqual(self.browser.findAll("#rows tr"), [])


    def test_root_redirects_browsers_to_the_ui(self) -> None:
        """
        A browser opening C{/} lands on the UI's default view.
        """
        self.browser.open(self.server.httpURL + "/")
        self.browser.waitReady()
        self.assertEqual(self.browser.params()["since"], ["now-24h"])
        self.assertEqual(self.total(), len(self.records) - 1)

    def test_slash_focuses_the_search_box(self) -> None:
        """
        Typing C{/} outside an input focuses the search box.
        """
        self.load()
        self.browser.find("#rows").click()  # focus away from any input
        self.browser.find("body").send_keys("/")
        self.assertEqual(self.browser.js("return document.activeElement.id"), "q")


class BrowserTailTests(TestCase):
    def setUp(self) -> None:
        # The shared browser, and a server of its own: the records sent here
        # would change the view tests' counts.
        self.browser = sharedUI().browser
        self.addCleanup(self.browser.open, "about:blank")
        self.server = TwistdServer(self.mktemp())
        self.server.start()
        self.addCleanup(self.server.kill)
        self.addCleanup(lambda: self.assertEqual(self.browser.consoleErrors(), []))

    def send(self, *messages: str, level: str = "info") -> None:
        """
        Send records (of C{level}) over TCP and wait until they are stored.
        """
        before = len(self.server.messages())
        with socket.create_connection(("127.0.0.1", self.server.tcpPort), timeout=10) as s:
            s.sendall(b"".join(
                json.dumps({"message": m, "service": "t", "level": level}).encode() + b"\n" for m in messages
            ))
        self.browser.waitUntil(lambda: len(self.server.messages()) >= before + len(messages), "the records to commit")

    def rows(self) -> list[str]:
        return [str(t) for t in self.browser.js(
            "return [...document.querySelectorAll('#rows td.msg .text')].map(e => e.textContent)"
        )]

    def test_tail_link_pause_resume_and_follow(self) -> None:
        """
        C{&tail=1} in a link starts the tail (and stays in the URL); the tail
        shows what the search's filters match, newest at the bottom; paused,
        it counts new records and shows them on resume; scrolling up lets go
        of the newest.
        """
        self.send("tailword first")
        self.browser.open(self.server.httpURL + "/ui/?q=tailword&tail=1")
        self.browser.waitReady()
        self.assertEqual(self.browser.params()["tail"], ["1"])
        self.browser.waitUntil(lambda: self.browser.text("#tail-state") == "live", "the tail to go live")
        self.assertEqual(self.browser.find("#tail").get_attribute("aria-pressed"), "true")
        self.assertEqual(self.rows(), ["tailword first"])

        self.send("other words", "tailword second")
        self.browser.waitUntil(lambda: len(self.rows()) == 2, "the live record")
        self.assertEqual(self.rows(), ["tailword first", "tailword second"])

        self.browser.find("#tail-pause").click()
        self.send("tailword held 1", "tailword held 2", "tailword held 3")
        self.browser.waitUntil(lambda: self.browser.text("#tail-held") == "3 new while paused", "the count")
        self.assertEqual(len(self.rows()), 2)
        self.browser.screenshot("tail-paused")
        self.browser.find("#tail-pause").click()
        self.browser.waitUntil(lambda: len(self.rows()) == 5, "the held records")
        self.assertEqual(self.rows()[-1], "tailword held 3")

        self.send(*[f"tailword filler {i}" for i in range(60)])
        self.browser.waitUntil(lambda: len(self.rows()) == 65, "the filler")
        atBottom = "const l = document.getElementById('list'); return l.scrollHeight - l.scrollTop - l.clientHeight < 8"
        self.browser.waitUntil(lambda: self.browser.js(atBottom), "following the newest")
        self.browser.js("document.getElementById('list').scrollTop = 0")
        self.browser.waitUntil(lambda: not self.browser.find("#follow").is_selected(), "the lock to let go")
        self.send("tailword after scrolling up")
        self.browser.waitUntil(lambda: len(self.rows()) == 66, "the last record")
        self.assertEqual(self.browser.js("return document.getElementById('list').scrollTop"), 0)
        self.browser.screenshot("tail")


    def total(self) -> int:
        return int(self.browser.find("#total").get_attribute("data-total"))

    def bars(self) -> list[tuple[int, list[str]]]:
        """
        @return: the histogram's bars, oldest first: each one's count and
            the levels it stacks.
        """
        return [(int(n), list(levels)) for n, levels in self.browser.js(
            "return [...document.querySelectorAll('#histogram g.bucket')].map(g => [g.dataset.count,"
            " [...g.querySelectorAll('rect')].map(r => r.getAttribute('class').slice(6))])"
        )]

    def test_tail_counts_into_the_histogram_and_total(self) -> None:
        """
        While tailing, each new record the search matches adds to the total
        and to the histogram's bar of its time (the window, ending now, grows
        to take it), paused or not; a record the search does not match adds
        nothing; stopping the tail searches again and finds the same counts.
        """
        self.send("countword first")
        self.browser.open(self.server.httpURL + "/ui/?q=countword&tail=1")
        self.browser.waitReady()
        self.browser.waitUntil(lambda: self.browser.text("#tail-state") == "live", "the tail to go live")
        self.assertEqual(self.total(), 1)
        self.assertEqual(sum(n for n, _ in self.bars()), 1)

        self.send("other words")
        self.send("countword second", level="error")
        self.browser.waitUntil(lambda: self.total() == 2, "the total to count the live record")
        self.browser.waitUntil(lambda: sum(n for n, _ in self.bars()) == 2, "the histogram to count it")
        self.assertEqual(self.browser.text("#total"), "2 matches")
        newest = self.bars()[-1]
        self.assertGreaterEqual(newest[0], 1)
        self.assertIn("error", newest[1])

        self.browser.find("#tail-pause").click()
        self.send("countword held 1", "countword held 2")
        self.browser.waitUntil(lambda: self.browser.text("#tail-held") == "2 new while paused", "the held count")
        self.browser.waitUntil(lambda: self.total() == 4, "the total to count held records")
        self.browser.waitUntil(lambda: sum(n for n, _ in self.bars()) == 4, "the histogram to count them")
        self.browser.screenshot("tail-histogram")

        before = self.browser.generation()
        self.browser.find("#tail").click()
        self.browser.waitReady(before)
        self.assertEqual(self.total(), 4)
        self.assertEqual(sum(n for n, _ in self.bars()), 4)


class BrowserTokenTests(TestCase):
    def test_token_typed_once_serves_every_call(self) -> None:
        """
        Against a server with tokens, the page says a token is needed; the
        token typed under "token" is kept by the browser (never put in the
        URL) and sent on every call, the live tail's included.
        """
        browser = sharedUI().browser
        self.addCleanup(browser.open, "about:blank")
        server, _ = startWithTokens(self, TwistdServer, "ingest in-0123456789\nread rd-0123456789\n")
        post(server, [{"message": "behind a token"}], token="in-0123456789")
        browser.open(server.httpURL + "/ui/?tail=1")
        browser.waitReady()
        self.assertIn("401", browser.text("#error"))
        self.assertIn('enter a token under "token"', browser.text("#error"))
        before = browser.generation()
        browser.find("#auth summary").click()
        box = browser.find("#token")
        box.send_keys("rd-0123456789")
        box.send_keys("\t")  # the change event
        browser.waitReady(before)
        self.addCleanup(lambda: browser.js("localStorage.removeItem('logsvc-token')"))
        self.assertFalse(browser.find("#error").is_displayed())
        self.assertEqual(browser.text("#rows td.msg .text"), "behind a token")
        browser.waitUntil(lambda: browser.text("#tail-state") == "live", "the tail to go live with the token")
        self.assertNotIn("rd-0123456789", browser.driver.current_url)


NODE = os.environ.get("NODE") or "node"

_TAIL_SCRIPT = """
import { readEvents } from %(module)s;
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
        The UI's own Server-Sent Events reader (sse.js, run in node),
        resuming with since_id, gets the committed records after that id and
        then live ones, each once, in id order.
        """
        import shutil

        if shutil.which(NODE) is None:
            raise SkipTest("node is not installed (apt-get install nodejs)")
        server = TwistdServer(self.mktemp())
        server.start()
        self.addCleanup(server.kill)
        with socket.create_connection(("127.0.0.1", server.tcpPort), timeout=10) as s:
            s.sendall(b"".join(b'{"service": "t", "msg": "old %d"}\n' % i for i in range(3)))
            s.shutdown(socket.SHUT_WR)
            s.recv(1)
        # node reads .mjs files as ES modules.
        module = os.path.abspath(self.mktemp() + ".mjs")
        with open(os.path.join(ROOT, "logsvc", "web", "static", "sse.js")) as source, open(module, "w") as copy:
            copy.write(source.read())
        script = os.path.abspath(self.mktemp() + ".mjs")
        with open(script, "w") as f:
            f.write(
                _TAIL_SCRIPT
                % {
                    "module": json.dumps("file://" + module),
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
