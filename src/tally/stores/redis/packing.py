"""How the counter client packs a command: its arguments handed to hiredis as they are.

redis-py 8's hiredis serializer re-encodes each argument in Python (type checks and an `encode`
per argument) before it calls `hiredis.pack_command`. A warm sidebar read sends one EVALSHA of
some 200 arguments, so that loop cost about 0.9 ms per read on this machine, more than the rest
of the request (bench/profile.py, ticket row: 1.85 ms per read with redis-py 6, 2.73 with 8.2).
tally's counter commands carry only str, int and float arguments, which hiredis packs in C, as
redis-py 5 and 6 let it do.
"""
from __future__ import annotations

from typing import Any

import hiredis
from redis.exceptions import DataError


class HiredisPacker:
    """A redis-py `command_packer`: one `hiredis.pack_command` per command."""

    def pack(self, *args: Any) -> list[bytes]:
        head = args[0]
        if isinstance(head, str) and " " in head:  # "SCRIPT LOAD", "CLIENT SETNAME", ...
            args = (*head.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError as error:  # a value Redis cannot take (None, a list): as redis-py says
            raise DataError(str(error)) from None
