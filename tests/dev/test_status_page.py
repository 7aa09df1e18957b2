"""The `make run` status page in a real headless browser: the badge moves after an event."""
from __future__ import annotations

import shutil
import uuid

import pytest
import requests

from tally.settings import Development
from tally.app import create_app
from tally.dev import keys as devkeys
from tally.dev.demo import DEMO_AGENT, DEMO_TENANT, demo_token, provision_demo
from tally.services import outbox
from tally.dev.launcher import EXAMPLE_FILTERS, RedisProcess
from tests.support.cdp import Browser, find_browser
from tests.support.web import Gunicorn, app_env

pytestmark = pytest.mark.slow

PREFIX = "/api/v2/ticketing"
NOW = "2025-07-10T12:00:00.000Z"
BADGE = "document.getElementById('badge').textContent"


@pytest.fixture(scope="module")
def browser():
    binary = find_browser()
    if binary is None:
        pytest.skip("no Chromium/Chrome found (.ci/run installs Debian's chromium; "
                    "or set TALLY_TEST_CHROMIUM)")
    opened = Browser(binary)
    yield opened
    opened.close()


@pytest.fixture
def demo_site(tmp_path, sqlite_template, realms_file, var_dir):
    """`make run`'s web process in development mode, on a small demo tenant."""
    db_path = tmp_path / "tally.db"
    shutil.copy(sqlite_template, db_path)
    redis_server = RedisProcess(workdir=str(tmp_path)).start()
    app = create_app(Development(), DATABASE_URL=f"sqlite:///{db_path}",
                     REDIS_URL=redis_server.url, REALMS_FILE=realms_file, VAR_DIR=var_dir)
    services = app.extensions["tally"]
    provision_demo(services, progress=lambda _line: None, tickets=40)
    env = app_env(f"sqlite:///{db_path}", redis_server.url, realms_file, var_dir,
                  TALLY_ENV="development", WEB_CONCURRENCY="1")
    web = Gunicorn(env, tmp_path / "web.log").start()
    try:
        yield web, services
    finally:
        web.stop()
        services.db.engine.dispose()
        redis_server.stop()


def unread(web, services) -> int:
    call = {"Authorization": f"Bearer {demo_token(services)}", "x-tenantid": DEMO_TENANT,
            "realmname": devkeys.DEV_REALM}
    answer = requests.get(f"{web.url}{PREFIX}/ticket/notification/count", headers=call,
                          timeout=30)
    return answer.json()["data"]["unread"]


def test_the_status_page_badge_moves_after_a_notification_created(browser, demo_site):
    web, services = demo_site
    before = unread(web, services)
    # Given the status page open in a browser, live on the stream, the sidebar filled
    browser.navigate(f"{web.url}/")
    browser.wait_for(BADGE, lambda text: text == str(before), 30, "the first badge")
    browser.wait_for("document.getElementById('state').textContent", lambda s: s == "live", 30,
                     "the stream to be live")
    counts = browser.wait_for(
        "[...document.querySelectorAll('#sidebar li .count')].map(e => e.textContent)",
        lambda found: found is not None and len(found) == len(EXAMPLE_FILTERS), 30,
        "the sidebar counts")
    assert all(text.isdigit() for text in counts) and int(counts[0]) > 0  # "all" comes first
    # When a notification.created event for the demo agent is accepted and applied
    service = devkeys.dev_token(services.config.VAR_DIR, tenant=DEMO_TENANT, user="svc",
                                roles=["ticket_service"])
    event = {"eventId": str(uuid.uuid4()), "type": "notification.created", "occurredAt": NOW,
             "data": {"id": f"n-browser-{uuid.uuid4().hex[:8]}", "userId": DEMO_AGENT,
                      "type": "mention", "ticketId": "TCK-00001", "priority": "critical",
                      "createdAt": NOW}}
    accepted = requests.post(f"{web.url}{PREFIX}/events", json={"events": [event]}, timeout=30,
                             headers={"Authorization": f"Bearer {service}",
                                      "x-tenantid": DEMO_TENANT,
                                      "realmname": devkeys.DEV_REALM})
    assert accepted.status_code == 202, accepted.text
    outbox.apply_pending(services, DEMO_TENANT)  # what the worker of `make run` does
    # Then the page shows the new badge, pushed by the stream (no reload)
    browser.wait_for(BADGE, lambda text: text == str(before + 1), 30, "the badge to move")
    assert browser.evaluate("document.getElementById('events').textContent") == "2"
