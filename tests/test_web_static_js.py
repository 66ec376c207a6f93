"""
The UI's pure modules (C{querytext.js}: the terms "filter for/out" write and
the words highlighted; C{timerange.js}: the times a range and a link take)
run in node, without a browser, against the cases below.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from twisted.trial.unittest import SkipTest, TestCase

from logsvc.web.ui import STATIC_DIR

NODE = shutil.which("node")

_SCRIPT = r"""
import assert from "node:assert/strict";
import { addFilter, filterFor, filterTerm, quoteValue, searchedWords, splitTerms } from "./querytext.js";
import { TimeError, describeRange, isRelative, parseMoment, resolveRange, timeTicks, tickLabel, UNITS } from "./timerange.js";
import { countInto } from "./histogram.js";

const cases = {
  quoteValue() {
    assert.equal(quoteValue("api"), "api");
    assert.equal(quoteValue("web-3"), "web-3");
    assert.equal(quoteValue(42), "42");
    assert.equal(quoteValue("a b"), '"a b"');
    assert.equal(quoteValue('say "hi" \\o/'), '"say \\"hi\\" \\\\o/"');
    assert.equal(quoteValue("OR"), '"OR"');
    assert.equal(quoteValue("-x"), '"-x"');
    assert.equal(quoteValue("abc*"), '"abc*"');
    assert.equal(quoteValue("/api/v1"), '"/api/v1"');
    assert.equal(quoteValue("(x)"), '"(x)"');
  },
  filterFor() {
    assert.deepEqual(filterFor("service", false, "api"), { term: "service:api", invert: false });
    assert.deepEqual(filterFor("level", false, "error"), { term: "level:error", invert: false });
    assert.deepEqual(filterFor("level", true, "x"), { term: "fields.level:x", invert: false });
    assert.deepEqual(filterFor("user", true, 42), { term: "user:42", invert: false });
    assert.deepEqual(filterFor("ok", true, false), { term: "ok:false", invert: false });
    assert.deepEqual(filterFor("gone", true, null), { term: "gone:null", invert: false });
    assert.deepEqual(filterFor("message", false, "disk full"), { term: '"disk full"', invert: false });
    assert.deepEqual(filterFor("service", false, ""), { term: "service:*", invert: true });
    assert.deepEqual(filterFor("id", false, 240), { term: "id:240", invert: false });
    assert.deepEqual(filterFor("ts", false, "2026-12-04T18:50:29.502243Z"), { term: 'ts:"2026-12-04T18:50:29.502243Z"', invert: false });
    assert.equal(filterFor("user", true, ""), null);
    assert.equal(filterFor("http-status", true, 200), null);
    assert.equal(filterFor("nested", true, { a: 1 }), null);
    assert.equal(filterFor("list", true, [1]), null);
    const empty = filterFor("source", false, "");
    assert.equal(filterTerm(empty, false), "-source:*");
    assert.equal(filterTerm(empty, true), "source:*");
  },
  addFilter() {
    const api = filterFor("service", false, "api");
    assert.equal(addFilter("", api, false), "service:api");
    assert.equal(addFilter("orders", api, false), "orders service:api");
    assert.equal(addFilter("orders service:api", api, false), "orders service:api");
    assert.equal(addFilter("orders service:api", api, true), "orders -service:api");
    assert.equal(addFilter("orders -service:api", api, false), "orders service:api");
    assert.equal(addFilter('"a b"  x', filterFor("path", true, "/a b"), false), '"a b" x path:"/a b"');
  },
  splitTerms() {
    assert.deepEqual(splitTerms('a "b c" d:"e \\" f" (g)'), ["a", '"b c"', 'd:"e \\" f"', "(g)"]);
  },
  searchedWords() {
    const found = searchedWords('Timeout "conn refused" pay* service:api -debug ms>5 OR (x) ~"t.*" level>=error');
    assert.deepEqual([...found.words].sort(), ["conn", "refused", "timeout", "x"]);
    assert.deepEqual(found.prefixes, ["pay"]);
    assert.deepEqual([...searchedWords("10:32:00 straße").words].sort(), ["00", "10", "32", "straße"]);
  },
  parseMoment() {
    const now = Date.UTC(2026, 11, 4, 12, 0, 0);
    assert.equal(parseMoment("now", now, "utc", "since"), now);
    assert.equal(parseMoment("now-15m", now, "utc", "since"), now - 15 * UNITS.m);
    assert.equal(parseMoment("15m", now, "utc", "since"), now - 15 * UNITS.m);
    assert.equal(parseMoment("NOW - 2h", now, "utc", "since"), now - 2 * UNITS.h);
    assert.equal(parseMoment("1w", now, "utc", "since"), now - 7 * UNITS.d);
    assert.equal(parseMoment("1764849600", now, "utc", "since"), 1764849600000);
    assert.equal(parseMoment("2026-12-04T10:00:00Z", now, "local", "since"), Date.UTC(2026, 11, 4, 10));
    assert.equal(parseMoment("2026-12-04 10:00:00.5+02:00", now, "utc", "since"), Date.UTC(2026, 11, 4, 8, 0, 0, 500));
    assert.equal(parseMoment("2026-12-04 10:00", now, "utc", "since"), Date.UTC(2026, 11, 4, 10));
    // The process runs with TZ=Europe/Berlin: a time without a zone is read there.
    assert.equal(parseMoment("2026-12-04 10:00", now, "local", "since"), Date.UTC(2026, 11, 4, 9));
    assert.equal(parseMoment("2026-07-01", now, "local", "since"), Date.UTC(2026, 5, 30, 22));
    for (const bad of ["yesterday", "2026-02-30 10:00", "10:00", "", "now+5m", "-15m"]) {
      assert.throws(() => parseMoment(bad, now, "utc", "since"), (e) => e instanceof TimeError && e.param === "since", bad);
    }
    assert.ok(isRelative(" now-1h ") && isRelative("7d") && !isRelative("2026-12-04"));
  },
  resolveRange() {
    const now = Date.UTC(2026, 11, 4, 12);
    assert.deepEqual(resolveRange({ since: "", until: "" }, now, "utc"), { since: now - 24 * UNITS.h, until: now });
    assert.deepEqual(resolveRange({ since: "1h", until: "now-30m" }, now, "utc"), { since: now - UNITS.h, until: now - 30 * UNITS.m });
    assert.throws(() => resolveRange({ since: "now-1h", until: "now-2h" }, now, "utc"), (e) => e.param === "until");
  },
  describeRange() {
    assert.equal(describeRange({ since: "now-15m", until: "" }, "utc"), "Last 15 minutes");
    assert.equal(describeRange({ since: "", until: "" }, "utc"), "Last 24 hours");
    assert.equal(describeRange({ since: "now-90m", until: "now" }, "utc"), "Last 90m");
    assert.equal(describeRange({ since: "2026-12-04T10:00:00.000Z", until: "2026-12-04T11:00:00.000Z" }, "utc"),
      "2026-12-04 10:00:00 → 2026-12-04 11:00:00");
    assert.equal(describeRange({ since: "2026-12-04T10:00:00.000Z", until: "2026-12-04T11:00:00.000Z" }, "local"),
      "2026-12-04 11:00:00 → 2026-12-04 12:00:00");
  },
  timeTicks() {
    const start = Date.UTC(2026, 11, 3, 12, 17);
    const utc = timeTicks(start, start + 24 * UNITS.h, 12, "utc");
    assert.equal(utc.step, 2 * UNITS.h);
    assert.equal(utc.ticks[0], Date.UTC(2026, 11, 3, 14));
    assert.equal(utc.ticks.length, 12);
    const local = timeTicks(start, start + 24 * UNITS.h, 12, "local");
    assert.equal(local.ticks[0], Date.UTC(2026, 11, 3, 13)); // 14:00 in Berlin
    assert.deepEqual(tickLabel(Date.UTC(2026, 11, 3, 23), 2 * UNITS.h, "local", Date.UTC(2026, 11, 3, 21)), ["00:00", "12-04"]);
    assert.deepEqual(tickLabel(Date.UTC(2026, 11, 4, 1), 2 * UNITS.h, "local", Date.UTC(2026, 11, 3, 23)), ["02:00"]);
    assert.deepEqual(tickLabel(Date.UTC(2026, 11, 4, 1, 0, 30), 30 * UNITS.s, "utc", null), ["01:00:30", "12-04"]);
  },
  countInto() {
    const at = (minutes) => new Date(Date.UTC(2026, 11, 4, 12, minutes)).toISOString();
    const ms = (minutes) => Date.UTC(2026, 11, 4, 12, minutes);
    const fresh = () => [0, 15].map((m) => ({ start: ms(m), end: ms(m + 15), count: 1, levels: { info: 1 } }));
    const range = { since: ms(5), until: ms(20) };
    const records = [
      { ts: at(3), level: "info" }, // before the range
      { ts: at(16), level: "error" }, // in the last bucket
      { ts: at(31), level: "info" }, // past the end: a new bucket when growing
      { ts: "not a time", level: "info" },
    ];
    let buckets = fresh();
    const fixed = countInto(buckets, range, 15 * UNITS.m, records, false);
    assert.equal(fixed.counted, 1);
    assert.deepEqual(fixed.range, range);
    assert.deepEqual(buckets.map((b) => [b.count, b.levels]), [[1, { info: 1 }], [2, { info: 1, error: 1 }]]);
    buckets = fresh();
    const grown = countInto(buckets, range, 15 * UNITS.m, records, true);
    assert.equal(grown.counted, 2);
    assert.deepEqual(grown.range, { since: ms(5), until: ms(31) + 1 });
    assert.deepEqual(buckets.map((b) => [b.start, b.count]), [[ms(0), 1], [ms(15), 2], [ms(30), 1]]);
    assert.deepEqual(buckets[2].levels, { info: 1 });
    buckets = [];
    const empty = countInto(buckets, range, 15 * UNITS.m, [{ ts: at(47), level: "debug" }], true);
    assert.equal(empty.counted, 1);
    assert.deepEqual(buckets.map((b) => [b.start, b.end, b.count]), [[ms(35), ms(50), 1]]);
  },
};

