"""Send change events to tally as the ticket service: batches, retries, idempotent eventIds."""
import os
import time
import uuid

import requests

API = "/api/v2/ticketing"
# One namespace for this producer's eventIds: the same change always gets the same id.
EVENT_NAMESPACE = uuid.UUID("6f1c2a7e-3d4b-4e5f-8a9b-0c1d2e3f4a5b")


def event_id(kind: str, entity_id: str, version: int) -> str:
    """A stable id for one change, so a resend (a retry, a replay after a crash) is known as a
    duplicate by tally and counted once, however often it arrives."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{kind}/{entity_id}/{version}"))


def send_events(base_url: str, token: str, tenant_id: str, realm: str, events: list[dict],
                session: requests.Session | None = None, attempts: int = 6) -> dict:
    """POST one batch (at most 5,000 events); on a network error, a 429 or a 5xx send the same
    body again, backing off. A 202 means every event is durably stored; any other 4xx means the
    batch is wrong and nothing of it was stored: fix it rather than resend it."""
    session = session or requests.Session()
    headers = {"Authorization": f"Bearer {token}", "x-tenantid": tenant_id,
               "realmname": realm, "Accept": "application/json"}
    attempt = 0
    while True:
        try:
            response = session.post(f"{base_url}{API}/events", json={"events": events},
                                    headers=headers, timeout=10)
        except (requests.ConnectionError, requests.Timeout):
            response = None
        if response is not None and response.status_code == 202:
            return response.json()["data"]  # {"accepted": n, "duplicates": m}
        if response is not None and response.status_code < 500 and \
                response.status_code != 429:
            raise ValueError(f"batch refused: {response.status_code} {response.text}")
        attempt += 1
        if attempt == attempts:
            raise ConnectionError("tally did not take the batch; keep it and send it later")
        retry_after = response.headers.get("Retry-After") if response is not None else None
        time.sleep(float(retry_after) if retry_after else min(0.5 * 2 ** attempt, 30))


if __name__ == "__main__":
    ticket = {"id": "TCK-1001", "version": 3, "status": "open", "priority": "high",
              "teamId": "team-blue", "assigneeId": "demo-agent", "requesterId": "customer-7",
              "createdAt": "2025-07-10T09:30:00.000Z"}
    batch = [{"eventId": event_id("ticket.upserted", ticket["id"], ticket["version"]),
              "type": "ticket.upserted", "occurredAt": "2025-07-10T09:31:00.000Z",
              "data": ticket}]
    print(send_events(os.environ.get("TALLY_URL", "http://127.0.0.1:8000"),
                      os.environ["TALLY_SERVICE_TOKEN"], os.environ["TALLY_TENANT"],
                      os.environ.get("TALLY_REALM", "tally-dev"), batch))
