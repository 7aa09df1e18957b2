"""`tally db current`, `history` and `downgrade` (issue 20 #12): where the schema is, every
migration, and going back, with the CLI's one-line errors and exit codes (contract §6)."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from tally import cli
from tests.cli.test_errors import closed_port, one_error, run

pytestmark = pytest.mark.both_databases

VERSIONS = Path(__file__).resolve().parents[2] / "src/tally/stores/sql/migrations/versions"


@pytest.fixture
def revisions(services):
    """Every revision id, newest first (what `db history` must list)."""
    return [migration.revision for migration in services.db.history()]


def test_the_history_is_every_migration_file_newest_first(revisions):
    files = sorted(path.name.split("_")[0] for path in VERSIONS.glob("[0-9]*.py"))
    assert revisions == files[::-1]


def test_current_names_the_latest_migration_of_a_migrated_database(app, revisions):
    result = run(app, "db", "current")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{revisions[0]} (the latest)"


def test_history_lists_every_migration_and_marks_the_latest_and_current_one(app, revisions):
    result = run(app, "db", "history")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(revisions)
    assert lines[0].startswith(f"{revisions[1]} -> {revisions[0]} (latest, current): ")
    assert lines[-1].startswith(f"<base> -> {revisions[-1]}: initial schema")


def test_downgrade_undoes_the_later_migrations_and_upgrade_brings_them_back(
        app, services, revisions):
    # Given a migrated database, when an operator goes back to the first migration
    first, latest = revisions[-1], revisions[0]
    result = run(app, "db", "downgrade", first, "--yes")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"database downgraded from {latest} to {first}"
    # Then the later migrations are undone (0002's indexes are gone) and shown as pending
    indexes = {index["name"] for index in inspect(services.db.engine).get_indexes("tickets")}
    assert "ix_tickets_tenant_team" not in indexes
    current = run(app, "db", "current").output.strip()
    assert current == (f"{first}: {len(revisions) - 1} migration(s) to apply up to {latest} "
                       "(tally db upgrade)")
    history = run(app, "db", "history").output.splitlines()
    assert "(latest, not applied)" in history[0] and "(current)" in history[-1]
    # And an upgrade brings every one back
    assert run(app, "db", "upgrade").exit_code == 0
    assert run(app, "db", "current").output.strip() == f"{latest} (the latest)"


@pytest.mark.parametrize("answer", ["n\n", None])
def test_a_downgrade_not_confirmed_undoes_nothing(app, revisions, answer):
    # "n", or no terminal to answer on (end of input)
    result = app.test_cli_runner().invoke(args=["tally", "db", "downgrade", revisions[-1]],
                                          input=answer)
    one_error(result, cli.BAD_INPUT, "nothing undone", "--yes")
    assert run(app, "db", "current").output.strip() == f"{revisions[0]} (the latest)"


def test_a_confirmed_downgrade_of_the_last_migration(app, revisions):
    result = app.test_cli_runner().invoke(args=["tally", "db", "downgrade", "-1"], input="y\n")
    assert result.exit_code == 0, result.output
    assert f"database downgraded from {revisions[0]} to {revisions[1]}" in result.output


@pytest.mark.parametrize("target", ["9999", "not-a-revision"])
def test_a_downgrade_to_an_unknown_revision_is_one_error_line(app, revisions, target):
    one_error(run(app, "db", "downgrade", target, "--yes"), cli.BAD_INPUT,
              f"cannot downgrade to {target!r}")
    assert run(app, "db", "current").output.strip() == f"{revisions[0]} (the latest)"


def test_a_downgrade_to_a_revision_above_the_current_one_is_one_error_line(app, revisions):
    assert run(app, "db", "downgrade", revisions[-1], "--yes").exit_code == 0
    one_error(run(app, "db", "downgrade", revisions[0], "--yes"), cli.BAD_INPUT,
              f"cannot downgrade to {revisions[0]!r}")


def test_current_of_an_empty_database_says_every_migration_is_to_apply(
        make_app, tmp_path, revisions):
    empty = make_app(DATABASE_URL=f"sqlite:///{tmp_path}/empty.db")
    result = run(empty, "db", "current")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (f"no migration (an empty database): {len(revisions)} "
                                     f"migration(s) to apply up to {revisions[0]} "
                                     "(tally db upgrade)")


@pytest.mark.parametrize("command", [("current",), ("history",), ("downgrade", "base", "--yes")])
def test_the_database_unreachable_is_one_error_line_and_its_exit_code(make_app, command):
    down = make_app(DATABASE_URL=f"postgresql+psycopg://tally@127.0.0.1:{closed_port()}/tally")
    one_error(run(down, "db", *command), cli.STORE_DOWN, "database is unreachable")
