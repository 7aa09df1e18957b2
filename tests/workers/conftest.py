"""Fixtures shared by the worker tests."""
import pytest
import redis


@pytest.fixture
def queue_redis(redis_url):
    """A raw-bytes client on the suite's Redis, as RQ uses it."""
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()
