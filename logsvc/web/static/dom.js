// Building elements: text only ever goes in as textContent.

/** @returns a new `name` element with `className` and, when given, `text` as its text. */
export function element(name, className, text) {
  const el = document.createElement(name);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}
