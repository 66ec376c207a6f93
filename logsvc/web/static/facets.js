// The facet sidebar: the top values of level, service and source (GET
// /stats?by=...) for the current query and range, and of the fields most
// frequent in the records shown, each with its count; a click filters for a
// value, its "−" filters it out.

import { getJSON } from "./api.js";
import { element } from "./dom.js";
import { termFor } from "./querytext.js";

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
 * @param termOf maps a value to its query term, or null.
 */
function section(title, note, values, total, termOf, onFilter) {
  const box = element("section", "facet");
  box.dataset.facet = title;
  const h = element("h3", "", title);
  if (note) h.appendChild(element("small", "", " " + note));
  box.appendChild(h);
  const list = element("ul");
  for (const { value, count } of values) {
    const term = termOf(value);
    const li = element("li");
    li.dataset.value = String(value);
    const label = value === "" ? "(empty)" : typeof value === "string" ? value : JSON.stringify(value);
    const name = element("button", "value", label);
    name.type = "button";
    name.title = term ? `filter for ${term}` : "";
    name.disabled = !term;
    name.addEventListener("click", () => onFilter(term, false));
    const out = element("button", "filter-out", "−");
    out.type = "button";
    out.title = term ? `filter out ${term}` : "";
    out.disabled = !term;
    out.addEventListener("click", () => onFilter(term, true));
    const bar = element("span", "bar");
    bar.style.width = (100 * count / Math.max(1, total)).toFixed(1) + "%";
    li.append(bar, name, element("span", "count", count.toLocaleString()), out);
    list.appendChild(li);
  }
  if (!values.length) list.appendChild(element("li", "none", "no values"));
  box.appendChild(list);
  return box;
}

/**
 * The fields most frequent in `records` and their top values there.
 *
 * @returns [{name, values: [{value, count}], count}], most frequent first.
 */
export function fieldsOfRecords(records) {
  const byName = new Map();
  for (const record of records) {
    for (const [name, value] of Object.entries(record.fields || {})) {
      if (value !== null && typeof value === "object") continue;
      let entry = byName.get(name);
      if (!entry) byName.set(name, (entry = { name, count: 0, counts: new Map() }));
      entry.count += 1;
      const key = JSON.stringify(value);
      entry.counts.set(key, (entry.counts.get(key) || 0) + 1);
    }
  }
  return [...byName.values()]
    // Of equally frequent fields, those with fewer distinct values say more.
    .sort((a, b) => b.count - a.count || a.counts.size - b.counts.size || a.name.localeCompare(b.name))
    .slice(0, FIELD_FACETS)
    .map(({ name, count, counts }) => ({
      name,
      count,
      values: [...counts.entries()]
        .map(([key, n]) => ({ value: JSON.parse(key), count: n }))
        .sort((a, b) => b.count - a.count || String(a.value).localeCompare(String(b.value)))
        .slice(0, TOP),
    }));
}

/**
 * Fill `box` with the facets of the search `params` (filters and range).
 *
 * @param records the records shown (the newest page): their fields' facets.
 * @param onFilter called with (term, negate).
 * @param signal aborts the requests when a newer search starts.
 * @returns a promise that resolves once the facets are drawn.
 */
export async function loadFacets(box, params, records, onFilter, signal) {
  const answers = await Promise.all(COLUMN_FACETS.map((by) => {
    const p = new URLSearchParams(params);
    p.set("by", by);
    p.set("limit", String(TOP));
    return getJSON("stats", p, signal).catch((error) => ({ error }));
  }));
  if (signal.aborted) return;
  box.textContent = "";
  COLUMN_FACETS.forEach((by, index) => {
    const answer = answers[index];
    if (answer.error) {
      const failed = element("section", "facet");
      failed.appendChild(element("h3", "", by));
      failed.appendChild(element("p", "error", answer.error.message));
      box.appendChild(failed);
      return;
    }
    box.appendChild(section(by, "", answer.values, answer.total, (value) => termFor(by, false, value), onFilter));
  });
  const fields = fieldsOfRecords(records);
  if (fields.length) {
    box.appendChild(element("h3", "fields-head", `Fields in the newest ${records.length}`));
  }
  for (const field of fields) {
    box.appendChild(section(field.name, `${field.count}`, field.values, records.length,
      (value) => termFor(field.name, true, value), onFilter));
  }
}
