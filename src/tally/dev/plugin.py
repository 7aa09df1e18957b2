"""The development-only parts of the app and the CLI, attached by entry point (setup.cfg), so
nothing outside tally.dev imports tally.dev: the status page and bench baseline routes and the
injected clock of soak runs (group `tally.app`), the `dev-token` and `demo` commands (group
`tally.commands`)."""
from __future__ import annotations

from typing import Any

import click
from flask import Flask
from flask.cli import with_appcontext

from tally.cli import BAD_CONFIG, BAD_INPUT, Failure, progress_lines, valid_id, valid_uuid
from tally.core.model import ROLES, SERVICE_ROLE
from tally.dev import baseline, clock, keys as devkeys, launcher, status
from tally.dev.demo import DEMO_SERVICE, DEMO_TENANT, demo_token, provision_demo
from tally.dev.launcher import DEV_PORT
from tally.dev.traffic import Traffic, http_post, send
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
@click.option("--banner", is_flag=True, help="Print `make run`'s banner (fresh tokens, curl "
              "lines) instead of provisioning.")
@click.option("--traffic", is_flag=True, help="Keep posting realistic events to the running "
              "server as the demo's ticket service, until Ctrl-C.")
@click.option("--port", type=click.IntRange(1, 65535), envvar="PORT", default=DEV_PORT,
              show_default=True, help="The port `make run` serves on.")
@click.option("--rate", type=click.FloatRange(0.1, 100), default=2.0, show_default=True,
              help="--traffic: events a second.")
@click.option("--events", type=click.IntRange(1), default=None,
              help="--traffic: stop after this many (default: until Ctrl-C).")
@with_appcontext
def demo(banner: bool, traffic: bool, port: int, rate: float, events: int | None) -> None:
    """Provision the demo tenant and its data (what `make run` uses); --banner, --traffic."""
    svc = services()
    if svc.config.ENV == "production" and (banner or traffic):
        raise Failure("demo --banner/--traffic are disabled when TALLY_ENV=production", BAD_CONFIG)
    if banner:
        click.echo(launcher.demo_banner(svc, port))
    elif traffic:
        _traffic(svc, port, rate, events)
    else:
        provision_demo(svc, progress=progress_lines())


def _traffic(svc: Any, port: int, rate: float, events: int | None) -> None:
    token = demo_token(svc, user=DEMO_SERVICE, roles=(SERVICE_ROLE,), teams=())
    post = http_post(f"http://127.0.0.1:{port}", token, DEMO_TENANT, devkeys.DEV_REALM)
    generator = Traffic()
    click.echo(f"posting events to http://127.0.0.1:{port} at {rate:g}/s as the demo's ticket "
               "service; watch the status page; Ctrl-C stops")
    sent = 0
    try:
        sent = send(generator, post, events, rate, progress=click.echo)
    except KeyboardInterrupt:
        pass
    except RuntimeError as error:  # a 4xx, or the server gone for good
        raise Failure(str(error), BAD_INPUT) from None
    finally:
        click.echo(f"traffic stopped: {generator.summary()}")
    click.echo(f"{sent} events accepted")
