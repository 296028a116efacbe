// Server-Sent Events read from a fetch() Response. EventSource cannot POST a file, so the
// stream is parsed here by the WHATWG rules a finite stream needs: `event`, `data` (lines
// joined by "\n"), comments, any of the three line endings; no reconnection (`id`, `retry`
// are ignored).

/** Yields {event, data} for each event of `response`'s body, as it arrives. */
export async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = "";
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      // A chunk may end between "\r" and "\n": keep a final "\r" for the next chunk.
      const end = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
      const lines = buffer.slice(0, end).split(/\r\n|\r|\n/);
      buffer = lines.pop() + buffer.slice(end);
      for (const line of lines) {
        if (line === "") {
          if (data.length) yield { event: event || "message", data: data.join("\n") };
          event = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") event = text;
        else if (field === "data") data.push(text);
      }
    }
  } finally {
    // Also when the reader of the events stops early: closes the connection.
    reader.cancel().catch(() => {});
  }
}
