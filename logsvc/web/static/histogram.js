// The histogram of matches over time (GET /stats): bars stacked by level, a
// time axis and a count axis, a hover with the counts of one bar, and a drag
// (or a click on one bar) that zooms into a range.  Drawn as SVG built with
// createElementNS; every text goes in as text.

import { UNITS, formatTime, tickLabel, timeTicks } from "./timerange.js";

const SVG = "http://www.w3.org/2000/svg";

/** Levels, most severe first: the order bars stack from the bottom up. */
export const LEVELS = ["emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"];

const HEIGHT = 150;
const MARGIN = { top: 10, right: 12, bottom: 34, left: 52 };
/** Count labels: 950, 1.2K, 3.4M, so they fit the margin. */
const COMPACT = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
/** A drag shorter than this (px) is a click. */
const DRAG_MIN = 4;

function svg(name, attributes, parent) {
  const el = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes || {})) el.setAttribute(key, String(value));
  if (parent) parent.appendChild(el);
  return el;
}

/** @returns a round step (1, 2 or 5 times a power of ten) with at most `most` steps up to `peak`. */
export function countStep(peak, most) {
  const raw = Math.max(1, peak / most);
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return Math.max(1, m * power);
  return 10 * power;
}

function intervalMs(text) {
  const found = /^(\d+)([smhd])$/.exec(text || "");
  return found ? Number(found[1]) * UNITS[found[2]] : UNITS.m;
}

/**
 * Count records into histogram buckets (the live tail's, after the stats
 * were read): a record inside `range` adds to its bucket; one past its end,
 * when `grow`, widens the range to take it, adding buckets of `width` ms
 * after the last.  Records before the range, or past a fixed end, are not
 * counted.  Changes `buckets` ({start, end, count, levels}) in place.
 *
 * @returns {counted, range}: how many records were counted, and the range
 *     (widened or not).
 */
export function countInto(buckets, range, width, records, grow) {
  let counted = 0;
  for (const record of records) {
    const t = Date.parse(record.ts);
    if (Number.isNaN(t) || t < range.since) continue;
    if (t >= range.until) {
      if (!grow) continue;
      range = { ...range, until: t + 1 };
    }
    let bucket = buckets.find((b) => b.start <= t && t < b.end);
    while (!bucket) {
      const last = buckets[buckets.length - 1];
      const start = last ? last.end : range.since + Math.floor((t - range.since) / width) * width;
      const added = { start, end: start + width, count: 0, levels: {} };
      buckets.push(added);
      if (t < added.end) bucket = added;
    }
    bucket.count += 1;
    bucket.levels[record.level] = (bucket.levels[record.level] || 0) + 1;
    counted += 1;
  }
  return { counted, range };
}

export class Histogram {
  /**
   * @param box the element to draw in.
   * @param onZoom called with (sinceMs, untilMs) when the user selects a range.
   */
  constructor(box, onZoom) {
    this.box = box;
    this.onZoom = onZoom;
    this.stats = null;
    this.range = null;
    this.zone = "local";
    this.drag = null;
    this.tip = document.createElement("div");
    this.tip.className = "tip";
    this.tip.hidden = true;
    this.tip.setAttribute("role", "tooltip");
    // The box changes width with the window and when the record panel opens.
    new ResizeObserver(() => this.draw()).observe(box);
    window.addEventListener("mousemove", (event) => this.dragMove(event));
    window.addEventListener("mouseup", (event) => this.dragEnd(event));
  }

  /**
   * @param stats a GET /stats answer.
   * @param range {since, until} in ms: the window asked for.
   */
  show(stats, range, zone) {
    this.stats = stats;
    this.range = range;
    this.zone = zone;
    this.buckets = (stats.buckets || []).map((bucket, index, all) => {
      const start = Date.parse(bucket.start);
      const end = index + 1 < all.length ? Date.parse(all[index + 1].start) : start + intervalMs(stats.interval);
      return { start, end, count: bucket.count, levels: bucket.levels || {} };
    });
    this.draw();
  }

