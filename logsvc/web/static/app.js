// logsvc web UI: the view (query, range, open record, tail) lives in the URL,
// so any view can be shared as a link; this module reads it, asks the API
// (GET /logs, /stats, /logs/tail) and wires the parts together.  Log data is
// only ever inserted as text, never as HTML.

import { getJSON, setToken, token } from "./api.js";
import { loadFacets } from "./facets.js";
import { Histogram } from "./histogram.js";
import { addFilter, searchedWords } from "./querytext.js";
import { recordRow, showDetail } from "./records.js";
import { LiveTail } from "./tail.js";
import {
  DEFAULT_SINCE, PRESETS, UNITS, TimeError, describeRange, formatTime, isRelative, isoUTC,
  offsetName, parseMoment, resolveRange, zoneForAPI, zoneName,
} from "./timerange.js";

const $ = (id) => document.getElementById(id);
const ZONE_KEY = "logsvc-zone";
/** Records per page of the list. */
const PAGE = 100;
/** Most rows the list keeps while tailing (the oldest go). */
const MAX_ROWS = 2000;
/** The parameters a link may hold (and `field.NAME`). */
const LINK_PARAMS = new Set(["q", "level", "service", "source", "since", "until", "open", "tail"]);

const rowsBody = $("rows");
const list = $("list");
const histogram = new Histogram($("histogram"), zoomTo);

/** The view as the URL holds it; see readURL. */
let view = null;
/** Problems with the link the view came from: [{message, fatal}]. */
let linkErrors = [];
let zone = localStorage.getItem(ZONE_KEY) === "utc" ? "utc" : "local";
/** What the list shows: records in display order, the next page's cursor, the resolved range. */
let shown = { records: [], next: null, range: null, params: null, key: null };
let searchController = null;
let tail = null;

// ---- the URL ---------------------------------------------------------------

/**
 * @returns {view, errors}: the view a URL's query string names, and what in
 *     it is wrong (a fatal error stops the search: the page shows the error
 *     rather than records the link did not ask for).
 */
function readURL(search) {
  const p = new URLSearchParams(search);
  const errors = [];
  const v = {
    q: p.get("q") || "",
    level: p.get("level") || "",
    services: p.getAll("service").filter(Boolean),
    sources: p.getAll("source").filter(Boolean),
    fields: [],
    since: p.get("since") || "",
    until: p.get("until") || "",
    open: null,
    tail: false,
  };
  for (const [key, value] of p) {
    if (key.startsWith("field.")) {
      if (key.length > 6) v.fields.push([key.slice(6), value]);
      else errors.push({ message: "field.: missing field name", fatal: true });
    } else if (!LINK_PARAMS.has(key)) {
      errors.push({ message: `${key}: unknown link parameter (ignored)`, fatal: false });
    }
  }
  const open = p.get("open");
  if (open) {
    const found = /^(\d+)(?:@(.+))?$/.exec(open);
    if (found) v.open = { id: Number(found[1]), ts: found[2] || null };
    else errors.push({ message: `open: not a record id: ${JSON.stringify(open)}`, fatal: true });
  }
  const tailText = p.get("tail");
  if (tailText === "1" || tailText === "true") v.tail = true;
  else if (tailText !== null && tailText !== "0" && tailText !== "false" && tailText !== "") {
    errors.push({ message: `tail: must be 1 or 0, not ${JSON.stringify(tailText)}`, fatal: true });
  }
  try {
    resolveRange(v, Date.now(), zone);
  } catch (error) {
    if (!(error instanceof TimeError)) throw error;
    errors.push({ message: error.message, fatal: true });
  }
  return { view: v, errors };
}

/** @returns the query string of view `v`. */
function urlOf(v) {
  const p = filterParams(v);
  p.set("since", v.since || DEFAULT_SINCE);
  if (v.until) p.set("until", v.until);
  if (v.open) p.set("open", v.open.ts ? `${v.open.id}@${v.open.ts}` : String(v.open.id));
  if (v.tail) p.set("tail", "1");
  return "?" + p;
}

