"""tally.services."""
