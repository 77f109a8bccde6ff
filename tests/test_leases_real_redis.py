"""Account leases on a real redis-server and on a real Redis Cluster of three masters: expiry
is Redis's own clock, and on a Cluster every lease key carries the `{reconciliation}` tag."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from helpers import eventually
from redis_cluster import LocalCluster, redis_cluster

from reconciliation import InMemoryPortfolio, ReconciliationConfig, ReconciliationService
from reconciliation._publishing.connection import publishing_client
from reconciliation._publishing.leases import AccountLeases, HeldElsewhere, Lease
from reconciliation._publishing.runtime_names import RuntimeName, new_instance
from reconciliation.testing import ScriptedBroker

if TYPE_CHECKING:
    import redis
    from redis_server import RedisServer

__all__ = ["redis_cluster"]

pytestmark = pytest.mark.real_redis


def test_a_lease_its_holder_stops_renewing_expires_and_passes_under_a_higher_token(
    redis_server: RedisServer, real_redis: redis.Redis
) -> None:
    owner = AccountLeases(redis_server.client, owner="eu-1", ttl_seconds=0.3)
    standby = AccountLeases(redis_server.client, owner="eu-2", ttl_seconds=0.3)
    assert owner.claim_all(["ACC-1"]) == {"ACC-1": Lease("ACC-1", 1, 300)}
    assert isinstance(standby.claim_all(["ACC-1"])["ACC-1"], HeldElsewhere)

    time.sleep(0.4)

    assert standby.claim_all(["ACC-1"]) == {"ACC-1": Lease("ACC-1", 2, 300)}
    assert real_redis.get("reconciliation:lease:ACC-1") == "eu-2|2"


def test_a_renewed_lease_outlives_its_first_expiry(redis_server: RedisServer) -> None:
    owner = AccountLeases(redis_server.client, owner="eu-1", ttl_seconds=0.4)
    owner.claim_all(["ACC-1"])
    for _ in range(4):
        time.sleep(0.15)
        owner.claim_all(["ACC-1"])

    claimed = AccountLeases(redis_server.client, owner="eu-2", ttl_seconds=0.4).claim_all(["ACC-1"])["ACC-1"]

    assert isinstance(claimed, HeldElsewhere)
    assert claimed.holder == "eu-1"


def test_on_a_cluster_every_lease_and_name_key_carries_the_hash_tag(redis_cluster: LocalCluster) -> None:
    client = redis_cluster.client()
    connect = lambda: publishing_client(client)  # noqa: E731 - a client of our own, as the runtime makes
    leases = AccountLeases(connect, owner="eu-1", ttl_seconds=5)
    name = RuntimeName(connect, name="eu-1", instance=new_instance(), ttl_seconds=5, renew_seconds=5 / 3)

    name.claim()
    claimed = leases.claim_all([f"ACC-{n}" for n in range(20)])
    held_elsewhere = AccountLeases(connect, owner="eu-2", ttl_seconds=5).claim_all(["ACC-7"])["ACC-7"]

    assert all(isinstance(c, Lease) for c in claimed.values())
    assert held_elsewhere == HeldElsewhere("ACC-7", "eu-1", held_elsewhere.ttl_ms)
    assert client.get("{reconciliation}:lease:ACC-19") == b"eu-1|1"
    assert client.get("{reconciliation}:runtime:eu-1") is not None
    name.release()
    leases.close()
    client.close()


def test_on_a_cluster_a_second_runtime_of_the_account_stands_by_and_the_owners_entries_carry_its_fence(
    redis_cluster: LocalCluster,
) -> None:
    client = redis_cluster.client()
    services = [
        ReconciliationService(
            InMemoryPortfolio("ACC-1", cash=Decimal(1000)),
            ScriptedBroker("ACC-1", cash=Decimal(1000)),
            client,
            ReconciliationConfig("ACC-1"),
            name=name,
        )
        for name in ("eu-1", "eu-2")
    ]
    try:
        for service in services:
            asyncio.run(service.start())
        standby = services[1].health().standby
        eventually(lambda: client.xlen("{reconciliation}:stream:result") == 1, what="the owner's startup run")
    finally:
        for service in services:
            asyncio.run(service.stop())

    assert standby == {"ACC-1": "standby (owned by eu-1)"}
    ((_, fields),) = client.xrange("{reconciliation}:stream:result")
    assert (fields[b"runtime"], fields[b"fencing_token"]) == (b"eu-1", b"1")
    client.close()
