// The live tail: GET /logs/tail (Server-Sent Events) with the search's
// filters, resumed from the last id seen after a dropped connection or an
// overflow, and held while the user pauses.

import { APIError, apiURL, headers } from "./api.js";
import { readEvents } from "./sse.js";

/** Records held while paused; past this the oldest held are let go (still counted). */
export const MAX_HELD = 2000;
const RECONNECT_MS = 1000;

export class LiveTail {
  /**
   * @param params URLSearchParams of the search's filters (no time range:
   *     a tail is about what arrives from now on).
   * @param sinceId the id after which to start (the newest record shown), or null.
   * @param onRecords called with the records to show, oldest first.
   * @param onState called with {status, error, held} whenever those change.
   * @param onArrive called with each record as it arrives, paused or not
   *     (what counts the matches), before onRecords shows it.
   */
  constructor(params, sinceId, onRecords, onState, onArrive) {
    this.params = params;
    this.lastId = sinceId;
    this.onRecords = onRecords;
    this.onState = onState;
    this.onArrive = onArrive || (() => {});
    this.controller = new AbortController();
    this.stopped = false;
    this.paused = false;
    this.held = [];
    this.heldCount = 0;
  }

  start() {
    this.run();
    return this;
  }

  stop() {
    this.stopped = true;
    this.controller.abort();
  }

  /** Hold new records (counted) until resume(). */
  pause() {
    this.paused = true;
    this.report("paused");
  }

  /** Show the held records and go on live. */
  resume() {
    this.paused = false;
    const held = this.held;
    this.held = [];
    this.heldCount = 0;
    if (held.length) this.onRecords(held);
    this.report("live");
  }

  report(status, error) {
    this.onState({ status: this.paused ? "paused" : status, error: error || null, held: this.heldCount });
  }

  receive(record) {
    this.onArrive(record);
    if (!this.paused) {
      this.onRecords([record]);
      return;
    }
    this.held.push(record);
    this.heldCount += 1;
    if (this.held.length > MAX_HELD) this.held.shift();
    this.report("paused");
  }

  async run() {
    while (!this.stopped) {
      const params = new URLSearchParams(this.params);
      if (this.lastId) params.set("since_id", this.lastId);
      try {
        const response = await fetch(apiURL("logs/tail", params), {
          headers: headers({ Accept: "text/event-stream" }), signal: this.controller.signal,
        });
        if (!response.ok) {
          const body = await response.json().catch(() => ({}));
          const error = new APIError(response.status, body.error || response.statusText, body);
          this.report("stopped", error);
          return;
        }
        this.report("live");
        await readEvents(response, (event) => this.event(event), this.controller.signal);
      } catch (error) {
        if (this.stopped) return;
        this.report("reconnecting", error);
      }
      if (!this.stopped) await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  }

  event(event) {
    if (event.id) this.lastId = event.id;
    if (!event.data.length) return; // a position: nothing to show
    let record;
    try { record = JSON.parse(event.data.join("\n")); } catch (e) { return; }
    if (event.event !== "message" || !record || record.id === undefined) {
      // overflow / error: the server names where to resume from.
      if (record && record.last_id != null) this.lastId = String(record.last_id);
      this.report("reconnecting", new Error(record && record.error ? record.error : event.event));
      return;
    }
    this.receive(record);
  }
}
