// Time ranges as the UI keeps them in the URL, and times as it shows them.
//
// A range is two texts, as typed and as linked: `since` and `until`.  Each is
// relative (`now`, `now-15m`, `15m`: kept as such, so a shared "last 15
// minutes" link stays the last 15 minutes) or absolute (RFC 3339 with a zone,
// epoch seconds, or `2026-12-04 10:00` read in the zone the UI shows).  The UI
// resolves both to instants once per search, so the histogram, the records and
// the facets of one view all agree on what "now" was.
//
// A zone is "local" (the browser's) or "utc".

export const UNITS = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

/** The presets of the time picker: [since, label]; until is now. */
export const PRESETS = [
  ["now-5m", "Last 5 minutes"],
  ["now-15m", "Last 15 minutes"],
  ["now-1h", "Last 1 hour"],
  ["now-6h", "Last 6 hours"],
  ["now-24h", "Last 24 hours"],
  ["now-7d", "Last 7 days"],
];

/** The window a view without a range shows: the histogram of all data is rarely useful. */
export const DEFAULT_SINCE = "now-24h";

const RELATIVE = /^(?:now\s*-\s*)?(\d+)\s*([smhdw])$/i;
const LOCAL = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?$/;
const ZONED = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[zZ]|[+-]\d{2}:?\d{2})$/;
const EPOCH = /^\d+(?:\.\d+)?$/;

/** A time the UI cannot read; `param` names the URL parameter. */
export class TimeError extends Error {
  constructor(param, message) {
    super(`${param}: ${message}`);
    this.param = param;
  }
}

/** @returns whether `text` is relative to now (and so kept as typed). */
export function isRelative(text) {
  const t = text.trim();
  return /^now$/i.test(t) || RELATIVE.test(t);
}

/**
 * @param text a time as described above; "" is not a time.
 * @param now the instant "now" means, ms since the epoch.
 * @param zone the zone a time without one is read in.
 * @param param the name used in errors.
 * @returns ms since the epoch.
 * @throws TimeError for text that is no time.
 */
export function parseMoment(text, now, zone, param) {
  const t = text.trim();
  if (/^now$/i.test(t)) return now;
  let found = RELATIVE.exec(t);
  if (found) return now - Number(found[1]) * UNITS[found[2].toLowerCase()];
  if (EPOCH.test(t)) return Math.floor(Number(t) * 1000);
  found = LOCAL.exec(t);
  if (found) {
    const [y, mo, d, h, mi, s] = found.slice(1, 7).map((v) => Number(v || 0));
    const ms = Number(((found[7] || "") + "000").slice(0, 3));
    const value = zone === "utc"
      ? Date.UTC(y, mo - 1, d, h, mi, s, ms)
      : new Date(y, mo - 1, d, h, mi, s, ms).getTime();
    const check = new Date(value);
    const month = zone === "utc" ? check.getUTCMonth() : check.getMonth();
    if (!Number.isNaN(value) && month === mo - 1) return value;
  } else if (ZONED.test(t)) {
    const value = Date.parse(t.replace(" ", "T"));
    if (!Number.isNaN(value)) return value;
  }
  throw new TimeError(param, `cannot read ${JSON.stringify(text)} as a time `
    + "(use now-15m, 15m, 2026-12-04 10:00, RFC 3339 or epoch seconds)");
}

/**
 * @param range {since, until} texts; an empty since is DEFAULT_SINCE, an empty until is now.
 * @returns {since, until} in ms, since < until.
 * @throws TimeError for an unreadable time or an empty range.
 */
export function resolveRange(range, now, zone) {
  const since = parseMoment(range.since || DEFAULT_SINCE, now, zone, "since");
  const until = range.until ? parseMoment(range.until, now, zone, "until") : now;
  if (since >= until) throw new TimeError("until", "must be later than since");
  return { since, until };
}

/** @returns an instant as RFC 3339 UTC with milliseconds, as the API takes it. */
export function isoUTC(ms) {
  return new Date(ms).toISOString();
}

/** @returns the name of `zone` as shown: "UTC" or the browser's zone name. */
export function zoneName(zone) {
  if (zone === "utc") return "UTC";
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
}

