"""`/openapi.json` is byte for byte the golden copy (tests/http/golden/openapi.json, as served at
e647450): a refactoring must not change the document. A deliberate change of the API rewrites
the golden copy in the same commit:

    .venv/bin/python -c "from tests.http.test_openapi_golden import write; write()"
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tally.app import create_app
from tally.dev import keys as devkeys
from tally.settings import Test

GOLDEN = Path(__file__).parent / "golden" / "openapi.json"
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def test_the_document_is_the_golden_copy(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.get_data() == GOLDEN.read_bytes()


def write() -> None:
    """Rewrite the golden copy from the current code (no database or Redis is reached)."""
    with tempfile.TemporaryDirectory() as var:
        app = create_app(Test(), DATABASE_URL=f"sqlite:///{var}/tally.db",
                         REDIS_URL="redis://localhost:1/0", VAR_DIR=var,
                         REALMS_FILE=devkeys.ensure_dev_realm(var))
        GOLDEN.write_bytes(app.test_client().get("/openapi.json").get_data())
