"""The development status page: served in development only, to loopback clients only."""
from __future__ import annotations

import pytest

from tally.settings import Development, Production, Test
from tally.app import create_app
from tally.dev.demo import DEMO_AGENT, DEMO_TENANT


@pytest.fixture
def build(db_url, redis_url, realms_file, var_dir):
    apps = []

    def make(config_class):
        app = create_app(config_class(), DATABASE_URL=db_url, REDIS_URL=redis_url,
                         REALMS_FILE=realms_file, VAR_DIR=var_dir)
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["tally"].db.engine.dispose()


def test_development_serves_the_page_and_a_demo_session(build):
    client = build(Development)
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert b"/ticket/notification/stream" in page.data and b'id="badge"' in page.data
    session = client.get("/status/session").get_json()
    assert session["tenantId"] == DEMO_TENANT and session["user"] == DEMO_AGENT
    assert session["token"].count(".") == 2 and "all" in session["filterIds"]


@pytest.mark.parametrize("config_class", [Test, Production])
def test_the_page_and_its_token_route_do_not_exist_outside_development(build, config_class):
    client = build(config_class)
    for path in ("/", "/status/session"):
        response = client.get(path)
        assert response.status_code == 404
        assert b"token" not in response.data


def test_the_token_route_answers_only_loopback_clients(build):
    client = build(Development)
    for path in ("/", "/status/session"):
        response = client.get(path, environ_base={"REMOTE_ADDR": "192.0.2.10"})
        assert response.status_code == 404
        assert b"token" not in response.data


def test_behind_the_edge_the_client_is_the_one_the_edge_names(build):
    # Given requests that came over gunicorn's unix socket (no REMOTE_ADDR): the edge's
    # X-Forwarded-For names who connected to it
    client = build(Development)
    edge = {"REMOTE_ADDR": ""}
    assert client.get("/", environ_base=edge,
                      headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200
    response = client.get("/status/session", environ_base=edge,
                          headers={"X-Forwarded-For": "127.0.0.1, 192.0.2.10"})
    assert response.status_code == 404 and b"token" not in response.data
    assert client.get("/", environ_base=edge).status_code == 404  # nobody named: not loopback


def test_a_tcp_clients_own_x_forwarded_for_is_not_believed(build):
    client = build(Development)
    response = client.get("/status/session", environ_base={"REMOTE_ADDR": "192.0.2.10"},
                          headers={"X-Forwarded-For": "127.0.0.1"})
    assert response.status_code == 404 and b"token" not in response.data
