"""The `tally` operator CLI (also `flask --app wsgi tally`): one command per operator task."""
from __future__ import annotations

import sys
import uuid

import click
from flask import current_app
from flask.cli import AppGroup

from tally.extensions import services
from tally.progress import Progress

tally_cli = AppGroup("tally", help="Operate tally: schema, tenants, counters, development tokens.")


def _uuid(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a UUID") from None


# -- db ------------------------------------------------------------------------------------------
@tally_cli.group("db")
def db_group() -> None:
    """The SQL schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    services().db.upgrade()
    click.echo("database is at the latest migration")


# -- tenant --------------------------------------------------------------------------------------
@tally_cli.group("tenant")
def tenant_group() -> None:
    """Tenants."""


@tenant_group.command("create")
@click.option("--id", "tenant_id", required=True, callback=_uuid, help="The tenant's UUID.")
@click.option("--name", required=True, help="A display name.")
@click.option("--realm", required=True, help="The realm whose tokens may use this tenant.")
def tenant_create(tenant_id: str, name: str, realm: str) -> None:
    """Provision a tenant with its system filters."""
    from tally.provisioning import create_tenant

    created = create_tenant(services().db, tenant_id, name, realm)
    click.echo(f"tenant {tenant_id} {'created' if created else 'already exists'} in realm {realm}")


# -- cache ---------------------------------------------------------------------------------------
@tally_cli.group("cache")
def cache_group() -> None:
    """The Redis counters (derived from SQL)."""


@cache_group.command("invalidate")
@click.option("--tenant", required=True, callback=_uuid)
@click.option("--user", default=None, help="Only this user's notification counters.")
@click.option("--filter", "filter_id", default=None, help="Only this filter's ticket counters.")
def cache_invalidate(tenant: str, user: str | None, filter_id: str | None) -> None:
    """Drop counters; the next read recomputes them from SQL."""
    from tally.counting import maintenance

    removed = maintenance.invalidate(services(), tenant, user=user, filter_id=filter_id)
    click.echo(f"dropped {removed} keys")


def _tenants(tenant: str | None) -> list[str]:
    """The tenant asked for, or every provisioned tenant when none was."""
    from tally.counting import maintenance

    return [tenant] if tenant is not None else maintenance.tenants(services())


EVERY_TENANT = "Only this tenant (default: every tenant, one after the other)."


def _progress() -> Progress:
    """Report lines on stdout; a bar on stderr when it is a terminal."""
    return Progress(click.echo, sys.stderr)


@cache_group.command("rebuild")
@click.option("--tenant", default=None, callback=_uuid, help=EVERY_TENANT)
def cache_rebuild(tenant: str | None) -> None:
    """Recompute a tenant's (or every tenant's) counters from SQL now."""
    from tally.counting import maintenance

    chosen, progress = _tenants(tenant), _progress()
    with progress.counting(len(chosen), "tenants rebuilt") as advance:
        for number, name in enumerate(chosen, 1):
            if tenant is None:
                progress(f"tenant {name} ({number}/{len(chosen)}): rebuilding")
            progress(maintenance.rebuild(services(), name, progress=progress))
            advance()
    if tenant is None:
        click.echo(f"{len(chosen)} tenant(s) rebuilt")


@cache_group.command("verify")
@click.option("--tenant", default=None, callback=_uuid, help=EVERY_TENANT)
@click.option("--repair", is_flag=True, help="Rebuild what differs.")
def cache_verify(tenant: str | None, repair: bool) -> None:
    """Compare Redis with SQL, print each difference; exit 1 on drift unless repaired."""
    from tally.counting import maintenance

    chosen, progress = _tenants(tenant), _progress()
    total = 0
    with progress.counting(len(chosen), "tenants verified") as advance:
        for number, name in enumerate(chosen, 1):
            prefix = "" if tenant is not None else f"tenant {name} "
            if tenant is None:
                progress(f"tenant {name} ({number}/{len(chosen)}): verifying")
            drift = maintenance.verify(services(), name, repair=repair, progress=progress)
            for line in drift.lines:
                progress(prefix + line)
            if tenant is None:
                progress(f"tenant {name}: {len(drift.lines)} difference(s)")
            total += len(drift.lines)
            advance()
    if tenant is None:
        click.echo(f"{len(chosen)} tenant(s) verified")
    click.echo(f"{total} difference(s){' repaired' if repair and total else ''}")
    if total and not repair:
        sys.exit(1)


@cache_group.command("stats")
@click.option("--tenant", default=None, callback=_uuid, help="Only this tenant (default: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def cache_stats(tenant: str | None, as_json: bool) -> None:
    """Keys and memory per tenant, warm/cold tenants and users, outbox backlog."""
    import json

    from tally.counting import cache_stats as stats
    from tally.events.outbox import backlog

    chosen, progress = _tenants(tenant), _progress()
    pending = stats.pending_by_tenant(services())
    rows = []
    with progress.counting(len(chosen), "tenants measured") as advance:
        for name in chosen:
            rows.append(stats.tenant_stats(services(), name, pending))
            advance()
    backlog_rows, oldest_ms = backlog(services().db)
    if as_json:
        click.echo(json.dumps({"tenants": [row.as_dict() for row in rows],
                               "outbox": {"pending": backlog_rows, "oldestAgeMs": oldest_ms},
                               "redisUsedMemory": stats.used_memory(services())}, indent=2))
        return
    click.echo(f"{'tenant':36}  {'state':5}  {'keys':>7}  {'memory':>10}  {'warm users':>11}  "
               f"{'predicates':>10}  {'outbox':>7}")
    for row in rows:
        click.echo(f"{row.tenant:36}  {'warm' if row.warm else 'cold':5}  {row.keys:>7}  "
                   f"{_bytes(row.memory_bytes):>10}  {f'{row.warm_users}/{row.users}':>11}  "
                   f"{row.predicates:>10}  {row.outbox_pending:>7}")
    warm = sum(row.warm for row in rows)
    click.echo(f"{len(rows)} tenant(s): {warm} warm, {len(rows) - warm} cold; "
               f"{sum(row.keys for row in rows)} keys, "
               f"{_bytes(sum(row.memory_bytes for row in rows))} "
               f"(counter Redis uses {_bytes(stats.used_memory(services()))} in all)")
    click.echo(f"outbox backlog: {backlog_rows} row(s), oldest {oldest_ms / 1000:.1f} s")


def _bytes(size: int | None) -> str:
    if size is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


# -- development ---------------------------------------------------------------------------------
@tally_cli.command("dev-token")
@click.option("--tenant", required=True, callback=_uuid)
@click.option("--user", required=True)
@click.option("--role", "roles", required=True, multiple=True,
              type=click.Choice(["ticket_user", "ticket_agent", "ticket_admin", "ticket_service"]))
@click.option("--team", "teams", multiple=True)
@click.option("--ttl", default=3600 * 12, show_default=True, help="Seconds the token lives.")
def dev_token(tenant: str, user: str, roles: tuple[str, ...], teams: tuple[str, ...],
              ttl: int) -> None:
    """Development only: print a token signed with the local dev key."""
    from tally.auth import devkeys

    config = services().config
    if config.ENV == "production":
        raise click.ClickException("dev-token is disabled when TALLY_ENV=production")
    click.echo(devkeys.dev_token(config.VAR_DIR, tenant=tenant, user=user, roles=list(roles),
                                 teams=list(teams), ttl=ttl))


@tally_cli.command("demo")
def demo() -> None:
    """Provision the demo tenant and its data (what `make run` uses)."""
    from tally.demo import provision_demo

    provision_demo(services(), progress=_progress())


def main() -> None:
    """Console script: build the app from the environment and run the group inside it."""
    from tally.app import create_app

    app = create_app()
    with app.app_context():
        tally_cli.main(prog_name="tally")


__all__ = ["tally_cli", "main", "current_app"]
