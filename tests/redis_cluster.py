"""A private 3-master Redis Cluster per test, on free loopback ports, whose masters a test may restart.

Each master is a `RedisServer` started with `--cluster-enabled yes`; `redis-cli --cluster
create` joins them and shares the 16384 slots out. There are no replicas and no
persistence: a restarted master keeps its node id and slots (its nodes.conf is kept) but
comes back empty, as a crashed master without persistence does.
"""

from __future__ import annotations

import subprocess
import time
from typing import TYPE_CHECKING

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster
from redis_server import RedisServer, free_port, redis_executable

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["LocalCluster", "redis_cluster"]

MASTERS = 3
NODE_TIMEOUT_MS = 1_000
READY_TIMEOUT_SECONDS = 20.0


class LocalCluster:
    """Three cluster-enabled redis-servers, joined."""

    def __init__(self, directory: Path) -> None:
        executable = redis_executable()
        self._cli = redis_executable("redis-cli")
        self.masters = [
            RedisServer(
                executable,
                directory / f"node-{index}",
                (
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(NODE_TIMEOUT_MS),
                    "--cluster-port",
                    str(free_port()),
                ),
            )
            for index in range(MASTERS)
        ]

    def start(self) -> None:
        for master in self.masters:
            master.start()
        addresses = [f"127.0.0.1:{master.port}" for master in self.masters]
        created = subprocess.run(  # noqa: S603 (a fixed command line)
            [self._cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if created.returncode != 0:
            self.kill()
            pytest.fail(f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}", pytrace=False)
        self.wait_until_ready()

    def wait_until_ready(self) -> None:
        """Until every master says the cluster is ok and knows all three masters."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            if all(self._ready(master) for master in self.masters):
                return
            if time.monotonic() > deadline:
                pytest.fail("the local Redis Cluster did not become ready", pytrace=False)
            time.sleep(0.05)

    def _ready(self, master: RedisServer) -> bool:
        client = master.client()
        try:
            info = client.execute_command("CLUSTER", "INFO")
        except redis.RedisError:
            return False
        finally:
            client.close()
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text and f"cluster_known_nodes:{MASTERS}" in text

    def master_of(self, key: str) -> RedisServer:
        """The master that holds `key`'s slot."""
        slot = redis.RedisCluster.keyslot(self.client(), key)
        probe = self.masters[0].client()
        try:
            ranges = probe.execute_command("CLUSTER", "SLOTS")
        finally:
            probe.close()
        port = next(int(primary[1]) for start, end, primary, *_ in ranges if start <= slot <= end)
        return next(master for master in self.masters if master.port == port)

    def client(self, **options: object) -> RedisCluster:
        """A cluster client that finds the others from the first master."""
        return RedisCluster(
            startup_nodes=[ClusterNode("127.0.0.1", master.port) for master in self.masters],  # type: ignore[no-untyped-call]
            socket_connect_timeout=0.5,
            socket_timeout=2.0,
            **options,  # type: ignore[arg-type]
        )

    def kill(self) -> None:
        for master in self.masters:
            master.kill()


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A started private Redis Cluster of three masters, killed after the test."""
    cluster = LocalCluster(tmp_path)
    cluster.start()
    yield cluster
    cluster.kill()
