"""The application factory: config → extensions → API → errors → guard → CLI."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from flask_smorest import Api

from config import Base, from_env
from tally import extensions
from tally.auth import guard
from tally.auth.realms import Realms
from tally.http import events, filters, notifications, ops, tickets
from tally.http.api import register_error_handlers

API_BLUEPRINTS = (notifications.blp, events.blp, filters.blp, tickets.blp)


def create_app(config: Base | None = None, **overrides: Any) -> Flask:
    """Build a tally app from `config` (default: the environment) with attribute overrides."""
    config = config or from_env()
    for name, value in overrides.items():
        if not hasattr(config, name):
            raise ValueError(f"unknown config setting {name}")
        setattr(config, name, value)

    app = Flask("tally")
    app.config.from_object(config)
    app.json.sort_keys = False  # keep the seed's field order (byType, byPriority, counts)
    logging.basicConfig(level=logging.INFO if not config.TESTING else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    extensions.init_app(app, config, Realms.load(config.REALMS_FILE))

    # One Api per app (not a module global), so a test run can build many apps.
    api = Api(app, spec_kwargs={"info": {"description": "Exact notification and ticket counts"}})
    api.register_blueprint(ops.blp)
    for blueprint in API_BLUEPRINTS:
        api.register_blueprint(blueprint)
    app.extensions["tally_api"] = api

    register_error_handlers(app)
    guard.install(app)

    from tally.cli import tally_cli

    app.cli.add_command(tally_cli)
    return app
