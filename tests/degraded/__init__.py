"""Degraded modes: a backing service down, and what tally still does."""
