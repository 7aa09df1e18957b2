"""tally.core."""
