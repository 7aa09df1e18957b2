"""tally.stores.redis."""
