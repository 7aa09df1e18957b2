"""tally.stores.sql."""
