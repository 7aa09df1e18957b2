"""Which database errors mean "unavailable", and the filter catalog's last known entries."""
from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import (DBAPIError, IntegrityError, InterfaceError, OperationalError,
                            ProgrammingError, TimeoutError as PoolTimeout)

from tally.core.conditions import parse_definition
from tally.services.container import build_caches
from tally.services.catalog import FilterCatalog, ResolvedFilter
from tally.services.outages import is_unavailable

DOWN = OperationalError("SELECT 1", {}, Exception("connection refused"))
ALL = ResolvedFilter("all", "All Tickets", "system", None, parse_definition({"all": []}))


def _caches():
    """The catalog's two caches, as an app builds them."""
    caches = build_caches({})
    return caches.filters, caches.resolved


@pytest.mark.parametrize("error, unavailable", [
    (DOWN, True),
    (InterfaceError("SELECT 1", {}, Exception("connection already closed")), True),
    (PoolTimeout("QueuePool limit reached"), True),
    (DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True), True),
    (IntegrityError("INSERT", {}, Exception("duplicate key")), False),
    (ProgrammingError("SELECT", {}, Exception("syntax error")), False),
])
def test_only_failures_to_serve_count_as_unavailable(error, unavailable):
    assert is_unavailable(error) is unavailable


class Loader:
    """Serves {"all"} until told to fail with `error`."""

    def __init__(self):
        self.error: Exception | None = None
        self.calls = 0

    def __call__(self, services, tenant):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return {"all": ALL}


@pytest.fixture
def catalog():
    now = [0.0]
    loader = Loader()
    return FilterCatalog(*_caches(), ttl=5, monotonic=lambda: now[0], loader=loader), loader, now


def test_while_down_known_filters_resolve_and_a_miss_is_not_called_invalid(catalog, caplog):
    cat, loader, now = catalog
    assert cat.resolve(None, "t", "u", ["all"]) == ({"all": ALL}, [])
    loader.error = DOWN
    for _ in range(3):
        now[0] += 60
        assert cat.resolve(None, "t", "u", ["all"]) == ({"all": ALL}, [])
    assert loader.calls == 4  # SQL was retried each time the entry had expired
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "database unavailable" in warnings[0].getMessage()
    with pytest.raises(OperationalError):  # SQL may hold it: unknown, not invalid
        cat.resolve(None, "t", "u", ["7777"])
    loader.error = None
    now[0] += 60
    assert cat.resolve(None, "t", "u", ["all", "7777"]) == ({"all": ALL}, ["7777"])


def test_a_tenant_never_loaded_or_a_statement_error_is_not_masked(catalog):
    cat, loader, now = catalog
    loader.error = DOWN
    with pytest.raises(OperationalError):
        cat.resolve(None, "t", "u", ["all"])
    loader.error = None
    cat.resolve(None, "t", "u", ["all"])
    loader.error = ProgrammingError("SELECT", {}, Exception("no such column"))
    now[0] += 60
    with pytest.raises(ProgrammingError):
        cat.resolve(None, "t", "u", ["all"])
