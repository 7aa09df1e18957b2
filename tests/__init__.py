"""tally's test suite: test modules mirror src/tally; tests/support holds every shared helper."""
import pytest

# The helpers check with plain asserts: rewrite them as pytest rewrites test modules.
pytest.register_assert_rewrite("tests.support")
