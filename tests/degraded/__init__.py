"""Degraded modes: a backing service down, and what tally still does."""
import pytest

pytest.register_assert_rewrite("tests.degraded.helpers")