  /**
   * Count records that arrived after the stats were read (the live tail's)
   * into their bars (see countInto); redraws at most once per frame.
   *
   * @param records records as the API returns them (ts, level).
   * @param grow whether the window's end follows the newest record.
   * @returns how many of `records` were counted.
   */
  addRecords(records, grow) {
    if (!this.stats) return 0;
    const { counted, range } = countInto(this.buckets, this.range, intervalMs(this.stats.interval), records, grow);
    this.range = range;
    if (counted && !this.redrawing) {
      this.redrawing = true;
      requestAnimationFrame(() => {
        this.redrawing = false;
        // A redraw in the middle of a drag would drop its selection.
        if (this.drag) this.redrawAfterDrag = true;
        else this.draw();
      });
    }
    return counted;
  }

  clear(message) {
    this.stats = null;
    this.box.textContent = "";
    // Collapsed, not hidden: the box keeps its width for the next draw to read.
    this.box.classList.toggle("cleared", !message);
    if (message) {
      const p = document.createElement("p");
      p.className = "empty";
      p.textContent = message;
      this.box.appendChild(p);
    }
  }

  draw() {
    if (!this.stats) return;
    this.box.classList.remove("cleared");
    this.box.textContent = "";
    const width = Math.max(300, this.box.clientWidth);
    const plotW = width - MARGIN.left - MARGIN.right;
    const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
    const start = this.range.since;
    const end = this.range.until;
    const x = (t) => MARGIN.left + ((Math.min(Math.max(t, start), end) - start) / (end - start)) * plotW;
    this.timeAt = (px) => start + ((Math.min(Math.max(px, MARGIN.left), MARGIN.left + plotW) - MARGIN.left) / plotW) * (end - start);
    const peak = Math.max(1, ...this.buckets.map((b) => b.count));
    const step = countStep(peak, 3);
    const top = Math.ceil(peak / step) * step;
    const y = (n) => MARGIN.top + plotH - (n / top) * plotH;

    const root = svg("svg", { width, height: HEIGHT, class: "chart", "aria-label": "matches over time" });
    const axis = svg("g", { class: "axis" }, root);
    for (let n = 0; n <= top; n += step) {
      svg("line", { x1: MARGIN.left, x2: MARGIN.left + plotW, y1: y(n), y2: y(n), class: n ? "grid" : "base" }, axis);
      const label = svg("text", { x: MARGIN.left - 6, y: y(n) + 4, "text-anchor": "end", class: "count" }, axis);
      label.textContent = COMPACT.format(n);
    }
    const { step: tickStep, ticks } = timeTicks(start, end, Math.max(2, Math.floor(plotW / 80)), this.zone);
    let previous = null;
    for (const tick of ticks) {
      const tx = x(tick);
      // A label centred on the right edge would be cut off.
      if (tx > width - 16) continue;
      svg("line", { x1: tx, x2: tx, y1: MARGIN.top + plotH, y2: MARGIN.top + plotH + 4, class: "base" }, axis);
      tickLabel(tick, tickStep, this.zone, previous).forEach((line, index) => {
        const label = svg("text", { x: tx, y: MARGIN.top + plotH + 16 + index * 12, "text-anchor": "middle", class: "time" }, axis);
        label.textContent = line;
      });
      previous = tick;
    }

    const bars = svg("g", { class: "bars" }, root);
    this.bars = this.buckets.map((bucket) => {
      const group = svg("g", { class: "bucket", "data-start": new Date(bucket.start).toISOString(), "data-count": bucket.count }, bars);
      const left = x(bucket.start);
      const barW = Math.max(1, x(bucket.end) - left - (plotW / this.buckets.length > 4 ? 1 : 0));
      let base = 0;
      for (const level of LEVELS) {
        const n = bucket.levels[level] || 0;
        if (!n) continue;
        svg("rect", { x: left, width: barW, y: y(base + n), height: Math.max(0.5, y(base) - y(base + n)), class: "level-" + level }, group);
        base += n;
      }
      return group;
    });

    this.selection = svg("rect", { class: "selection", x: 0, y: MARGIN.top, width: 0, height: plotH, visibility: "hidden" }, root);
    // One transparent rectangle takes every pointer event of the plot.
    this.overlay = svg("rect", { class: "overlay", x: MARGIN.left, y: MARGIN.top, width: plotW, height: plotH }, root);
    this.overlay.addEventListener("mousemove", (event) => this.hover(event));
    this.overlay.addEventListener("mouseleave", () => this.unhover());
    this.overlay.addEventListener("mousedown", (event) => this.dragStart(event));
    this.box.appendChild(root);
    this.box.appendChild(this.tip);
    this.svg = root;
  }