/** @returns the IANA name (or UTC) the /stats API aligns buckets in. */
export function zoneForAPI(zone) {
  if (zone === "utc") return "UTC";
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** @returns the UTC offset of `zone` at `ms`, as "UTC+01:00". */
export function offsetName(ms, zone) {
  if (zone === "utc") return "UTC";
  const minutes = -new Date(ms).getTimezoneOffset();
  const sign = minutes < 0 ? "-" : "+";
  const abs = Math.abs(minutes);
  return `UTC${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

function pad(n, width = 2) {
  return String(n).padStart(width, "0");
}

/** @returns the calendar fields of `ms` in `zone`. */
export function fields(ms, zone) {
  const d = new Date(ms);
  if (zone === "utc") {
    return { y: d.getUTCFullYear(), mo: d.getUTCMonth() + 1, d: d.getUTCDate(),
      h: d.getUTCHours(), mi: d.getUTCMinutes(), s: d.getUTCSeconds(), ms: d.getUTCMilliseconds() };
  }
  return { y: d.getFullYear(), mo: d.getMonth() + 1, d: d.getDate(),
    h: d.getHours(), mi: d.getMinutes(), s: d.getSeconds(), ms: d.getMilliseconds() };
}

/** @returns "YYYY-MM-DD" of `ms` in `zone`. */
export function formatDate(ms, zone) {
  const f = fields(ms, zone);
  return `${f.y}-${pad(f.mo)}-${pad(f.d)}`;
}

/**
 * @param precision "minutes", "seconds" or "millis".
 * @returns "YYYY-MM-DD HH:MM[:SS[.mmm]]" of `ms` in `zone`.
 */
export function formatTime(ms, zone, precision = "seconds") {
  const f = fields(ms, zone);
  let text = `${formatDate(ms, zone)} ${pad(f.h)}:${pad(f.mi)}`;
  if (precision !== "minutes") text += `:${pad(f.s)}`;
  if (precision === "millis") text += `.${pad(f.ms, 3)}`;
  return text;
}

/**
 * A record's timestamp (RFC 3339 UTC with microseconds, as the API gives it)
 * in `zone`, keeping the microseconds the API gave.
 */
export function formatRecordTime(ts, zone, digits = 6) {
  const ms = Date.parse(ts);
  if (Number.isNaN(ms)) return ts;
  const fraction = ((/\.(\d+)/.exec(ts) || [null, ""])[1] + "000000").slice(0, digits);
  return `${formatTime(ms, zone, "seconds")}.${fraction}`;
}

/** @returns how the picker's button names `range`. */
export function describeRange(range, zone) {
  const since = (range.since || DEFAULT_SINCE).trim();
  const until = (range.until || "").trim();
  const toNow = !until || /^now$/i.test(until);
  if (toNow) {
    const preset = PRESETS.find(([value]) => value === since.toLowerCase());
    if (preset) return preset[1];
    const found = RELATIVE.exec(since);
    if (found) return `Last ${found[1]}${found[2].toLowerCase()}`;
  }
  const show = (text) => {
    if (isRelative(text)) return text;
    try { return formatTime(parseMoment(text, Date.now(), zone, "time"), zone); } catch (e) { return text; }
  };
  return `${show(since)} → ${toNow ? "now" : show(until)}`;
}

/** Tick spacings the time axis picks from, ms. */
const TICK_STEPS = [1, 2, 5, 10, 15, 30].map((n) => n * UNITS.s)
  .concat([1, 2, 5, 10, 15, 30].map((n) => n * UNITS.m))
  .concat([1, 2, 3, 6, 12].map((n) => n * UNITS.h))
  .concat([1, 2, 7, 14, 30].map((n) => n * UNITS.d));

/**
 * Ticks for a time axis over [start, end): at most `most` of them, on round
 * times of `zone` (the hour, midnight).
 *
 * @returns {step, ticks: [ms]}.
 */
export function timeTicks(start, end, most, zone) {
  const span = Math.max(1, end - start);
  const step = TICK_STEPS.find((s) => span / s <= most) || TICK_STEPS[TICK_STEPS.length - 1];
  const offset = zone === "utc" ? 0 : -new Date(start).getTimezoneOffset() * UNITS.m;
  const ticks = [];
  for (let t = Math.ceil((start + offset) / step) * step - offset; t < end && ticks.length <= most; t += step) {
    ticks.push(t);
  }
  return { step, ticks };
}

/** @returns a tick's label lines: the time, and the date where the date changes. */
export function tickLabel(ms, step, zone, previous) {
  const f = fields(ms, zone);
  const date = `${pad(f.mo)}-${pad(f.d)}`;
  if (step >= UNITS.d) return [date];
  const time = step < UNITS.m ? `${pad(f.h)}:${pad(f.mi)}:${pad(f.s)}` : `${pad(f.h)}:${pad(f.mi)}`;
  const newDay = previous === null || formatDate(previous, zone) !== formatDate(ms, zone);
  return newDay ? [time, date] : [time];
}

/** @returns a duration in ms as "15m", "1h30m", "2d". */
export function formatDuration(ms) {
  const parts = [];
  let rest = Math.round(ms / 1000);
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]]) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.slice(0, 2).join("") || "0s";
}
