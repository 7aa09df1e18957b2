"""The benchmark's rulers answer exactly the bytes asked, as application/json, to any request."""
from __future__ import annotations

import importlib
import io

import pytest
from werkzeug.test import Client

from bench import bare
from bench.loads import path_of
from bench.wrk import HttpCall

PATH = "/api/v2/ticketing/ticket/count"


@pytest.mark.parametrize("size", [0, bare.MIN_JSON_BYTES, 1_234])
def test_bare_app_answers_exactly_the_asked_bytes_at_its_one_path(size):
    client = bare.make_app(size, PATH).test_client()

    got = client.get(PATH, headers={"Authorization": "Bearer x"})
    posted = client.post(f"{PATH}?type=agent", data=b'{"filterIds": []}',
                         content_type="application/json")

    for response in (got, posted):
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        assert len(response.get_data()) == size == int(response.headers["Content-Length"])
    assert client.get("/elsewhere").status_code == 404


@pytest.mark.parametrize("size", [0, 700])
def test_raw_callable_reads_the_body_and_answers_the_same_bytes_as_the_app(size):
    body = io.BytesIO(b'{"filterIds": []}')
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/any", "CONTENT_LENGTH": "17",
               "wsgi.input": body}
    started = []

    chunks = bare.make_raw(size)(environ, lambda *response: started.append(response))

    assert body.tell() == 17
    assert b"".join(chunks) == bare.body(size)
    assert started == [("200 OK", [("Content-Type", "application/json"),
                                   ("Content-Length", str(size))])]
    response = Client(bare.make_raw(size)).get("/")
    assert len(response.get_data()) == size and response.mimetype == "application/json"


def test_a_body_too_small_for_the_json_envelope_is_refused():
    with pytest.raises(ValueError):
        bare.body(bare.MIN_JSON_BYTES - 1)


def test_gunicorn_targets_take_size_and_path_from_the_environment(monkeypatch):
    monkeypatch.setenv(bare.SIZE_VARIABLE, "321")
    monkeypatch.setenv(bare.PATH_VARIABLE, PATH)
    try:
        module = importlib.reload(bare)
        assert len(module.app.test_client().get(PATH).get_data()) == 321
        assert len(b"".join(module.raw({}, lambda *_: None))) == 321
    finally:
        monkeypatch.undo()
        importlib.reload(bare)


def test_a_row_is_served_at_the_one_path_its_requests_share():
    assert path_of([HttpCall("POST", f"{PATH}?type=agent", {}),
                    HttpCall("POST", f"{PATH}?type=template", {})]) == PATH
    with pytest.raises(ValueError):
        path_of([HttpCall("GET", PATH, {}), HttpCall("GET", "/other", {})])
