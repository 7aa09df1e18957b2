"""The watermark wire format: `<n>.<tag>`, bound to its tenant; anything else is a 400."""
from __future__ import annotations

import pytest

from tally.core import watermarks
from tally.errors import ValidationFailed

T = "4f2b7c1e-8a3d-4e5f-9b6a-1c2d3e4f5a6b"
OTHER = "7d0c8f3e-9a1b-4c2d-8e3f-4a5b6c7d8e9f"


def test_a_watermark_round_trips_and_names_its_tenant():
    text = watermarks.encode(T, 42)
    assert text.startswith("42.") and len(text.split(".")[1]) == 8
    assert watermarks.decode(T, text) == 42
    assert watermarks.decode(T.upper(), text) == 42  # tenant ids compare case-insensitively
    assert watermarks.encode(T, 0) == f"0.{watermarks.tag(T)}"


@pytest.mark.parametrize("text", ["", "42", ".abcdef12", "042.x", "1.ABCDEF12x", "1e3.abcdef12",
                                  "-1.abcdef12", "1.abcdef1", "9" * 19 + ".abcdef12"])
def test_malformed_watermarks_are_a_validation_error_naming_the_header(text):
    with pytest.raises(ValidationFailed) as raised:
        watermarks.decode(T, text)
    assert raised.value.details == {"X-Min-Watermark": ["must be a watermark tally issued (n.tag)"]}


def test_another_tenants_watermark_is_refused():
    with pytest.raises(ValidationFailed) as raised:
        watermarks.decode(T, watermarks.encode(OTHER, 3), "Last-Event-ID")
    assert "Last-Event-ID" in raised.value.details
