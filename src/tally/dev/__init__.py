"""tally.dev."""
