"""The development status page (`make run`): the demo agent's live badge and sidebar counts.

Registered only when TALLY_ENV=development, and answering only loopback clients even then: its
session route hands out a demo token signed with the local dev key. The page reads the stream
with fetch() (EventSource cannot send the headers every API call needs, contract §2).
"""
from __future__ import annotations

from importlib import resources

from flask import Blueprint, Response, abort, jsonify, request

from tally.dev import keys as devkeys
from tally.dev.demo import DEMO_AGENT, DEMO_TENANT, demo_token
from tally.extensions import services
from tally.dev.launcher import EXAMPLE_FILTERS

blp = Blueprint("status", __name__)
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
SESSION_TTL = 3600


def _local_only() -> None:
    if request.remote_addr not in LOOPBACK:
        abort(404)


@blp.route("/")
def page() -> Response:
    """The status page (static HTML and script)."""
    _local_only()
    html = (resources.files("tally.dev") / "status.html").read_text()
    response = Response(html, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route("/status/session")
def session() -> Response:
    """What the page needs to call the API as the demo agent: a short-lived dev token."""
    _local_only()
    response = jsonify({"tenantId": DEMO_TENANT, "realm": devkeys.DEV_REALM, "user": DEMO_AGENT,
                        "token": demo_token(services(), ttl=SESSION_TTL),
                        "filterIds": list(EXAMPLE_FILTERS)})
    response.headers["Cache-Control"] = "no-store"
    return response
