"""The benchmark's baseline route: off by default, a constant body of the asked size when on."""
from __future__ import annotations

import json

import pytest

from tally.errors import ConfigError
from tally.settings import Test, from_env
from tally.app import create_app
from tally.dev import baseline


@pytest.fixture
def build(realms_file, var_dir):
    """An app that never connects (the baseline touches neither SQL nor Redis)."""

    def make(**overrides):
        return create_app(Test(), DATABASE_URL="sqlite:///:memory:", REALMS_FILE=realms_file,
                          VAR_DIR=var_dir, **overrides)

    return make


def test_baseline_is_absent_unless_enabled(build):
    response = build().test_client().get(baseline.PATH)

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "NOT_FOUND"


def test_baseline_answers_a_constant_json_body_of_the_asked_size(build):
    client = build(BENCH_BASELINE=True).test_client()

    default = client.get(baseline.PATH)
    sized = client.post(baseline.PATH + "?bytes=2048", json={"filterIds": ["all"]})

    assert default.status_code == 200 and len(default.data) == baseline.DEFAULT_BYTES
    assert sized.status_code == 200 and len(sized.data) == 2048
    assert sized.mimetype == "application/json"
    assert json.loads(sized.data)["success"] is True
    assert client.post(baseline.PATH + "?bytes=2048").data == sized.data


@pytest.mark.parametrize("raw", ["12", "x", "-5", str(baseline.MAX_BYTES + 1)])
def test_a_bad_size_is_a_validation_error(build, raw):
    response = build(BENCH_BASELINE=True).test_client().get(f"{baseline.PATH}?bytes={raw}")

    assert response.status_code == 400
    body = response.get_json()
    assert body["error"]["code"] == "VALIDATION_ERROR" and "bytes" in body["error"]["details"]


def test_the_flag_is_read_from_the_environment_strictly():
    assert from_env({}).BENCH_BASELINE is False
    assert from_env({"TALLY_BENCH_BASELINE": "true"}).BENCH_BASELINE is True
    with pytest.raises(ConfigError, match="TALLY_BENCH_BASELINE"):
        from_env({"TALLY_BENCH_BASELINE": "maybe"})
