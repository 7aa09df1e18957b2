"""Every helper the tests share (test modules take helpers from here, not from each other;
tests/cluster re-collects whole tests on a Redis Cluster): the API and its wire formats (api,
events, tickets, sse, tokens, jwks_server), data (factories, randomdata, random_filters, cells,
oracle), and processes (processes, web, postgres, redis_cluster, counter_store, deployment,
traffic, recount, slow_clients, cdp, degraded)."""
