"""Benchmarks: scripts that measure tally's speed (never asserted by the test suite)."""
