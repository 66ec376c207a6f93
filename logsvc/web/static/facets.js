// The facet sidebar: the top values of level, service and source (GET
// /stats?by=...), and of the fields most frequent in the matches (GET
// /fields?values=N), for the current query and range, each with its count;
// a click filters for a value, its "−" filters it out.

import { getJSON } from "./api.js";
import { element } from "./dom.js";
import { filterFor, filterTerm } from "./querytext.js";

/** Values listed per facet. */
export const TOP = 8;
/** Fields given a facet of their own. */
export const FIELD_FACETS = 5;
const COLUMN_FACETS = ["level", "service", "source"];

/**
 * One facet's section.
 *
 * @param values [{value, count}], largest first.
 * @param total the records the counts are out of (for the bars).
 * @param filterOf maps a value to its filter (filterFor), or null.
 */
function section(title, note, values, total, filterOf, onFilter) {
  const box = element("section", "facet");
  box.dataset.facet = title;
  const h = element("h3", "", title);
  if (note) h.appendChild(element("small", "", " " + note));
  box.appendChild(h);
  const list = element("ul");
  for (const { value, count } of values) {
    const filter = filterOf(value);
    const li = element("li");
    li.dataset.value = typeof value === "string" ? value : JSON.stringify(value);
    const label = value === "" ? "(empty)" : typeof value === "string" ? value : JSON.stringify(value);
    const name = element("button", "value", label);
    name.type = "button";
    name.title = filter ? `filter for: ${filterTerm(filter, false)}` : "";
    name.disabled = !filter;
    name.addEventListener("click", () => onFilter(filter, false));
    const out = element("button", "filter-out", "−");
    out.type = "button";
    out.title = filter ? `filter out: ${filterTerm(filter, true)}` : "";
    out.disabled = !filter;
    out.addEventListener("click", () => onFilter(filter, true));
    const bar = element("span", "bar");
    bar.style.width = (100 * count / Math.max(1, total)).toFixed(1) + "%";
    li.append(bar, name, element("span", "count", count.toLocaleString()), out);
    list.appendChild(li);
  }
  if (!values.length) list.appendChild(element("li", "none", "no values"));
  box.appendChild(list);
  return box;
}

function failedSection(title, error) {
  const failed = element("section", "facet");
  failed.appendChild(element("h3", "", title));
  failed.appendChild(element("p", "error", error.message));
  return failed;
}

/** @returns the top values of `by` for the search `params`, or {error}. */
function topValues(params, by, signal) {
  const p = new URLSearchParams(params);
  p.set("by", by);
  p.set("limit", String(TOP));
  return getJSON("stats", p, signal).catch((error) => ({ error }));
}

/**
 * The most frequent fields of the search `params` with their top values,
 * in one request (GET /fields?values=N).
 *
 * @returns the answer, or {error}.
 */
function fieldValues(params, signal) {
  const p = new URLSearchParams(params);
  p.set("limit", String(FIELD_FACETS));
  p.set("values", String(TOP));
  return getJSON("fields", p, signal).catch((error) => ({ error }));
}

/**
 * Fill `box` with the facets of the search `params` (filters and range).
 *
 * @param onFilter called with (filter, negate).
 * @param signal aborts the requests when a newer search starts.
 * @returns a promise that resolves once the facets are drawn.
 */
export async function loadFacets(box, params, onFilter, signal) {
  const [columns, fields] = await Promise.all([
    Promise.all(COLUMN_FACETS.map((by) => topValues(params, by, signal))),
    fieldValues(params, signal),
  ]);
  if (signal.aborted) return;
  box.textContent = "";
  COLUMN_FACETS.forEach((by, index) => {
    const answer = columns[index];
    box.appendChild(answer.error ? failedSection(by, answer.error)
      : section(by, "", answer.values, answer.total, (value) => filterFor(by, false, value), onFilter));
  });
  if (fields.error) {
    box.appendChild(failedSection("fields", fields.error));
    return;
  }
  if (!fields.fields.length) return;
  const head = element("h3", "fields-head", "Fields");
  if (fields.sampled) head.appendChild(element("small", "", ` in the newest ${fields.total.toLocaleString()} matches`));
  box.appendChild(head);
  // The most telling first: fields most records have, with their values
  // concentrated in a few (a field with a value per record, an id or a
  // duration, says less as a facet).
  const ranked = fields.fields.slice().sort((a, b) => b.share * concentration(b) - a.share * concentration(a));
  for (const { name, share, values } of ranked) {
    box.appendChild(section(name, `${Math.round(100 * share)}%`, values, fields.total,
      (value) => filterFor(name, true, value), onFilter));
  }
}

/** @returns the part of the records with a field that its listed top values cover, 0..1. */
function concentration(field) {
  return field.count ? field.values.reduce((n, v) => n + v.count, 0) / field.count : 0;
}
