"""What every use case is given: one app's configuration, connections and app-scoped state
(built once per app by tally.extensions.init_app)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import redis

from tally.core.clock import Clock, utc_now
from tally.core.plans import PlanCache
from tally.services.catalog import FilterCatalog
from tally.settings import Base
from tally.stores.redis.cells import TicketCounters
from tally.stores.redis.counters import RedisCounters
from tally.stores.sql.db import Database


class RealmDirectory(Protocol):
    """The realms whose tokens are accepted, by name (tally.auth.realms.Realms)."""

    def get(self, name: str) -> object | None: ...


@dataclass
class Services:
    config: Base
    db: Database
    counters: RedisCounters
    ticket_counters: TicketCounters
    queue_redis: redis.Redis
    realms: RealmDirectory
    filter_catalog: FilterCatalog
    ticket_plans: PlanCache
    clock: Clock = utc_now
