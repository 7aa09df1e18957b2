"""tally: exact, constant-time notification and ticket counts."""
