// Records as rows of the list and, opened, as a detail panel with every field.
// Log text only ever goes in as text (textContent, text nodes); the query's
// words are wrapped in <mark> elements built here, never parsed from HTML.

import { element } from "./dom.js";
import { formatRecordTime, zoneName } from "./timerange.js";
import { WORD, filterFor, filterTerm, isSearched } from "./querytext.js";

/** A message longer than this many lines or characters is folded in the list. */
export const FOLD_LINES = 4;
export const FOLD_CHARS = 600;

/**
 * Append `text` to `parent` as text, with each word the query looks for in a
 * <mark>.
 */
export function appendHighlighted(parent, text, searched) {
  if (!searched || (!searched.words.size && !searched.prefixes.length)) {
    parent.appendChild(document.createTextNode(text));
    return;
  }
  let at = 0;
  for (const found of text.matchAll(WORD)) {
    if (!isSearched(found[0], searched)) continue;
    if (found.index > at) parent.appendChild(document.createTextNode(text.slice(at, found.index)));
    parent.appendChild(element("mark", "", found[0]));
    at = found.index + found[0].length;
  }
  if (at < text.length) parent.appendChild(document.createTextNode(text.slice(at)));
}

/** @returns the folded head of a long message, or null when it is short enough. */
export function foldedHead(message) {
  const lines = message.split("\n");
  if (lines.length <= FOLD_LINES && message.length <= FOLD_CHARS) return null;
  return lines.slice(0, FOLD_LINES).join("\n").slice(0, FOLD_CHARS);
}

function messageCell(record, searched) {
  const td = element("td", "msg");
  const text = element("span", "text");
  const head = foldedHead(record.message);
  const fill = (folded) => {
    text.textContent = "";
    appendHighlighted(text, folded ? head : record.message, searched);
  };
  td.appendChild(text);
  if (head !== null) {
    fill(true);
    const lines = record.message.split("\n").length;
    const toggle = element("button", "fold", `show all (${lines} lines)`);
    toggle.type = "button";
    toggle.setAttribute("aria-expanded", "false");
    toggle.addEventListener("click", (event) => {
      event.stopPropagation();
      const open = toggle.getAttribute("aria-expanded") !== "true";
      fill(!open);
      toggle.setAttribute("aria-expanded", String(open));
      toggle.textContent = open ? "fold" : `show all (${lines} lines)`;
    });
    td.appendChild(toggle);
  } else {
    fill(false);
  }
  const names = Object.keys(record.fields || {});
  if (names.length) {
    const preview = names.slice(0, 6).map((k) => `${k}=${JSON.stringify(record.fields[k])}`).join(" ");
    td.appendChild(element("span", "fields", (names.length > 6 ? `${preview} …` : preview).slice(0, 300)));
  }
  return td;
}

/** @returns the list row of `record`. */
export function recordRow(record, zone, searched) {
  const tr = element("tr", "level-" + record.level);
  tr.dataset.id = record.id;
  tr.tabIndex = 0;
  tr.appendChild(element("td", "ts", formatRecordTime(record.ts, zone, 3)));
  const level = element("td", "level");
  level.appendChild(element("span", "badge", record.level));
  tr.appendChild(level);
  tr.appendChild(element("td", "service", record.service));
  tr.appendChild(element("td", "source", record.source));
  tr.appendChild(messageCell(record, searched));
  return tr;
}

/** Copy `text` to the clipboard; `button` says whether it worked. */
export async function copyText(text, button) {
  const label = button.textContent;
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch (e) {
    // No clipboard API (insecure context, permission): copy via a selection.
    const area = element("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    try { ok = document.execCommand("copy"); } catch (e2) { ok = false; }
    area.remove();
  }
  button.textContent = ok ? "copied" : "copy failed";
  setTimeout(() => { button.textContent = label; }, 1200);
}

function pretty(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

/**
 * Fill `panel` with every field of `record`.
 *
 * @param onFilter called with (filter, negate) for "filter for" / "filter out" (see filterFor).
 * @param link the URL of this view with the record open.
 */
export function showDetail(panel, record, { zone, searched, onFilter, onClose, link }) {
  panel.textContent = "";
  const head = element("div", "head");
  head.appendChild(element("h2", "", `Record ${record.id}`));
  const actions = element("div", "actions");
  const copyJSON = element("button", "copy-json", "copy JSON");
  copyJSON.type = "button";
  copyJSON.addEventListener("click", () => copyText(JSON.stringify(record, null, 2), copyJSON));
  const copyLink = element("button", "copy-link", "copy link");
  copyLink.type = "button";
  copyLink.addEventListener("click", () => copyText(link, copyLink));
  const close = element("button", "close", "×");
  close.type = "button";
  close.title = "close (Esc)";
  close.setAttribute("aria-label", "close");
  close.addEventListener("click", onClose);
  actions.append(copyJSON, copyLink, close);
  head.appendChild(actions);
  panel.appendChild(head);

  const table = element("table", "fields");
  const body = element("tbody");
  const row = (name, value, filter, shown) => {
    const tr = element("tr");
    tr.dataset.field = name;
    tr.appendChild(element("th", "", name));
    const td = element("td");
    const pre = element("pre", "value");
    appendHighlighted(pre, shown !== undefined ? shown : pretty(value), name === "message" ? searched : null);
    td.appendChild(pre);
    tr.appendChild(td);
    const buttons = element("td", "buttons");
    if (filter) {
      const plus = element("button", "filter-for", "+");
      plus.type = "button";
      plus.title = `filter for: ${filterTerm(filter, false)}`;
      plus.addEventListener("click", () => onFilter(filter, false));
      const minus = element("button", "filter-out", "−");
      minus.type = "button";
      minus.title = `filter out: ${filterTerm(filter, true)}`;
      minus.addEventListener("click", () => onFilter(filter, true));
      buttons.append(plus, minus);
    }
    const copy = element("button", "copy", "copy");
    copy.type = "button";
    copy.title = "copy the value";
    copy.addEventListener("click", () => copyText(pretty(value), copy));
    buttons.appendChild(copy);
    tr.appendChild(buttons);
    body.appendChild(tr);
  };
  row("ts", record.ts, filterFor("ts", false, record.ts), `${record.ts}\n${formatRecordTime(record.ts, zone)} ${zoneName(zone)}`);
  row("received", record.received, filterFor("received", false, record.received));
  row("level", record.level, filterFor("level", false, record.level));
  row("service", record.service, filterFor("service", false, record.service));
  row("source", record.source, filterFor("source", false, record.source));
  const short = record.message.length <= 200 && !record.message.includes("\n");
  row("message", record.message, short ? filterFor("message", false, record.message) : null);
  for (const [name, value] of Object.entries(record.fields || {}).sort(([a], [b]) => a.localeCompare(b))) {
    row("fields." + name, value, filterFor(name, true, value));
  }
  row("id", record.id, filterFor("id", false, record.id));
  table.appendChild(body);
  panel.appendChild(table);
  const raw = element("details", "raw");
  raw.appendChild(element("summary", "", "JSON"));
  raw.appendChild(element("pre", "", JSON.stringify(record, null, 2)));
  panel.appendChild(raw);
  panel.hidden = false;
}
