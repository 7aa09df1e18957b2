"""The migrations build the schema the models describe, on SQLite and on PostgreSQL, the
scope indexes' migration (CONCURRENTLY on PostgreSQL) goes down and up again, and so does the one
making tags jsonb on PostgreSQL (a no-op on SQLite), keeping every row's tags."""
from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from tally.stores.sql.db import Database, alembic_config
from tally.stores.sql.models import Model, Ticket
from tally.stores.sql.conditions import leaf

pytestmark = pytest.mark.both_databases

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


def tags_type(db: Database) -> str:
    with db.engine.connect() as connection:
        if db.engine.dialect.name == "postgresql":
            return connection.exec_driver_sql(
                "SELECT atttypid::regtype::text FROM pg_attribute "
                "WHERE attrelid = 'tickets'::regclass AND attname = 'tags'").scalar_one()
        return next(row[2] for row in connection.exec_driver_sql("PRAGMA table_info(tickets)")
                    if row[1] == "tags")


def test_tags_are_jsonb_on_postgresql_and_keep_their_values_down_and_up(db_url):
    db = Database(db_url)
    postgres = db.engine.dialect.name == "postgresql"
    tags = {"none": [], "one": ["vip"], "two": ["urgent", "vip"], "odd": ['x"y', "ünï", "a\\b"]}
    try:
        with db.write() as session:
            session.add_all(Ticket(tenant_id="t", id=name, version=1, deleted=False,
                                   tags=value, is_support_request=False)
                            for name, value in tags.items())
        assert tags_type(db) == ("jsonb" if postgres else "JSON")
        command.downgrade(alembic_config(db_url), "0002")
        assert tags_type(db) == ("json" if postgres else "JSON")
        db.upgrade()
        assert tags_type(db) == ("jsonb" if postgres else "JSON")
        with db.snapshot() as session:
            rows = session.execute(select(Ticket.id, Ticket.tags))
            assert {row.id: row.tags for row in rows} == tags
            found = session.scalars(select(Ticket.id).where(
                leaf({"field": "tags", "op": "contains", "value": "vip"},
                     db.engine.dialect.name))).all()
        assert sorted(found) == ["one", "two"]
    finally:
        db.engine.dispose()
