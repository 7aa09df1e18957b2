def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_reports_database_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_openapi_document_is_served(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.get_json()["info"]["title"] == "tally"


def test_a_path_with_a_double_slash_is_a_404_envelope_not_a_redirect(client, headers):
    for path in ("/api/v2/ticketing//ticket/notification/count",
                 "/api/v2//ticketing/ticket/notification/count", "/api/v2/ticketing/filters//"):
        response = client.get(path, headers=headers())
        assert (response.status_code, response.mimetype) == (404, "application/json"), path
        assert response.get_json()["error"]["code"] == "NOT_FOUND"