const failed = [];
for (const [name, run] of Object.entries(cases)) {
  try { run(); } catch (error) { failed.push(`${name}: ${error.message}`); }
}
console.log(JSON.stringify({ ran: Object.keys(cases).length, failed }));
"""


class PureModuleTests(TestCase):
    def test_query_text_and_time_ranges(self) -> None:
        """
        C{querytext.js}, C{timerange.js} and C{histogram.js}'s counting give
        the documented answers for every case of the script (quoting, filter
        terms, the words highlighted, relative and absolute times, ranges,
        axis ticks, the tail's records counted into the bars).
        """
        if NODE is None:
            raise SkipTest("node is not installed (apt-get install nodejs)")
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        for name in ("querytext.js", "timerange.js", "histogram.js"):
            shutil.copy(os.path.join(STATIC_DIR, name), directory)
        # node reads .js files as ES modules in a "module" package.
        with open(os.path.join(directory, "package.json"), "w") as f:
            json.dump({"type": "module"}, f)
        with open(os.path.join(directory, "cases.js"), "w") as f:
            f.write(_SCRIPT)
        result = subprocess.run(
            [NODE, "cases.js"],
            cwd=directory,
            env={**os.environ, "TZ": "Europe/Berlin"},
            capture_output=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        outcome = json.loads(result.stdout)
        self.assertEqual(outcome["failed"], [])
        self.assertEqual(outcome["ran"], 10)
