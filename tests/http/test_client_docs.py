"""docs/clients.md: its snippets are the files in docs/clients/, and each runs against a real tally
(gunicorn and a worker process): the Python producer as it is, the browser JavaScript with Node."""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import requests

from tally.app import create_app
from tally.dev import keys as devkeys
from tally.dev.demo import DEMO_AGENT, DEMO_SERVICE, DEMO_TENANT, demo_token, provision_demo
from tally.dev.launcher import RedisProcess
from tally.settings import Test
from tests.support import processes as procs
from tests.support.web import Gunicorn, app_env

DOCS = procs.ROOT / "docs"
PREFIX = "/api/v2/ticketing"
NOW = "2025-07-10T12:00:00.000Z"


def test_the_guide_quotes_each_snippet_file_verbatim():
    text = (DOCS / "clients.md").read_text()
    quoted = re.findall(r"<!-- file: (\S+) -->\n```\w+\n(.*?)```", text, flags=re.S)
    assert [name for name, _ in quoted] == ["docs/clients/badge.js", "docs/clients/stream.js",
                                            "docs/clients/producer.py"]
    for name, body in quoted:
        assert body == (procs.ROOT / name).read_text(), name
    assert len(re.findall(r"^```\w+$", text, flags=re.M)) == len(quoted)  # no other code block


@pytest.fixture(scope="module")
def live(tmp_path_factory, sqlite_template, realms_file, var_dir):
    """gunicorn and a worker on a small demo tenant; polls every second, streams live 1 s."""
    tmp = tmp_path_factory.mktemp("clients")
    db_url = f"sqlite:///{tmp / 'tally.db'}"
    shutil.copy(sqlite_template, tmp / "tally.db")
    redis_server = RedisProcess(workdir=str(tmp)).start()
    app = create_app(Test(), DATABASE_URL=db_url, REDIS_URL=redis_server.url,
                     REALMS_FILE=realms_file, VAR_DIR=var_dir)
    svc = app.extensions["tally"]
    provision_demo(svc, progress=lambda _line: None, tickets=40)
    env = app_env(db_url, redis_server.url, realms_file, var_dir, TALLY_POLL_INTERVAL="1",
                  TALLY_STREAM_MAX_SECONDS="1", WEB_CONCURRENCY="1")
    web = Gunicorn(env, tmp / "web.log").start()
    worker = procs.start("tally.workers.run", env, log=tmp / "worker.log")
    try:
        yield web, svc
    finally:
        procs.stop(worker)
        web.stop()
        svc.db.engine.dispose()
        redis_server.stop()


def _unread(web, svc) -> int:
    call = {"Authorization": f"Bearer {demo_token(svc)}", "x-tenantid": DEMO_TENANT,
            "realmname": devkeys.DEV_REALM}
    return requests.get(f"{web.url}{PREFIX}/ticket/notification/count", headers=call,
                        timeout=30).json()["data"]["unread"]


def _service_token(svc) -> str:
    return demo_token(svc, user=DEMO_SERVICE, roles=("ticket_service",), teams=())


def _notification() -> dict:
    data = {"id": f"NTF-doc-{uuid.uuid4().hex[:8]}", "userId": DEMO_AGENT, "type": "mention",
            "priority": "high", "createdAt": NOW}
    return {"eventId": str(uuid.uuid4()), "type": "notification.created", "occurredAt": NOW,
            "data": data}


