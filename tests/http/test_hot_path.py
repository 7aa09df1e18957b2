"""tally.http.hot_path.Remembered: what recent raw inputs loaded to, and only that, in the app's
cache (so a fresh app has loaded nothing); and the hot views' `@blp.arguments` loads answered
from it."""
from __future__ import annotations

import json
import uuid

import pytest
from webargs.flaskparser import FlaskParser

from tally.core.cache import Cache
from tally.errors import ValidationFailed
from tally.http.views import notifications, tickets
from tally.http.hot_path import Remembered

TICKET_COUNT = "/api/v2/ticketing/ticket/count?type=agent&module=ticketing"


class Inputs:
    """A raw input the test sets, and a loader counting its loads (bad input: a 400)."""

    def __init__(self):
        self.raw, self.loads = b"", []

    def load(self) -> dict:
        self.loads.append(self.raw)
        if self.raw.startswith(b"bad"):
            raise ValidationFailed(details={"x": ["bad"]})
        return {"raw": self.raw}


def remembering(inputs: Inputs, size: int = 1024, **options) -> Remembered:
    cache = Cache("test", size)
    return Remembered(lambda: inputs.raw, lambda caches: cache, **options)


@pytest.fixture(autouse=True)
def app_context(app):
    with app.app_context():
        yield


def test_the_same_bytes_load_once_and_other_bytes_load_their_own():
    inputs = Inputs()
    remembered = remembering(inputs)
    for raw in (b"a", b"b", b"a", b"b", b"a"):
        inputs.raw = raw
        assert remembered(inputs.load) == {"raw": raw}
    assert inputs.loads == [b"a", b"b"]


def test_a_bad_input_is_refused_every_time_and_never_remembered():
    inputs = Inputs()
    remembered = remembering(inputs)
    inputs.raw = b"bad"
    for _ in range(2):
        with pytest.raises(ValidationFailed):
            remembered(inputs.load)
    assert inputs.loads == [b"bad", b"bad"]


def test_at_most_size_inputs_of_at_most_max_bytes_are_kept_least_recent_dropped_first():
    inputs = Inputs()
    remembered = remembering(inputs, size=2, max_bytes=3)
    for raw in (b"a", b"b", b"c", b"b", b"a", b"long", b"long"):
        inputs.raw = raw
        assert remembered(inputs.load) == {"raw": raw}
    assert inputs.loads == [b"a", b"b", b"c", b"a", b"long", b"long"]


def test_a_sidebar_poll_loads_its_query_and_body_once(client, headers, monkeypatch):
    loaded = []
    real = FlaskParser.parse
    monkeypatch.setattr(FlaskParser, "parse", lambda parser, schema, *args, **kwargs:
                        loaded.append(schema) or real(parser, schema, *args, **kwargs))
    hdrs = headers(user="agent-1", roles=("ticket_agent",), teams=("t1",))
    body = {"filterIds": ["all", "3745", str(uuid.uuid4())], "timezone": "Asia/Calcutta"}
    query = TICKET_COUNT
    for _ in range(3):
        assert client.post(query, json=body, headers=hdrs).status_code == 422
    assert loaded == [tickets.QUERY, tickets.BODY]
    text = client.post(query, data=json.dumps(body),
                       headers={**hdrs, "Content-Type": "text/plain"})
    assert text.status_code == 415  # the Content-Type is part of what was loaded


def test_a_badge_poll_loads_its_query_once(client, headers, monkeypatch):
    loaded = []
    real = FlaskParser.parse
    monkeypatch.setattr(FlaskParser, "parse", lambda parser, schema, *args, **kwargs:
                        loaded.append(schema) or real(parser, schema, *args, **kwargs))
    url = "/api/v2/ticketing/ticket/notification/count?view=minimal"
    for _ in range(3):
        assert client.get(url, headers=headers()).status_code == 200  # a new token: Flask
    assert loaded == [notifications.COUNT_QUERY]
