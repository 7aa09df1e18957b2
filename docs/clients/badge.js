// Poll the unread badge. Send the last ETag as If-None-Match: while nothing changed the answer
// is a 304 with no body. Wait as long as the server says in X-Poll-Interval before the next poll
// (it may raise it under load), and as long as Retry-After says after a 429 or 503.
const API = "/api/v2/ticketing";

function sleep(seconds, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, seconds * 1000);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

async function pollBadge({ baseUrl = "", getToken, tenantId, realm, onCount, signal }) {
  let etag = null;
  while (!signal?.aborted) {
    const headers = {
      Authorization: `Bearer ${await getToken()}`,  // a fresh token when the old one expires
      "x-tenantid": tenantId,
      realmname: realm,
      Accept: "application/json",
    };
    if (etag) headers["If-None-Match"] = etag;
    let wait = 30;
    try {
      const response = await fetch(`${baseUrl}${API}/ticket/notification/count?view=minimal`,
                                   { headers, signal });
      wait = Number(response.headers.get("X-Poll-Interval")) || wait;
      if (response.status === 200) {
        etag = response.headers.get("ETag");
        onCount((await response.json()).data.count);
      } else if (response.status !== 304) {  // 401: the next getToken() must renew it
        wait = Number(response.headers.get("Retry-After")) || wait;
      }
    } catch (error) {
      if (signal?.aborted) return;  // stopped by the page; otherwise offline: try again later
    }
    await sleep(wait, signal);
  }
}