/** Record the view in the URL: a new history entry when `push`, else in place. */
function saveView(push) {
  const url = urlOf(view);
  if (url === window.location.search) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

/** @returns what a search depends on (everything but the open record and the tail). */
function searchKey(v) {
  return JSON.stringify([v.q, v.level, v.services, v.sources, v.fields, v.since || DEFAULT_SINCE, v.until, zone]);
}

/** @returns the API parameters of view `v`'s filters (no time range). */
function filterParams(v) {
  const p = new URLSearchParams();
  if (v.q) p.set("q", v.q);
  if (v.level) p.set("level", v.level);
  for (const s of v.services) p.append("service", s);
  for (const s of v.sources) p.append("source", s);
  for (const [key, value] of v.fields) p.append("field." + key, value);
  return p;
}

// ---- messages --------------------------------------------------------------

function status(text) {
  $("status").textContent = text;
}

/** Show `messages` (strings) in the error bar, or hide it. */
function showErrors(messages) {
  const box = $("error");
  box.textContent = "";
  for (const message of messages) {
    const line = document.createElement("div");
    line.textContent = message;
    box.appendChild(line);
  }
  box.hidden = !messages.length;
}

/** Show where in the query the server stopped reading it, and put the cursor there. */
function pointAt(position) {
  const box = $("error");
  const pointer = document.createElement("pre");
  pointer.className = "pointer";
  pointer.textContent = `${view.q}\n${" ".repeat(Math.min(position, view.q.length))}^`;
  box.appendChild(pointer);
  const q = $("q");
  q.focus();
  q.setSelectionRange(position, Math.min(position + 1, q.value.length));
}

function apiErrorText(error) {
  if (error.status === 401 || error.status === 403) {
    return `${error.message} (enter a token under "token")`;
  }
  return error.message;
}

// ---- the form --------------------------------------------------------------

function fillForm() {
  document.title = view.q ? `${view.q} · logsvc` : "logsvc";
  $("q").value = view.q;
  const level = $("level");
  if (view.level && ![...level.options].some((o) => o.value === view.level)) {
    // A level the select does not list (an alias, or a typo the server will name).
    const option = document.createElement("option");
    option.textContent = view.level;
    level.appendChild(option);
  }
  level.value = view.level;
  $("range").textContent = describeRange(view, zone);
  $("range-since").value = view.since || DEFAULT_SINCE;
  $("range-until").value = view.until || "now";
  $("zone").textContent = zone === "utc" ? "UTC" : `${zoneName(zone)} (${offsetName(Date.now(), zone)})`;
  $("ts-head").textContent = `time (${zoneName(zone)})`;
  $("tail").setAttribute("aria-pressed", String(view.tail));
  $("tail").textContent = view.tail ? "Stop tail" : "Live tail";
  fillChips();
}

/** Filters a link gave as parameters (service=, source=, field.X=) as removable chips. */
function fillChips() {
  const box = $("chips");
  box.textContent = "";
  const chip = (label, remove) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "chip";
    b.textContent = label + " ×";
    b.title = "remove this filter";
    b.addEventListener("click", () => { remove(); saveView(true); run(); });
    box.appendChild(b);
  };
  view.services.forEach((s, i) => chip(`service = ${s}`, () => view.services.splice(i, 1)));
  view.sources.forEach((s, i) => chip(`source = ${s}`, () => view.sources.splice(i, 1)));
  view.fields.forEach(([k, v], i) => chip(`${k} = ${v}`, () => view.fields.splice(i, 1)));
  box.hidden = !box.childNodes.length;
}

// ---- the search ------------------------------------------------------------

