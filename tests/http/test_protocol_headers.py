"""The headers HTTP asks of some answers (issue 17 #12): a 401 names the Bearer scheme, a 429
or 503 says when to retry, a 201 where the created resource is."""
from __future__ import annotations

import pytest

from tests.support.api import API, BODIES, error_of

BADGE = API + "/ticket/notification/count"
FILTERS = API + "/filters"


def test_a_401_names_the_bearer_scheme_and_an_invalid_token(client, headers):
    call = headers()
    missing = client.get(BADGE, headers={k: v for k, v in call.items() if k != "Authorization"})
    error_of(missing, 401, "UNAUTHORIZED")
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    for sent in ("Bearer not.a.token", "Basic dXNlcjpwYXNz", "Bearer " + "a" * 40000):
        refused = client.get(BADGE, headers={**call, "Authorization": sent})
        error_of(refused, 401, "UNAUTHORIZED")
        assert refused.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"', sent


@pytest.mark.parametrize("failure", ["database", "counter store"])
def test_a_503_says_when_to_retry(app, client, headers, failure):
    """Whatever stands behind the 503: a driver error (the renderer's SQLAlchemy path) or a
    TallyError (StoreUnavailable)."""
    from sqlalchemy.exc import OperationalError

    from tally.errors import StoreUnavailable
    from tally.http.api import RETRY_AFTER_SECONDS

    def down(*_args, **_kwargs):
        if failure == "database":
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        raise StoreUnavailable()

    app.extensions["tally"].filter_catalog.list_visible = down
    response = client.get(FILTERS, headers=headers())
    error_of(response, 503, "SERVICE_UNAVAILABLE")
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)


def test_a_created_filter_answers_its_location(client, headers):
    call = headers()
    response = client.post(FILTERS, json=BODIES[FILTERS], headers=call)
    assert response.status_code == 201
    created = response.get_json()["data"]["id"]
    assert response.headers["Location"] == f"{FILTERS}/{created}"
    assert client.delete(response.headers["Location"], headers=call).status_code == 200