def _producer():
    spec = importlib.util.spec_from_file_location("tally_doc_producer",
                                                  DOCS / "clients" / "producer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _DropsFirstCall(requests.Session):
    """A session whose first POST fails as a dropped connection would."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def post(self, url, **kwargs):  # noqa: ANN001, ANN201
        self.bodies.append(json.dumps(kwargs["json"]).encode())
        if len(self.bodies) == 1:
            raise requests.ConnectionError("connection reset (injected)")
        return super().post(url, **kwargs)


@pytest.mark.slow
def test_the_python_producer_retries_and_its_event_ids_make_resends_harmless(live, monkeypatch):
    web, svc = live
    producer = _producer()
    monkeypatch.setattr(producer.time, "sleep", lambda _seconds: None)
    before = _unread(web, svc)
    note = _notification()
    note["eventId"] = producer.event_id(note["type"], note["data"]["id"], 1)
    args = (web.url, _service_token(svc), DEMO_TENANT, devkeys.DEV_REALM, [note])
    # A dropped connection is retried with the same body, which is then accepted once
    session = _DropsFirstCall()
    sent = producer.send_events(*args, session=session)
    assert (sent["accepted"], sent["duplicates"]) == (1, 0) and sent["watermark"]
    assert len(session.bodies) == 2 and session.bodies[0] == session.bodies[1]
    # Sent again (a replay after a crash): a duplicate, counted once
    again = producer.send_events(*args)
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    assert producer.event_id(note["type"], note["data"]["id"], 1) == note["eventId"]
    procs.wait_until(lambda: _unread(web, svc) == before + 1, 30, "the worker to apply it")
    # A bad batch is refused, not retried
    bad = dict(note, type="notification.exploded")
    with pytest.raises(ValueError, match="400"):
        producer.send_events(*args[:4], [bad])


NODE_HARNESS = r"""
const fs = require("fs");
const vm = require("vm");
vm.runInThisContext(fs.readFileSync(process.env.SNIPPET, "utf8"));
const cfg = JSON.parse(process.env.CONFIG);
const realFetch = globalThis.fetch;
const calls = [];
const counts = [];
const controller = new AbortController();
let posted = false;
async function postEvent() {
  posted = true;
  const response = await realFetch(cfg.baseUrl + "/api/v2/ticketing/events", {
    method: "POST", body: JSON.stringify({events: [cfg.event]}),
    headers: {Authorization: "Bearer " + cfg.serviceToken, "x-tenantid": cfg.tenantId,
              realmname: cfg.realm, "content-type": "application/json"}});
  if (response.status !== 202) throw new Error("event refused: " + response.status);
}
globalThis.fetch = async (url, init) => {
  const sent = {ifNoneMatch: init.headers["If-None-Match"] || null,
                lastEventId: init.headers["Last-Event-ID"] || null};
  // The event is posted once the client shows it waits for a change: a 304, or a resume.
  if (!posted && (sent.lastEventId || calls.some((call) => call.status === 304))) {
    await postEvent();
  }
  const response = await realFetch(url, init);
  calls.push({...sent, status: response.status,
              pollInterval: response.headers.get("X-Poll-Interval")});
  return response;
};
const onCount = (value) => {
  counts.push(value);
  if (counts.length === 2) controller.abort();
};
const run = globalThis[process.env.ENTRY]({baseUrl: cfg.baseUrl, getToken: () => cfg.token,
  tenantId: cfg.tenantId, realm: cfg.realm, onCount, signal: controller.signal});
run.then(() => console.log(JSON.stringify({counts, calls})));
"""


def _node(snippet: str, entry: str, web, svc, tmp_path: Path) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node on PATH: the JavaScript snippets cannot run here")
    harness = tmp_path / "harness.js"
    harness.write_text(NODE_HARNESS)
    config = {"baseUrl": web.url, "token": demo_token(svc), "serviceToken": _service_token(svc),
              "tenantId": DEMO_TENANT, "realm": devkeys.DEV_REALM, "event": _notification()}
    done = subprocess.run([node, str(harness)], capture_output=True, text=True, timeout=90,
                          env={"PATH": "/usr/bin:/bin", "CONFIG": json.dumps(config),
                               "SNIPPET": str(DOCS / "clients" / snippet), "ENTRY": entry})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_the_badge_poller_sends_its_etag_and_waits_as_told(live, tmp_path):
    web, svc = live
    before = _unread(web, svc)
    seen = _node("badge.js", "pollBadge", web, svc, tmp_path)
    assert seen["counts"] == [before, before + 1]
    calls = seen["calls"]
    assert calls[0]["ifNoneMatch"] is None and calls[0]["status"] == 200
    assert all(call["ifNoneMatch"] for call in calls[1:])  # every later poll is conditional
    assert 304 in [call["status"] for call in calls] and calls[-1]["status"] == 200
    assert {call["pollInterval"] for call in calls} == {"1"}


@pytest.mark.slow
def test_the_stream_reader_resumes_with_last_event_id(live, tmp_path):
    web, svc = live
    before = _unread(web, svc)
    seen = _node("stream.js", "followBadge", web, svc, tmp_path)
    assert [count["unread"] for count in seen["counts"]] == [before, before + 1]
    calls = seen["calls"]
    assert calls[0]["lastEventId"] is None
    assert len(calls) >= 2 and all(call["lastEventId"] for call in calls[1:])
    assert all(call["status"] == 200 for call in calls)
