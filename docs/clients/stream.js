// Follow the badge as Server-Sent Events with fetch(): EventSource cannot send the
// Authorization, x-tenantid and realmname headers every call needs. After a dropped connection
// (or the server ending a stream after its longest life) reconnect with Last-Event-ID: the
// server then sends an event at once only if the count changed meanwhile.
const STREAM = "/api/v2/ticketing/ticket/notification/stream";

function parseEvent(block) {
  const event = { event: "message", data: [] };
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;  // a keep-alive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") event.data.push(value);
    else event[field] = value;
  }
  return { ...event, data: event.data.join("\n") };
}

async function followBadge({ baseUrl = "", getToken, tenantId, realm, onCount, signal }) {
  let lastEventId = null;
  let retryMs = 1000;
  while (!signal?.aborted) {
    const headers = {
      Authorization: `Bearer ${await getToken()}`,
      "x-tenantid": tenantId,
      realmname: realm,
      Accept: "text/event-stream",
    };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    let wait = retryMs;
    try {
      const response = await fetch(`${baseUrl}${STREAM}`, { headers, signal });
      if (response.ok) {
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;  // the server ended this stream: reconnect
          buffer += value.replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const event = parseEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (event.retry) retryMs = Number(event.retry) || retryMs;
            if (event.id) lastEventId = event.id;
            if (event.event === "count") onCount(JSON.parse(event.data));
          }
        }
        wait = retryMs;
      } else {  // 503 at the server's stream bound: Retry-After says when to come back
        wait = (Number(response.headers.get("Retry-After")) || 5) * 1000;
      }
    } catch (error) {
      if (signal?.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}
