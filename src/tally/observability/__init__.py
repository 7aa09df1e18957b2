"""tally.observability."""
