"""The `tally` operator CLI (also `flask --app wsgi tally`): one command per operator task.

A failure is one `Error: …` line on stderr and an exit code saying what kind it was, never a
traceback (contract §6):

    0  done
    1  `cache verify` found drift (and did not repair it)
    2  bad input: usage, a malformed id, an unknown tenant or realm, a blank name, an unknown
       migration or a downgrade not confirmed; for `cache verify`, anything that kept it from
       checking (contract §6), a store down included
    3  bad configuration (TALLY_ENV or another TALLY_* variable, the realms file)
    4  a store unreachable: the counter or queue Redis, or the database
"""
from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points
from typing import Any

import click
import redis
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from tally.core.clock import epoch_ms
from tally.core.model import ID_PATTERN, canonical_uuid
from tally.errors import DatabaseUnavailable, StoreUnavailable, TallyError
from tally.extensions import services
from tally.progress import Progress
from tally.services import maintenance, stats, ticket_maintenance
from tally.services.catalog import well_formed
from tally.services.outages import describe, is_unavailable
from tally.services.outbox import backlog
from tally.services.tenants import create_tenant, tenant_realm

DRIFT, BAD_INPUT, BAD_CONFIG, STORE_DOWN = 1, 2, 3, 4
# The entry-point group of commands other parts add to the group (tally.dev's dev-token and
# demo; see setup.cfg), loaded by name as Flask loads `flask.commands`.
COMMANDS = "tally.commands"