/** Search for `view` and show it: records, histogram, total, facets, open record, tail. */
async function run() {
  if (searchController) searchController.abort();
  const controller = new AbortController();
  searchController = controller;
  const signal = controller.signal;
  searching();
  stopTail();
  fillForm();
  const errors = linkErrors.map((e) => e.message);
  showErrors(errors);
  let range = null;
  if (!linkErrors.some((e) => e.fatal)) {
    try {
      range = resolveRange(view, Date.now(), zone);
    } catch (error) {
      errors.push(error.message);
      showErrors(errors);
    }
  }
  if (range === null) {
    clearResults("the link has an error (shown above): fix it, or pick a range and search again");
    ready();
    return;
  }
  const resolved = `${formatTime(range.since, zone)} → ${formatTime(range.until, zone)} ${zoneName(zone)}`;
  $("range-resolved").textContent = `Showing ${resolved}`;
  $("range").title = resolved;
  const params = filterParams(view);
  params.set("since", isoUTC(range.since));
  params.set("until", isoUTC(range.until));
  shown = { records: [], next: null, range, params, key: searchKey(view) };
  status("searching…");
  $("total").textContent = "";
  const pageParams = new URLSearchParams(params);
  pageParams.set("limit", String(PAGE));
  const statsParams = new URLSearchParams(params);
  statsParams.set("tz", zoneForAPI(zone));
  const pageAnswer = getJSON("logs", pageParams, signal);
  const statsAnswer = getJSON("stats", statsParams, signal);
  // The stats answer may fail before the page answer is in; a handler now
  // keeps the browser from reporting it as unhandled (it is shown below).
  statsAnswer.catch(() => {});
  let page;
  try {
    page = await pageAnswer;
  } catch (error) {
    if (signal.aborted) return;
    showErrors(errors.concat([apiErrorText(error)]));
    if (error.param === "q" && error.position !== null) pointAt(error.position);
    clearResults("the search failed (see above)");
    ready();
    return;
  }
  if (signal.aborted) return;
  shown.records = page.logs;
  shown.next = page.next;
  renderRows();
  const drawn = statsAnswer.then((stats) => {
    if (signal.aborted) return;
    histogram.show(stats, range, zone);
    showTotal(stats.total);
  }, (error) => {
    if (!signal.aborted) histogram.clear(`histogram: ${error.message}`);
  });
  const facets = loadFacets($("facets"), params, filterBy, signal).catch(() => {});
  await openFromView(signal);
  if (signal.aborted) return;
  if (view.tail) startTail();
  await Promise.all([drawn, facets]);
  if (!signal.aborted) ready();
}

/**
 * Mark the page as showing the whole view (the tests wait for it): the
 * generation counts the searches started, the state says whether the latest
 * one is done.
 */
function searching() {
  document.body.dataset.generation = String(Number(document.body.dataset.generation || 0) + 1);
  document.body.dataset.state = "searching";
}

function ready() {
  document.body.dataset.state = "ready";
}

/** Show `n` as the number of matches. */
function showTotal(n) {
  $("total").textContent = `${n.toLocaleString()} ${n === 1 ? "match" : "matches"}`;
  $("total").dataset.total = String(n);
}

function clearResults(message) {
  rowsBody.textContent = "";
  shown = { records: [], next: null, range: null, params: null, key: null };
  histogram.clear();
  $("facets").textContent = "";
  $("total").textContent = "";
  $("more").hidden = true;
  hideRecord();
  status(message);
}

function renderRows() {
  const searched = searchedWords(view.q);
  rowsBody.textContent = "";
  for (const record of shown.records) rowsBody.appendChild(recordRow(record, zone, searched));
  markOpen();
  $("more").hidden = !shown.next || !!tail;
  listedStatus();
}

function listedStatus() {
  const n = shown.records.length;
  const range = describeRange(view, zone);
  if (tail) return;
  if (!n) status(`· ${range} · nothing matches`);
  else status(`· ${range} · showing the ${n === 1 ? "newest record" : `newest ${n.toLocaleString()}`}${shown.next ? " (older on request)" : ""}`);
}

