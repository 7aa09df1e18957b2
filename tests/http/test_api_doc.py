"""docs/api.md's reference section is generated from `/openapi.json`: every path, method,
parameter, header, status and schema of the document is in it, and it is rewritten with the
API (a change of the document fails here until the doc is regenerated in the same commit):

    .venv/bin/python -c "from tests.http.test_api_doc import write; write()"
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tally.app import create_app
from tally.dev import keys as devkeys
from tally.settings import Test

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BEGIN = "<!-- generated from /openapi.json: tests/http/test_api_doc.py; do not edit below -->"
END = "<!-- end of the generated reference -->"
METHODS = ("get", "post", "put", "patch", "delete")
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _ref(value: dict[str, Any]) -> str:
    return value["$ref"].rsplit("/", 1)[1]


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return f"[{_ref(schema)}](#{_ref(schema).lower()})"
    if schema.get("type") == "array":
        return f"array of {_type(schema.get('items', {}))}"
    kind = schema.get("type", "any")
    if "enum" in schema:
        kind += " (" + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"]) + ")"
    elif "format" in schema:
        kind += f" ({schema['format']})"
    return kind + (" or null" if schema.get("nullable") else "")


def render(spec: dict[str, Any]) -> str:
    """The reference section of docs/api.md for an OpenAPI document."""
    out = [BEGIN, "", "## Endpoints", ""]
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            out += [f"### `{method.upper()} {path}`", "", _cell(op.get("summary", "")), ""]
            if op.get("description"):
                out += [op["description"].strip(), ""]
            params = shared + op.get("parameters", [])
            if params:
                out += ["| parameter | in | required | type | meaning |", "|---|---|---|---|---|"]
                out += [f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} | "
                        f"{_type(p.get('schema', {}))} | {_cell(p.get('description', ''))} |"
                        for p in params]
                out.append("")
            body = op.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                out += [f"Body (`{media}`): {_type(content['schema'])}", ""]
            out += ["| status | meaning | body | headers |", "|---|---|---|---|"]
            for status, response in sorted(op["responses"].items(),
                                           key=lambda pair: (pair[0] == "default", pair[0])):
                if "$ref" in response:
                    response = spec["components"]["responses"][_ref(response)]
                schemas = [_type(c["schema"]) for c in response.get("content", {}).values()
                           if "schema" in c]
                media = ", ".join(f"`{m}`" for m in response.get("content", {})
                                  if "schema" not in response["content"][m])
                heads = ", ".join(f"`{h}`" for h in response.get("headers", {}))
                out.append(f"| {status} | {_cell(response.get('description', ''))} | "
                           f"{', '.join(schemas) or media or '—'} | {heads or '—'} |")
            out.append("")
    out += ["## Response headers", "", "| header | meaning |", "|---|---|"]
    out += [f"| `{name}` | {_cell(h.get('description', ''))} |"
            for name, h in spec["components"].get("headers", {}).items()]
    out += ["", "## Schemas", ""]
    for name, schema in spec["components"]["schemas"].items():
        out += [f"### {name}", ""]
        if schema.get("description"):
            out += [_cell(schema["description"]), ""]
        required = set(schema.get("required", []))
        properties = schema.get("properties", {})
        if properties:
            out += ["| field | type | required | meaning |", "|---|---|---|---|"]
            out += [f"| `{field}` | {_type(value)} | {'yes' if field in required else 'no'} | "
                    f"{_cell(value.get('description', ''))} |"
                    for field, value in properties.items()]
        else:
            out.append(_type(schema))
        out.append("")
    return "\n".join(out + [END]) + "\n"


def _generated(text: str) -> str:
    return text[text.index(BEGIN):text.index(END) + len(END)] + "\n"


def test_the_api_reference_is_generated_from_the_served_document(client):
    spec = client.get("/openapi.json").get_json()
    text = DOC.read_text()
    assert _generated(text) == render(spec), "docs/api.md is stale: run write() (module doc)"
    for path, item in spec["paths"].items():  # and so, plainly:
        for method in METHODS:
            if method in item:
                assert f"### `{method.upper()} {path}`" in text
    headers = {p["name"] for item in spec["paths"].values() for op in item.values()
               for p in (op if isinstance(op, list) else op.get("parameters", []))
               if p["in"] == "header"} | set(spec["components"]["headers"])
    assert headers and all(f"`{name}`" in text for name in headers)


def write() -> None:
    """Regenerate docs/api.md's reference section from the current code."""
    with tempfile.TemporaryDirectory() as var:
        app = create_app(Test(), DATABASE_URL=f"sqlite:///{var}/tally.db",
                         REDIS_URL="redis://localhost:1/0", VAR_DIR=var,
                         REALMS_FILE=devkeys.ensure_dev_realm(var))
        spec = app.test_client().get("/openapi.json").get_json()
    text = DOC.read_text() if DOC.exists() else BEGIN + "\n" + END + "\n"
    DOC.write_text(text[:text.index(BEGIN)] + render(spec) + text[text.index(END) + len(END) + 1:])