class Failure(click.ClickException):
    """An `Error: …` line and the exit code of its kind (see the module docstring)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def as_failure(error: BaseException) -> Failure | None:
    """The Failure an error raised by a command stands for; None: a bug (let it show)."""
    if isinstance(error, Failure):
        return error
    if isinstance(error, (redis.RedisError, StoreUnavailable)):
        return Failure(f"Redis is unreachable: {first_line(error)}", STORE_DOWN)
    if isinstance(error, SQLAlchemyError) and is_unavailable(error):
        return Failure(f"the database is unreachable: {describe(error)}", STORE_DOWN)
    if isinstance(error, DatabaseUnavailable):
        return Failure(f"the database is unreachable: {error.message}", STORE_DOWN)
    if isinstance(error, TallyError) and error.http_status < 500:
        return Failure(error.message, BAD_INPUT)
    return None


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class TallyGroup(AppGroup):
    """The group whose commands fail with one `Error: …` line (as_failure), never a traceback
    for an operator's mistake or a store that is down; it adds the COMMANDS entry points the
    first time its commands are listed or looked up."""

    _plugged = False

    def _plug(self) -> None:
        if not self._plugged:
            self._plugged = True
            for entry in entry_points(group=COMMANDS):
                self.add_command(entry.load(), entry.name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._plug()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._plug()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            failure = as_failure(error)
            if failure is None:
                raise
            raise failure from None


tally_cli = TallyGroup("tally", help="Operate tally: schema, tenants, counters, development "
                                     "tokens.")
tally_cli = click.version_option(package_name="tally", prog_name="tally")(tally_cli)


def _bad(param: click.Parameter, reason: str) -> Failure:
    """A bad option value: one line naming the option (click's BadParameter adds usage lines)."""
    return Failure(f"Invalid value for {param.opts[0]}: {reason}", BAD_INPUT)


def valid_uuid(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A UUID option in the canonical form the API takes (contract §2), lowercased."""
    if value is None:
        return None
    canonical = canonical_uuid(value)
    if canonical is None:
        raise _bad(param, f"{value!r} is not a UUID (8-4-4-4-12 hex digits)")
    return canonical


def valid_id(_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A user or team id (one or many) as tokens and events carry them (ID_PATTERN)."""
    for item in (value if isinstance(value, tuple) else (value,)):
        if item is not None and not ID_PATTERN.fullmatch(item):
            raise _bad(param, f"{item!r} is not an id: 1 to 64 characters of letters, digits "
                              "and ._@:|-")
    return value


def _filter_id(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not well_formed(value):
        raise _bad(param, f"{value!r} is not a filter id (all, digits or a UUID)")
    return value


def _not_blank(_ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise _bad(param, "must not be blank")
    return value.strip()


# -- db ------------------------------------------------------------------------------------------
@tally_cli.group("db")
def db_group() -> None:
    """The SQL schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    services().db.upgrade()
    click.echo("database is at the latest migration")


def _at(revisions: tuple[str, ...]) -> str:
    return ", ".join(revisions) if revisions else "no migration (an empty database)"


@db_group.command("current")
def db_current() -> None:
    """Show the migration the database is at, and how many are left to apply."""
    db = services().db
    current, migrations = db.current(), db.history()
    pending = [m.revision for m in migrations if not m.applied]
    if not pending:
        click.echo(f"{_at(current)} (the latest)")
        return
    heads = ", ".join(m.revision for m in migrations if m.head)
    click.echo(f"{_at(current)}: {len(pending)} migration(s) to apply up to {heads} "
               "(tally db upgrade)")


@db_group.command("history")
def db_history() -> None:
    """List every migration, newest first, marking the latest and the one the database is at."""
    for migration in services().db.history():
        marks = [mark for mark, on in (("latest", migration.head),
                                       ("current", migration.current),
                                       ("not applied", not migration.applied)) if on]
        title = migration.doc.splitlines()[0] if migration.doc else ""
        click.echo(f"{migration.down_revision or '<base>'} -> {migration.revision}"
                   f"{' (' + ', '.join(marks) + ')' if marks else ''}: {title}")


# ignore_unknown_options: `-1` (the last migration) is a REVISION, not an unknown option
@db_group.command("downgrade", context_settings={"ignore_unknown_options": True})
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask before undoing migrations.")
def db_downgrade(revision: str, yes: bool) -> None:
    """Undo the migrations after REVISION (a revision id from `db history`, `base` for all, or
    -N for the last N). A migration undone may drop data: asks first unless --yes."""
    db = services().db
    before = db.current()
    if not yes:
        try:
            confirmed = click.confirm(f"Undo the migrations of {_at(before)} after {revision}? "
                                      "Data they added may be dropped", default=False)
        except click.Abort:  # no terminal to answer on
            confirmed = False
        if not confirmed:
            raise Failure("nothing undone: not confirmed (--yes answers yes)", BAD_INPUT)
    try:
        db.downgrade(revision)
    except ValueError as error:
        raise Failure(f"cannot downgrade to {revision!r}: {first_line(error)}", BAD_INPUT) \
            from None
    click.echo(f"database downgraded from {_at(before)} to {_at(db.current())}")


# -- tenant --------------------------------------------------------------------------------------
@tally_cli.group("tenant")
def tenant_group() -> None:
    """Tenants."""


@tenant_group.command("create")
@click.option("--id", "tenant_id", required=True, callback=valid_uuid,
              help="The tenant's UUID.")
@click.option("--name", required=True, callback=_not_blank, help="A display name.")
@click.option("--realm", required=True, help="The realm whose tokens may use this tenant.")
def tenant_create(tenant_id: str, name: str, realm: str) -> None:
    """Provision a tenant with its system filters."""
    svc = services()
    if svc.realms.get(realm) is None:
        raise Failure(f"realm {realm!r} is not in TALLY_REALMS_FILE "
                      f"({svc.config.REALMS_FILE or 'not set'}): no token could reach the tenant",
                      BAD_INPUT)
    if create_tenant(svc.db, tenant_id, name, realm):
        click.echo(f"tenant {tenant_id} created in realm {realm}")
        return
    existing = tenant_realm(svc.db, tenant_id)
    if existing != realm:
        raise Failure(f"tenant {tenant_id} already exists in realm {existing!r}, not {realm!r}",
                      BAD_INPUT)
    click.echo(f"tenant {tenant_id} already exists in realm {existing}")


# -- cache ---------------------------------------------------------------------------------------
@tally_cli.group("cache")
def cache_group() -> None:
    """The Redis counters (derived from SQL)."""


@cache_group.command("invalidate")
@click.option("--tenant", required=True, callback=valid_uuid)
@click.option("--user", default=None, callback=valid_id,
              help="Only this user's notification counters.")
@click.option("--filter", "filter_id", default=None, callback=_filter_id,
              help="Only this filter's ticket counters.")
def cache_invalidate(tenant: str, user: str | None, filter_id: str | None) -> None:
    """Drop counters; the next read recomputes them from SQL."""
    removed = maintenance.invalidate(services(), tenant, user=user, filter_id=filter_id)
    click.echo(f"dropped {removed} keys")


def _tenants(tenant: str | None) -> list[str]:
    """The tenant asked for (a Failure unless it is provisioned), or every provisioned tenant
    when none was."""
    every = maintenance.tenants(services())
    if tenant is None:
        return every
    if tenant not in every:
        raise Failure(f"tenant {tenant} does not exist (tally tenant create provisions one)",
                      BAD_INPUT)
    return [tenant]


EVERY_TENANT = "Only this tenant (default: every tenant, one after the other)."


def progress_lines() -> Progress:
    """Report lines on stdout; a bar on stderr when it is a terminal."""
    return Progress(click.echo, sys.stderr)


@cache_group.command("rebuild")
@click.option("--tenant", default=None, callback=valid_uuid, help=EVERY_TENANT)
def cache_rebuild(tenant: str | None) -> None:
    """Recompute a tenant's (or every tenant's) counters from SQL now."""
    chosen, progress = _tenants(tenant), progress_lines()
    with progress.counting(len(chosen), "tenants rebuilt") as advance:
        for number, name in enumerate(chosen, 1):
            if tenant is None:
                progress(f"tenant {name} ({number}/{len(chosen)}): rebuilding")
            progress(maintenance.rebuild(services(), name, progress=progress))
            advance()
    if tenant is None:
        click.echo(f"{len(chosen)} tenant(s) rebuilt")


@cache_group.command("forget-idle")
@click.option("--tenant", default=None, callback=valid_uuid, help=EVERY_TENANT)
@click.option("--idle-seconds", type=click.IntRange(min=1), default=None,
              help="Unread for this long (default: MP_IDLE_SECONDS).")
def cache_forget_idle(tenant: str | None, idle_seconds: int | None) -> None:
    """Drop now the ticket predicates nobody has read for a while (as the scheduled job does);
    the next read of one recomputes it."""
    svc = services()
    idle = idle_seconds or int(svc.config.MP_IDLE_SECONDS)
    if idle <= 0:
        raise Failure("MP_IDLE_SECONDS is 0 (never drop): pass --idle-seconds", BAD_INPUT)
    now = epoch_ms(svc.clock())
    for name in _tenants(tenant):
        click.echo(f"tenant {name}: "
                   + ticket_maintenance.drop_idle(svc, name, now, idle * 1000).line)


@cache_group.command("verify")
@click.option("--tenant", default=None, callback=valid_uuid, help=EVERY_TENANT)
@click.option("--repair", is_flag=True, help="Rebuild what differs.")
def cache_verify(tenant: str | None, repair: bool) -> None:
    """Compare Redis with SQL, print each difference; exit 1 on drift unless repaired, 2 when
    it could not check (an unknown tenant, a store down)."""
    try:
        total = _verify(tenant, repair)
    except Exception as error:
        failure = as_failure(error)
        if failure is None:
            raise
        raise Failure(f"could not verify: {failure.message}", BAD_INPUT) from None
    click.echo(f"{total} difference(s){' repaired' if repair and total else ''}")
    if total and not repair:
        sys.exit(DRIFT)


def _verify(tenant: str | None, repair: bool) -> int:
    """Verify the chosen tenants, printing each difference; the number of differences."""
    chosen, progress = _tenants(tenant), progress_lines()
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
    return total


@cache_group.command("stats")
@click.option("--tenant", default=None, callback=valid_uuid,
              help="Only this tenant (default: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def cache_stats(tenant: str | None, as_json: bool) -> None:
    """Keys and memory per tenant, warm/cold tenants and users, outbox backlog."""
    chosen, progress = _tenants(tenant), progress_lines()
    pending = stats.pending_by_tenant(services())
    rows = []
    with progress.counting(len(chosen), "tenants measured") as advance:
        for name in chosen:
            rows.append(stats.tenant_stats(services(), name, pending))
            advance()
    backlog_rows, oldest_ms = backlog(services().db, epoch_ms(services().clock()))
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


__all__ = ["tally_cli", "current_app"]
