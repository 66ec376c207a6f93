// The search box's text, as the UI edits and reads it: "filter for" and
// "filter out" add a field term (`service:api`, `-service:api`) so the user
// sees the query language, and the words a query looks for are highlighted in
// messages.  The server parses queries; this module only writes terms it can
// read and reads the plain words back.

/** The record's own columns: a field with one of these names is `fields.NAME`. */
export const COLUMNS = ["id", "ts", "received", "level", "source", "service", "message"];

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_.]*$/;
const BARE = /^[A-Za-z0-9_][A-Za-z0-9_.\-]*$/;
const OPERATORS = new Set(["AND", "OR", "NOT"]);

/** @returns `value` as the query language writes it: bare when safe, else quoted. */
export function quoteValue(value) {
  const text = String(value);
  if (BARE.test(text) && !OPERATORS.has(text)) return text;
  return '"' + text.replace(/[\\"]/g, (c) => "\\" + c) + '"';
}

/**
 * How to filter for a value: `term` added to the query filters for it (its
 * exclusion, `-term`, filters it out), or the other way round when `invert`.
 *
 * @param name a column (`level`, `service`, `source`, `message`) or a field name.
 * @param isField whether `name` names a field of the record's `fields`.
 * @param value the value to match exactly (string, number, boolean or null).
 * @returns {term, invert}, or null when the language cannot name the value
 *     (an object or array, an empty field, a field name that is no identifier).
 */
export function filterFor(name, isField, value) {
  if (value !== null && typeof value === "object") return null;
  if (!isField && name === "message") return value ? { term: quoteValue(value), invert: false } : null;
  if (value === "") {
    // An empty value cannot be written; an empty service or source is one
    // without a value, which `service:*` leaves out.
    return !isField && (name === "service" || name === "source") ? { term: `${name}:*`, invert: true } : null;
  }
  let key = name;
  if (isField) {
    if (!IDENTIFIER.test(name)) return null;
    if (COLUMNS.includes(name)) key = "fields." + name;
  }
  return { term: `${key}:${value === null ? "null" : quoteValue(value)}`, invert: false };
}

/** @returns the term a filter adds to the query: `negate` filters the value out. */
export function filterTerm(filter, negate) {
  return negate !== filter.invert ? "-" + filter.term : filter.term;
}

/** @returns the terms of `q` as written, split on whitespace outside quotes. */
export function splitTerms(q) {
  const terms = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < q.length; i++) {
    const c = q[i];
    if (quoted && c === "\\" && i + 1 < q.length) {
      current += c + q[++i];
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (!quoted && /\s/.test(c)) {
      if (current) terms.push(current);
      current = "";
    } else {
      current += c;
    }
  }
  if (current) terms.push(current);
  return terms;
}

/**
 * Add a filter (`filterFor`) to `q`, or its exclusion when `negate`: the
 * opposite term, when there, is removed first; a term already there is not
 * added twice.
 */
export function addFilter(q, filter, negate) {
  const wanted = filterTerm(filter, negate);
  const opposite = filterTerm(filter, !negate);
  const terms = splitTerms(q).filter((t) => t !== opposite);
  if (!terms.includes(wanted)) terms.push(wanted);
  return terms.join(" ");
}

/** A word as the server's index cuts text: a run of letters and digits. */
export const WORD = /[\p{L}\p{N}]+/gu;

/**
 * The words and prefixes a query looks for in messages (positive free text
 * only: field terms, comparisons, exclusions, operators and regular
 * expressions are not highlighted).
 *
 * @returns {words: Set of lower-case words, prefixes: [lower-case prefix]}.
 */
export function searchedWords(q) {
  const words = new Set();
  const prefixes = [];
  for (let term of splitTerms(q)) {
    term = term.replace(/^\(+/, "").replace(/\)+$/, "");
    if (!term || term.startsWith("-") || term.startsWith("~") || OPERATORS.has(term)) continue;
    if (/^[A-Za-z_][A-Za-z0-9_.]*(:|[<>]=?|=)/.test(term)) continue;
    const prefix = /\*$/.test(term);
    const found = term.toLowerCase().match(WORD) || [];
    found.forEach((word, index) => {
      if (prefix && index === found.length - 1) prefixes.push(word);
      else words.add(word);
    });
  }
  return { words, prefixes };
}

/** @returns whether one word of a message is one `searchedWords` looks for. */
export function isSearched(word, searched) {
  const lower = word.toLowerCase();
  return searched.words.has(lower) || searched.prefixes.some((p) => lower.startsWith(p));
}
