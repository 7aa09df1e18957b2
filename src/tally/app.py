"""The application factory (config → extensions → API → plugins → errors → guard → front door
→ CLI) and the `tally` console script, which builds the app and runs its CLI."""
from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points
from typing import Any

import click
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from tally.cli import BAD_CONFIG, first_line, tally_cli
from tally.errors import ConfigError
from tally.settings import Base, from_env
from tally import extensions
from tally.observability import logs, metrics
from tally.auth import guard
from tally.auth.realms import Realms
from tally.http.views import events, filters, notifications, ops, stream, tickets
from tally.http.api import register_error_handlers
from tally.http.bodies import LimitedRequest
from tally.http.fast_reads import FastReads
from tally.http.front import Front
from tally.http.openapi import build_api

API_BLUEPRINTS = (notifications.blp, stream.blp, events.blp, filters.blp, tickets.blp)
# The entry-point group of functions called with each new app to add routes of their own
# (tally.dev's status page and bench baseline; see setup.cfg); nothing here imports them.
PLUGINS = "tally.app"


def create_app(config: Base | None = None, **overrides: Any) -> Flask:
    """Build a tally app from `config` (default: the environment) with attribute overrides."""
    config = config or from_env()
    for name, value in overrides.items():
        if not hasattr(config, name):
            raise ValueError(f"unknown config setting {name}")
        setattr(config, name, value)

    app = Flask("tally")
    # A path with `//` is an unknown path (404 in the envelope), not a redirect with an HTML body
    # to the path without it; set before any rule is added (a rule takes it when bound).
    app.url_map.merge_slashes = False
    app.request_class = LimitedRequest  # the body limit holds for chunked bodies too
    app.config.from_object(config)
    app.json.sort_keys = False  # keep the seed's field order (byType, byPriority, counts)
    # JSON lines; readable text in development (`make run`), where a person reads them.
    logs.configure(logging.INFO if not config.TESTING else logging.WARNING,
                   readable=config.ENV == "development")
    extensions.init_app(app, config, Realms.load(config.REALMS_FILE))

    # One Api per app (not a module global), so a test run can build many apps.
    api = build_api(app)  # the envelope, the guard's headers and errors in /openapi.json
    api.register_blueprint(ops.blp)
    for blueprint in API_BLUEPRINTS:
        api.register_blueprint(blueprint)
    app.extensions["tally_api"] = api

    for plugin in entry_points(group=PLUGINS):
        plugin.load()(app)

    register_error_handlers(app)
    guard.install(app)
    # Request id, metrics and access log for every request, however it is answered.
    metrics.PENDING.interval = float(config.METRICS_FOLD_SECONDS)  # one process, one interval
    # A warm badge or sidebar poll is answered there, before Flask runs (tally.http.fast_reads).
    app.wsgi_app = Front(app.wsgi_app,  # type: ignore[method-assign]
                         logs.AccessLog(float(config.LOG_SLOW_MS), float(config.LOG_SAMPLE_RATE)),
                         fast=FastReads(app))

    app.cli.add_command(tally_cli)
    return app


def main() -> None:
    """Console script: build the app from the environment and run the `tally` group inside it."""
    try:
        app = create_app()
    except (ConfigError, SQLAlchemyError) as error:  # SQLAlchemy: a TALLY_DATABASE_URL it rejects
        click.echo(f"Error: {first_line(error)}", err=True)
        sys.exit(BAD_CONFIG)
    with app.app_context():
        tally_cli.main(prog_name="tally")