async function more() {
  if (!shown.next || !shown.params) return;
  const p = new URLSearchParams(shown.params);
  p.set("limit", String(PAGE));
  p.set("cursor", shown.next);
  const key = shown.key;
  try {
    const page = await getJSON("logs", p);
    if (shown.key !== key) return;
    const searched = searchedWords(view.q);
    for (const record of page.logs) rowsBody.appendChild(recordRow(record, zone, searched));
    shown.records = shown.records.concat(page.logs);
    shown.next = page.next;
    $("more").hidden = !shown.next;
    listedStatus();
  } catch (error) {
    showErrors([apiErrorText(error)]);
  }
}

// ---- editing the view ------------------------------------------------------

/** Filter for (or out, `negate`) a value (see filterFor): edits the query text and searches. */
function filterBy(filter, negate) {
  view.q = addFilter(view.q, filter, negate);
  view.open = null;
  linkErrors = [];
  saveView(true);
  run();
}

/** Show the range [since, until) (ms): a drag or a click on the histogram. */
function zoomTo(since, until) {
  view.since = isoUTC(since);
  view.until = isoUTC(until);
  view.tail = false;
  linkErrors = [];
  saveView(true);
  run();
}

/** @returns a relative "now-N<unit>" naming a window of `ms`, in the largest whole unit. */
function relativeText(ms) {
  for (const [unit, size] of [["d", UNITS.d], ["h", UNITS.h], ["m", UNITS.m]]) {
    if (ms % size === 0) return `now-${ms / size}${unit}`;
  }
  return `now-${Math.max(1, Math.round(ms / UNITS.m))}m`;
}

/** Show a window twice as long around the same middle (relative windows stay relative). */
function zoomOut() {
  const now = Date.now();
  let range;
  try { range = resolveRange(view, now, zone); } catch (e) { return; }
  const width = range.until - range.since;
  const toNow = !view.until || /^now$/i.test(view.until);
  if (toNow && isRelative(view.since || DEFAULT_SINCE)) {
    view.since = relativeText(Math.round(2 * width / UNITS.m) * UNITS.m);
    view.until = "";
  } else {
    const until = range.until + width / 2;
    view.since = isoUTC(Math.floor(range.since - width / 2));
    view.until = until >= now ? "" : isoUTC(Math.ceil(until));
  }
  linkErrors = [];
  saveView(true);
  run();
}

function setRange(since, until) {
  view.since = since;
  view.until = until;
  linkErrors = [];
  closePicker();
  saveView(true);
  run();
}

// ---- the time picker -------------------------------------------------------

function openPicker() {
  $("range-panel").hidden = false;
  $("range").setAttribute("aria-expanded", "true");
  $("range-error")?.remove();
}

function closePicker() {
  $("range-panel").hidden = true;
  $("range").setAttribute("aria-expanded", "false");
}

for (const [since, label] of PRESETS) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.dataset.since = since;
  b.addEventListener("click", () => setRange(since, ""));
  $("presets").appendChild(b);
}

/** Apply the picker's From/To: relative texts kept, absolute ones stored as UTC. */
function applyCustomRange() {
  const now = Date.now();
  const texts = [$("range-since").value.trim(), $("range-until").value.trim()];
  try {
    const [since, until] = texts.map((text, index) => {
      const name = index ? "until" : "since";
      if (!text || isRelative(text)) return text;
      return isoUTC(parseMoment(text, now, zone, name));
    });
    resolveRange({ since, until: /^now$/i.test(until) ? "" : until }, now, zone);
    setRange(since, /^now$/i.test(until) ? "" : until);
  } catch (error) {
    if (!(error instanceof TimeError)) throw error;
    $("range-error")?.remove();
    const p = document.createElement("p");
    p.id = "range-error";
    p.className = "error";
    p.textContent = error.message;
    $("range-panel").appendChild(p);
  }
}

