"""The migrations build the schema the models describe, on SQLite and on PostgreSQL, and the
scope indexes' migration (CONCURRENTLY on PostgreSQL) goes down and up again."""
from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tally.stores.db import Database, alembic_config
from tally.stores.models import Model

SCOPE_INDEXES = {"ix_tickets_tenant_team", "ix_tickets_tenant_assignee",
                 "ix_tickets_tenant_requester"}


def ticket_indexes(db: Database) -> set[str]:
    return {index["name"] for index in inspect(db.engine).get_indexes("tickets")}


def test_the_migrated_schema_is_the_models_schema(db_url):
    db = Database(db_url)
    try:
        with db.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Model.metadata)
    finally:
        db.engine.dispose()
    assert differences == []


def test_the_scope_indexes_migration_goes_down_and_up_again(db_url):
    db = Database(db_url)
    try:
        assert SCOPE_INDEXES <= ticket_indexes(db)
        command.downgrade(alembic_config(db_url), "0001")
        assert not SCOPE_INDEXES & ticket_indexes(db)
        db.upgrade()
        assert SCOPE_INDEXES <= ticket_indexes(db)
    finally:
        db.engine.dispose()
