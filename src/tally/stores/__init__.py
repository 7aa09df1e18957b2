"""Stores: SQL (the truth) and Redis (derived counters)."""