  localX(event) {
    return event.clientX - this.svg.getBoundingClientRect().left;
  }

  bucketAt(px) {
    const t = this.timeAt(px);
    return this.buckets.findIndex((b) => b.start <= t && t < b.end);
  }

  hover(event) {
    if (this.drag) return;
    const index = this.bucketAt(this.localX(event));
    this.unhover();
    if (index < 0) return;
    const bucket = this.buckets[index];
    this.bars[index].classList.add("hover");
    this.hovered = index;
    this.tip.textContent = "";
    const head = document.createElement("div");
    head.className = "when";
    head.textContent = `${formatTime(bucket.start, this.zone, "seconds")} – ${formatTime(bucket.end, this.zone, "seconds").slice(11)}`;
    this.tip.appendChild(head);
    const total = document.createElement("div");
    total.className = "total";
    total.textContent = `${bucket.count.toLocaleString()} ${bucket.count === 1 ? "match" : "matches"}`;
    this.tip.appendChild(total);
    for (const level of LEVELS) {
      if (!bucket.levels[level]) continue;
      const line = document.createElement("div");
      const swatch = document.createElement("span");
      swatch.className = "swatch level-" + level;
      line.appendChild(swatch);
      line.appendChild(document.createTextNode(`${level} ${bucket.levels[level].toLocaleString()}`));
      this.tip.appendChild(line);
    }
    this.tip.hidden = false;
    const px = this.localX(event);
    const boxWidth = this.box.clientWidth;
    this.tip.style.left = Math.min(px + 12, boxWidth - this.tip.offsetWidth - 4) + "px";
    this.tip.style.top = "4px";
  }

  unhover() {
    if (this.hovered !== undefined && this.bars[this.hovered]) this.bars[this.hovered].classList.remove("hover");
    this.hovered = undefined;
    this.tip.hidden = true;
  }

  dragStart(event) {
    if (event.button !== 0) return;
    event.preventDefault();
    this.unhover();
    this.drag = { from: this.localX(event), to: this.localX(event) };
  }

  dragMove(event) {
    if (!this.drag) return;
    this.drag.to = this.localX(event);
    const left = Math.max(MARGIN.left, Math.min(this.drag.from, this.drag.to));
    const right = Math.min(this.svg.width.baseVal.value - MARGIN.right, Math.max(this.drag.from, this.drag.to));
    this.selection.setAttribute("x", String(left));
    this.selection.setAttribute("width", String(Math.max(0, right - left)));
    this.selection.setAttribute("visibility", "visible");
  }

  dragEnd(event) {
    if (!this.drag) return;
    this.dragMove(event);
    const { from, to } = this.drag;
    this.drag = null;
    this.selection.setAttribute("visibility", "hidden");
    try {
      this.zoomToDrag(from, to);
    } finally {
      if (this.redrawAfterDrag) {
        this.redrawAfterDrag = false;
        this.draw();
      }
    }
  }

  zoomToDrag(from, to) {
    if (Math.abs(to - from) >= DRAG_MIN) {
      const a = this.timeAt(Math.min(from, to));
      const b = this.timeAt(Math.max(from, to));
      if (b > a) this.onZoom(Math.floor(a), Math.ceil(b));
      return;
    }
    // A click on a bar zooms into that bar's bucket.
    const index = this.bucketAt(from);
    if (index >= 0 && this.buckets[index].count) {
      const bucket = this.buckets[index];
      this.onZoom(Math.max(bucket.start, this.range.since), Math.min(bucket.end, this.range.until));
    }
  }
}
