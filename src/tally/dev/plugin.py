"""The development-only parts of the app and the CLI, attached by entry point (setup.cfg), so
nothing outside tally.dev imports tally.dev: the status page and bench baseline routes and the
injected clock of soak runs (group `tally.app`), the `dev-token` and `demo` commands (group
`tally.commands`)."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from tally.cli import BAD_CONFIG, Failure, progress_lines, valid_id, valid_uuid
from tally.core.model import ROLES
from tally.dev import baseline, clock, keys as devkeys, status
from tally.dev.demo import provision_demo
from tally.extensions import EXTENSION, services


def install(app: Flask) -> None:
    """Add the bench baseline route (TALLY_BENCH_BASELINE), the injected clock (TALLY_CLOCK_FILE,
    refused in production) and, in development only, the status page of `make run`."""
    if app.config["CLOCK_FILE"]:
        clock.install(app.extensions[EXTENSION], app.config["ENV"], app.config["CLOCK_FILE"])
    if app.config["BENCH_BASELINE"]:
        baseline.install(app)
    if app.config["ENV"] == "development":
        app.register_blueprint(status.blp)


@click.command("dev-token")
@click.option("--tenant", required=True, callback=valid_uuid)
@click.option("--user", required=True, callback=valid_id)
@click.option("--role", "roles", required=True, multiple=True, type=click.Choice(ROLES))
@click.option("--team", "teams", multiple=True, callback=valid_id)
@click.option("--ttl", default=3600 * 12, show_default=True, help="Seconds the token lives.")
@with_appcontext  # as the group's own commands (AppGroup.command) have it
def dev_token(tenant: str, user: str, roles: tuple[str, ...], teams: tuple[str, ...],
              ttl: int) -> None:
    """Development only: print a token signed with the local dev key."""
    config = services().config
    if config.ENV == "production":
        raise Failure("dev-token is disabled when TALLY_ENV=production", BAD_CONFIG)
    click.echo(devkeys.dev_token(config.VAR_DIR, tenant=tenant, user=user, roles=list(roles),
                                 teams=list(teams), ttl=ttl))


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Provision the demo tenant and its data (what `make run` uses)."""
    provision_demo(services(), progress=progress_lines())
