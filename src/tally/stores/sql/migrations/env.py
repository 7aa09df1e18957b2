"""Alembic environment: runs migrations online against the configured URL."""
from alembic import context
from tally.stores.sql.db import make_engine
from tally.stores.sql.models import Model

config = context.config
engine = make_engine(config.get_main_option("sqlalchemy.url"))

try:
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Model.metadata,
                          render_as_batch=engine.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
finally:  # also when a migration, or its target (`tally db downgrade`), is refused
    engine.dispose()
