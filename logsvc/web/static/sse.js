// A minimal Server-Sent Events reader over fetch (EventSource cannot send a
// bearer token): events are separated by a blank line; "id:", "event:" and
// "data:" lines are used, comments (":") skipped.  No DOM: node runs it in
// the tests.

/**
 * Read events from `response` until it ends or `signal` aborts.
 *
 * @param onEvent called with {id, event, data: [lines]} for each event.
 */
export async function readEvents(response, onEvent, signal) {
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
