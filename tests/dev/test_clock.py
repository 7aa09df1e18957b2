"""The injected clock (TALLY_CLOCK_FILE, tally.dev.clock): an app built with a clock file takes
"now" from it, counting writes are stamped with it, and production refuses it."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from tally.app import create_app
from tally.core.clock import epoch_ms, utc_now
from tally.dev.clock import FileClock, set_time
from tally.errors import ConfigError
from tally.settings import Production, from_env
from tally.stores.sql.models import OutboxRow, SeenEvent
from tests.support import events as b

SIMULATED = 1_900_000_000.25  # 2030-03-17, far from the wall clock


def test_the_setting_is_read_from_the_environment():
    assert from_env({}).CLOCK_FILE == ""
    assert from_env({"TALLY_CLOCK_FILE": "/run/soak/clock"}).CLOCK_FILE == "/run/soak/clock"


def test_an_app_with_a_clock_file_takes_now_from_it_as_the_file_moves(make_app, tmp_path):
    path = str(tmp_path / "clock")
    set_time(path, SIMULATED)
    services = make_app(CLOCK_FILE=path).extensions["tally"]

    first = services.clock()
    set_time(path, SIMULATED + 86_400)

    assert first == datetime.fromtimestamp(SIMULATED, tz=timezone.utc)
    assert epoch_ms(services.clock()) == epoch_ms(first) + 86_400_000


def test_without_a_clock_file_the_app_keeps_the_wall_clock(make_app):
    assert make_app().extensions["tally"].clock is utc_now


def test_accepted_events_are_stamped_with_the_injected_time(make_app, headers, tmp_path):
    # Given an app on a clock file, when the ticket service posts an event,
    path = str(tmp_path / "clock")
    set_time(path, SIMULATED)
    app = make_app(CLOCK_FILE=path)
    response = app.test_client().post(b.EVENTS, json={"events": [b.created("n-1", "u1")]},
                                      headers=headers("svc", roles=("ticket_service",)))

    # then seen_events and the outbox carry the simulated time, not the wall clock's.
    assert response.status_code == 202, response.get_json()
    with app.extensions["tally"].db.snapshot() as session:
        seen = session.scalars(select(SeenEvent.received_at)).all()
        owed = session.scalars(select(OutboxRow.created_at)).all()
    assert seen == owed == [int(SIMULATED * 1000)]


def test_production_refuses_a_clock_file(realms_file, var_dir, tmp_path):
    path = str(tmp_path / "clock")
    set_time(path, SIMULATED)

    with pytest.raises(ConfigError, match="TALLY_CLOCK_FILE"):
        create_app(Production(), DATABASE_URL="sqlite:///:memory:", REALMS_FILE=realms_file,
                   VAR_DIR=var_dir, CLOCK_FILE=path)


@pytest.mark.parametrize("content", [None, "", "tomorrow"])
def test_a_clock_file_without_epoch_seconds_stops_the_caller(tmp_path, content):
    path = tmp_path / "clock"
    if content is not None:
        path.write_text(content)

    with pytest.raises(ConfigError, match="holds no epoch seconds"):
        FileClock(str(path))()
