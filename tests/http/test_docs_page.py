"""`/docs` works offline: Swagger UI comes from the copy shipped in the package, never a CDN."""
from __future__ import annotations

import re
import shutil
from importlib import resources

import pytest

from tests.support.cdp import Browser, find_browser
from tests.support.web import Gunicorn, app_env


def test_docs_references_only_local_assets_and_each_is_served(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) == 3, assets  # the stylesheet, the preset and the bundle
    assert "//" not in " ".join(assets), assets  # no scheme, no host: nothing leaves the machine
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        shipped = resources.files("tally") / asset.removeprefix("/")
        assert served.data == shipped.read_bytes(), asset
        served.close()
    assert '"/openapi.json"' in html


def test_the_shipped_swagger_ui_carries_its_licence_and_version():
    shipped = resources.files("tally") / "static" / "swagger-ui"
    assert "Apache License" in (shipped / "LICENSE").read_text()
    assert re.match(r"swagger-ui-dist \d+\.\d+\.\d+", (shipped / "VERSION").read_text())


@pytest.mark.slow
def test_a_browser_renders_the_docs_from_the_shipped_files(tmp_path, sqlite_template, redis_url,
                                                           realms_file, var_dir):
    binary = find_browser()
    if binary is None:
        pytest.skip("no Chromium/Chrome found (.ci/run installs Debian's chromium; "
                    "or set TALLY_TEST_CHROMIUM)")
    shutil.copy(sqlite_template, tmp_path / "tally.db")
    web = Gunicorn(app_env(f"sqlite:///{tmp_path / 'tally.db'}", redis_url, realms_file, var_dir,
                           WEB_CONCURRENCY="1"), tmp_path / "web.log").start()
    browser = Browser(binary)
    try:
        browser.navigate(f"{web.url}/docs")
        # Swagger UI drew the document's operations: its script ran and fetched /openapi.json
        operations = browser.wait_for(
            "document.querySelectorAll('.opblock-summary-path').length", lambda n: n and n > 5,
            30, "Swagger UI to draw the operations")
        assert operations >= 10
        assert browser.evaluate("document.querySelector('.info .title').textContent"
                                ).startswith("tally")
    finally:
        browser.close()
        web.stop()
