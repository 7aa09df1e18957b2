"""`/docs` works offline: Swagger UI comes from the copy shipped in the package, never a CDN."""
from __future__ import annotations

import re
from importlib import resources


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