$("range").addEventListener("click", () => {
  if ($("range-panel").hidden) openPicker(); else closePicker();
});
$("range-apply").addEventListener("click", applyCustomRange);
for (const id of ["range-since", "range-until"]) {
  $(id).addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); applyCustomRange(); }
  });
}

// ---- records ---------------------------------------------------------------

function markOpen() {
  for (const tr of rowsBody.querySelectorAll("tr.open")) tr.classList.remove("open");
  if (!view.open) return;
  const tr = rowsBody.querySelector(`tr[data-id="${view.open.id}"]`);
  if (tr) tr.classList.add("open");
}

function showRecord(record) {
  showDetail($("detail"), record, {
    zone,
    searched: searchedWords(view.q),
    onFilter: filterBy,
    onClose: closeRecord,
    link: window.location.href,
  });
  document.body.classList.add("detail-open");
  markOpen();
}

function openRecord(record) {
  view.open = { id: record.id, ts: record.ts };
  saveView(true);
  showRecord(record);
}

function closeRecord() {
  if (!view.open) return;
  view.open = null;
  saveView(true);
  hideRecord();
}

function hideRecord() {
  $("detail").hidden = true;
  document.body.classList.remove("detail-open");
  markOpen();
}

/**
 * Open the record the view names: from the list when it is there, else
 * looked up at its time (the link carries it), so a shared link opens it even
 * when it is not among the newest.
 */
async function openFromView(signal) {
  if (!view.open) {
    hideRecord();
    return;
  }
  const { id, ts } = view.open;
  let record = shown.records.find((r) => r.id === id);
  if (!record && ts && !Number.isNaN(Date.parse(ts))) {
    const at = Date.parse(ts);
    const p = new URLSearchParams({ since: isoUTC(at), until: isoUTC(at + 1), limit: "1000" });
    try {
      const page = await getJSON("logs", p, signal);
      record = page.logs.find((r) => r.id === id);
    } catch (error) {
      if (signal.aborted) return;
    }
  }
  if (signal.aborted) return;
  if (record) showRecord(record);
  else {
    hideRecord();
    showErrors([`open: no record ${id}${ts ? " at " + ts : ""}`]);
  }
}

rowsBody.addEventListener("click", (event) => {
  const tr = event.target.closest("tr");
  if (!tr || event.target.closest("button")) return;
  // Selecting text in a row is not a click on it.
  if (String(window.getSelection() || "")) return;
  const record = shown.records.find((r) => String(r.id) === tr.dataset.id);
  if (record) openRecord(record);
});
rowsBody.addEventListener("keydown", (event) => {
  if (event.key !== "Enter") return;
  const tr = event.target.closest("tr");
  const record = tr && shown.records.find((r) => String(r.id) === tr.dataset.id);
  if (record) openRecord(record);
});

// ---- the live tail ---------------------------------------------------------

/** Follow the newest records: the list shows oldest first, new ones at the bottom. */
function startTail() {
  if (tail) return;
  const newestId = shown.records.reduce((most, r) => Math.max(most, r.id), 0) || null;
  shown.records = shown.records.slice().reverse();
  $("more").hidden = true;
  rowsBody.textContent = "";
  const searched = searchedWords(view.q);
  for (const record of shown.records) rowsBody.appendChild(recordRow(record, zone, searched));
  markOpen();
  $("tailbar").hidden = false;
  $("follow").checked = true;
  $("tail-pause").textContent = "Pause";
  $("tail-held").textContent = "";
  document.body.classList.add("tailing");
  scrollToNewest();
  tail = new LiveTail(filterParams(view), newestId ? String(newestId) : null, addLive, tailState, countLive).start();
  status("· live: waiting for records…");
}

function stopTail() {
  if (!tail) return;
  tail.stop();
  tail = null;
  $("tailbar").hidden = true;
  document.body.classList.remove("tailing");
}

