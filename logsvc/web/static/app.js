// logsvc web UI: search (GET /logs), counts over time (GET /stats) and live
// tail (GET /logs/tail, Server-Sent Events read with fetch so a bearer token
// can be sent).  Log data is only ever inserted as text, never as HTML.
"use strict";

const API = new URL("../", window.location.href);
const MAX_ROWS = 2000;
const $ = (id) => document.getElementById(id);
const form = $("search");
const rowsBody = $("rows");
let nextCursor = null;
let tail = null;

$("token").value = localStorage.getItem("logsvc-token") || "";
$("token").addEventListener("change", () => localStorage.setItem("logsvc-token", $("token").value));

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const token = $("token").value.trim();
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

function status(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

// datetime-local values carry no offset: the UI works in UTC, as the server does.
function filters() {
  const params = new URLSearchParams();
  for (const name of ["q", "level", "service", "source", "since", "until"]) {
    const value = form.elements[name].value.trim();
    if (!value) continue;
    if (name === "service" || name === "source") {
      for (const part of value.split(",")) if (part.trim()) params.append(name, part.trim());
    } else if (name === "since" || name === "until") {
      params.set(name, value + "Z");
    } else {
      params.set(name, value);
    }
  }
  return params;
}

function fillForm(params) {
  for (const name of ["q", "level", "service", "source", "since", "until"]) {
    const values = params.getAll(name);
    if (!values.length) continue;
    form.elements[name].value = (name === "since" || name === "until")
      ? values[0].replace(/Z$/, "") : values.join(",");
  }
}

async function getJSON(path, params) {
  const response = await fetch(new URL(path + "?" + params, API), { headers: headers() });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const message = body && body.error ? body.error : response.statusText;
    const error = new Error(`${response.status}: ${message}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function renderRecord(record, live) {
  const tr = document.createElement("tr");
  tr.className = "level-" + record.level + (live ? " live" : "");
  tr.dataset.id = record.id;
  const cells = [
    ["ts", record.ts.replace("T", " ").replace("Z", "")],
    ["level", record.level],
    ["service", record.service],
    ["source", record.source],
  ];
  for (const [cls, text] of cells) {
    const td = document.createElement("td");
    td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
  }
  const msg = document.createElement("td");
  msg.className = "msg";
  msg.textContent = record.message;
  const names = Object.keys(record.fields || {});
  if (names.length) {
    const span = document.createElement("span");
    span.className = "fields";
    span.textContent = "  " + names.map((k) => `${k}=${JSON.stringify(record.fields[k])}`).join(" ");
    msg.appendChild(span);
  }
  tr.appendChild(msg);
  return tr;
}

async function search(append) {
  const params = filters();
  if (!append) {
    history.replaceState(null, "", "?" + params);
    rowsBody.textContent = "";
    nextCursor = null;
  } else if (nextCursor) {
    params.set("cursor", nextCursor);
  }
  params.set("limit", "200");
  status("searching…");
  try {
    const page = await getJSON("logs", params);
    for (const record of page.logs) rowsBody.appendChild(renderRecord(record, false));
    nextCursor = page.next;
    $("more").hidden = !nextCursor;
    status(`${rowsBody.rows.length} records shown${nextCursor ? ", more available" : ""}`);
  } catch (error) {
    status(error.message, true);
  }
  if (!append) histogram();
}

async function histogram() {
  const box = $("histogram");
  box.textContent = "";
  try {
    const stats = await getJSON("stats", filters());
    const buckets = stats.buckets || [];
    const peak = Math.max(1, ...buckets.map((b) => b.count));
    for (const bucket of buckets) {
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.height = (100 * bucket.count / peak) + "%";
      const levels = bucket.levels || {};
      const errors = ["emergency", "alert", "critical", "error"]
        .reduce((n, name) => n + (levels[name] || 0), 0);
      if (errors) {
        const err = document.createElement("div");
        err.className = "err";
        err.style.height = (100 * errors / Math.max(1, bucket.count)) + "%";
        bar.appendChild(err);
      }
      bar.title = `${bucket.start}: ${bucket.count} records, ${errors} errors or worse`;
      box.appendChild(bar);
    }
    box.dataset.total = stats.total;
  } catch (error) {
    box.dataset.total = "";
  }
}

// A minimal Server-Sent Events reader over fetch: events are separated by a
// blank line; "id:" and "data:" lines are used, comments (":") skipped.
async function readEvents(response, onEvent, signal) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  while (!signal.aborted) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      const event = { id: null, event: "message", data: [] };
      for (const line of block.split(/\r?\n/)) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") event.data.push(text);
        else if (field === "id") event.id = text;
        else if (field === "event") event.event = text;
      }
      if (event.data.length || event.id !== null) onEvent(event);
    }
  }
}

function startTail() {
  const controller = new AbortController();
  const state = { controller, lastId: null, stopped: false };
  const topId = rowsBody.rows.length ? rowsBody.rows[0].dataset.id : null;
  state.lastId = topId;
  $("tail").setAttribute("aria-pressed", "true");
  $("tail").textContent = "Stop tail";
  const run = async () => {
    while (!state.stopped) {
      const params = filters();
      if (state.lastId) params.set("since_id", state.lastId);
      try {
        const response = await fetch(new URL("logs/tail?" + params, API), {
          headers: headers({ Accept: "text/event-stream" }), signal: controller.signal,
        });
        if (!response.ok) {
          const body = await response.json().catch(() => ({}));
          status(`tail: ${response.status}: ${body.error || response.statusText}`, true);
          break;
        }
        status("live: waiting for records…");
        await readEvents(response, (event) => {
          if (event.id) state.lastId = event.id;
          if (!event.data.length) return;  // a position: nothing to show
          let record;
          try { record = JSON.parse(event.data.join("\n")); } catch (e) { return; }
          if (event.event !== "message" || !record || record.id === undefined) {
            // overflow / error: the server names where to resume from.
            if (record && record.last_id != null) state.lastId = String(record.last_id);
            status(`tail: ${record && record.error ? record.error : event.event}; resuming`);
            return;
          }
          rowsBody.insertBefore(renderRecord(record, true), rowsBody.firstChild);
          while (rowsBody.rows.length > MAX_ROWS) rowsBody.deleteRow(-1);
          status(`live: ${rowsBody.rows.length} records shown`);
        }, controller.signal);
      } catch (error) {
        if (state.stopped) break;
        status(`tail: ${error.message}; reconnecting`, true);
      }
      if (!state.stopped) await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  };
  run();
  return state;
}

function stopTail() {
  if (!tail) return;
  tail.stopped = true;
  tail.controller.abort();
  tail = null;
  $("tail").setAttribute("aria-pressed", "false");
  $("tail").textContent = "Live tail";
  status(`${rowsBody.rows.length} records shown`);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const wasTailing = !!tail;
  stopTail();
  search(false).then(() => { if (wasTailing) tail = startTail(); });
});
$("more").addEventListener("click", () => search(true));
$("tail").addEventListener("click", () => { if (tail) stopTail(); else tail = startTail(); });

fillForm(new URLSearchParams(window.location.search));
search(false).then(() => {
  if (new URLSearchParams(window.location.search).get("tail") === "1") tail = startTail();
});
