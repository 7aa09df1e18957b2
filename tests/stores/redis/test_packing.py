"""The counter client's command packer sends the bytes redis-py's own serializer would."""
import pytest
from redis.connection import PythonRespSerializer
from redis.exceptions import DataError

from tally.extensions import counter_client
from tally.stores.redis.packing import HiredisPacker

PYTHON = PythonRespSerializer(6000, lambda value: (
    value if isinstance(value, bytes) else str(value).encode() if not isinstance(value, float)
    else repr(value).encode())).pack


@pytest.mark.parametrize("args", [
    ("EVALSHA", "ab" * 20, 2, "tally:{t}:wm", "tally:{t}:mp:1", "-inf", "(1700000000000", 3),
    ("HINCRBY", "tally:{t}:mp:é", "asg:auth0|42", -1),
    ("SCRIPT LOAD", "return 1"),
    ("SET", "k", 1.5),
    ("GET", b"raw"),
])
def test_the_packer_sends_what_redis_py_sends(args):
    assert b"".join(HiredisPacker().pack(*args)) == b"".join(PYTHON(*args))


def test_a_value_redis_cannot_take_is_a_data_error():
    with pytest.raises(DataError):
        HiredisPacker().pack("SET", "k", None)


def test_the_counter_client_uses_it(redis_url):
    client = counter_client(redis_url, cluster=False)  # as the app builds it
    assert isinstance(client.connection_pool.connection_kwargs["command_packer"], HiredisPacker)
    client.set("k", 1.5)
    assert client.get("k") == "1.5" and client.execute_command("CLIENT SETNAME", "t") is True
    client.close()