function addLive(records) {
  const searched = searchedWords(view.q);
  for (const record of records) {
    const tr = recordRow(record, zone, searched);
    tr.classList.add("live");
    rowsBody.appendChild(tr);
    shown.records.push(record);
  }
  while (shown.records.length > MAX_ROWS) {
    shown.records.shift();
    rowsBody.deleteRow(0);
  }
  if ($("follow").checked) scrollToNewest();
  status(`· live: ${shown.records.length.toLocaleString()} records shown`);
}

/**
 * Count a record the tail brought (it matches the search's filters) into
 * the histogram and the total, as the stats would count it now: a view
 * ending now grows to take it; paused, the counts go on (only the list holds).
 */
function countLive(record) {
  const endsNow = !view.until || /^now$/i.test(view.until);
  if (!histogram.addRecords([record], endsNow)) return;
  showTotal(Number($("total").dataset.total || 0) + 1);
}

function tailState({ status: state, error, held }) {
  $("tail-state").textContent = state;
  $("tail-state").className = "state-" + state;
  $("tail-held").textContent = state === "paused" ? `${held.toLocaleString()} new while paused` : "";
  $("tail-pause").textContent = state === "paused" ? "Resume" : "Pause";
  if (error) showErrors([`tail: ${error.message}`]);
  else if (state === "live") showErrors(linkErrors.map((e) => e.message));
}

function scrollToNewest() {
  list.scrollTop = list.scrollHeight;
}

list.addEventListener("scroll", () => {
  if (!tail) return;
  // Scrolling up lets go of the newest; scrolling back down follows again.
  $("follow").checked = list.scrollHeight - list.scrollTop - list.clientHeight < 8;
});
$("follow").addEventListener("change", () => { if ($("follow").checked) scrollToNewest(); });
$("tail-pause").addEventListener("click", () => {
  if (!tail) return;
  if (tail.paused) tail.resume(); else tail.pause();
});
$("tail").addEventListener("click", () => {
  view.tail = !view.tail;
  saveView(false);
  if (view.tail) {
    fillForm();
    startTail();
  } else {
    run();
  }
});

// ---- wiring ----------------------------------------------------------------

$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  view.q = $("q").value.trim();
  view.level = $("level").value;
  view.open = null;
  linkErrors = [];
  saveView(true);
  run();
});
$("level").addEventListener("change", () => $("search").requestSubmit());
$("more").addEventListener("click", more);
$("zoom-out").addEventListener("click", zoomOut);
$("zone").addEventListener("click", () => {
  zone = zone === "utc" ? "local" : "utc";
  localStorage.setItem(ZONE_KEY, zone);
  run();
});
$("token").value = token();
$("token").addEventListener("change", () => { setToken($("token").value); run(); });

document.addEventListener("keydown", (event) => {
  const typing = event.target.closest && event.target.closest("input, select, textarea");
  if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
    event.preventDefault();
    $("q").focus();
    $("q").select();
  } else if (event.key === "Escape") {
    if (!$("range-panel").hidden) closePicker();
    else if (!typing) closeRecord();
  }
});
document.addEventListener("click", (event) => {
  if (!$("range-panel").hidden && !event.target.closest("#picker")) closePicker();
});

/** Show the view the URL names (on load, and on Back/Forward). */
function fromURL() {
  const read = readURL(window.location.search);
  const sameSearch = view && shown.key === searchKey(read.view) && !read.errors.length;
  view = read.view;
  linkErrors = read.errors;
  // The URL is rewritten in its full form only after it was read whole (the
  // tail parameter among it), and never when it holds an error to show.
  if (!linkErrors.some((e) => e.fatal)) saveView(false);
  if (sameSearch) {
    fillForm();
    const controller = new AbortController();
    openFromView(controller.signal);
    if (view.tail && !tail) startTail();
    if (!view.tail && tail) run();
    return;
  }
  run();
}

window.addEventListener("popstate", fromURL);
fromURL();

// Exposed for debugging in the console and for the tests' waits.
window.logsvc = {
  get view() { return view; },
  get tail() { return tail; },
  formatTime: (ms) => formatTime(ms, zone, "millis"),
};
