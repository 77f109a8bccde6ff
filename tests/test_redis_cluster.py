"""Publishing and following the streams on a real Redis Cluster of three masters.

Every key the service writes carries the `{reconciliation}` hash tag, so one master
takes a run's script calls; channel names do not change, and a subscriber on any node
hears every payload.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Self

import pytest
from click.testing import CliRunner
from helpers import eventually
from redis_cluster import LocalCluster, redis_cluster

from reconciliation import (
    BrokerPosition,
    InMemoryPortfolio,
    ReconciliationConfig,
    ReconciliationService,
)
from reconciliation._cli.main import ExitCode, main
from reconciliation._domain.sinks import Sent
from reconciliation._publishing.redis_sink import CLUSTER_KEYS, STREAM_FIELD, PendingRun, RedisSink
from reconciliation._publishing.redis_sink import RESULT_STREAM as STANDALONE_RESULT_STREAM
from reconciliation._publishing.streams import StreamFollower
from reconciliation._wire.payloads import DISCREPANCY_CHANNEL, RESULT_CHANNEL
from reconciliation.testing import ScriptedBroker, capture_published, settle

if TYPE_CHECKING:
    from collections.abc import Iterator

    from redis.cluster import RedisCluster

__all__ = ["redis_cluster"]

pytestmark = pytest.mark.real_redis

ACCOUNT = "ACC-1"
RESULT_STREAM = CLUSTER_KEYS.stream_of(RESULT_CHANNEL)
DISCREPANCY_STREAM = CLUSTER_KEYS.stream_of(DISCREPANCY_CHANNEL)


@pytest.fixture
def cluster_client(redis_cluster: LocalCluster) -> Iterator[RedisCluster]:
    client = redis_cluster.client()
    yield client
    client.close()


def stream_payloads(client: RedisCluster, stream: str) -> list[dict[str, Any]]:
    return [json.loads(fields[STREAM_FIELD.encode()]) for _, fields in client.xrange(stream)]


def run_ids(client: RedisCluster) -> list[str]:
    return [payload["run_id"] for payload in stream_payloads(client, RESULT_STREAM)]


def our_keys(cluster: LocalCluster) -> dict[int, list[str]]:
    """Every key on each master, by master port."""
    found: dict[int, list[str]] = {}
    for master in cluster.masters:
        client = master.client()
        try:
            found[master.port] = sorted(client.keys("*"))
        finally:
            client.close()
    return found


class Desk:
    """A service with one break (the broker holds 40 NVDA the book does not), publishing
    through a cluster client, its runs asked for by hand (the periodic ones are an hour
    apart); on the system clock, so that it retries an unreachable Redis by itself."""

    def __init__(self, client: RedisCluster) -> None:
        self.broker = ScriptedBroker(ACCOUNT, [BrokerPosition("NVDA", 40, "120.00", "4800")], cash=Decimal(1000))
        self.book = InMemoryPortfolio(ACCOUNT, Decimal(1000))
        config = ReconciliationConfig(
            ACCOUNT, equity_tolerance_pct=Decimal(100), interval_seconds=3600, publish_retry_max_seconds=0.2
        )
        self.service = ReconciliationService(self.book, self.broker, client, config)

    def __enter__(self) -> Self:
        asyncio.run(self.service.start())
        settle(self.service)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run(self.service.stop())

    def run(self) -> str:
        return str(asyncio.run(self.service.reconcile()).run_id)

    def queued(self) -> int:
        return self.service.health().delivery["redis"].queued_runs


def test_a_service_publishes_every_run_through_a_cluster_to_streams_under_one_hash_tag(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    with capture_published() as capture, Desk(cluster_client) as desk:
        desk.run()
        eventually(lambda: len(run_ids(cluster_client)) == 2, what="both runs in the cluster's result stream")

        assert stream_payloads(cluster_client, RESULT_STREAM) == capture.results
        assert stream_payloads(cluster_client, DISCREPANCY_STREAM) == capture.discrepancies
    holding = {port: keys for port, keys in our_keys(redis_cluster).items() if keys}
    (keys,) = holding.values()
    assert all(key.startswith("{reconciliation}:") for key in keys)
    assert len({cluster_client.keyslot(key) for key in keys}) == 1


def test_a_subscriber_on_any_node_hears_the_runs_on_the_unchanged_channels(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    elsewhere = next(m for m in redis_cluster.masters if m is not redis_cluster.master_of(RESULT_STREAM))
    listener = elsewhere.client()
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(RESULT_CHANNEL, DISCREPANCY_CHANNEL)
    heard: list[tuple[str, dict[str, Any]]] = []
    try:
        with Desk(cluster_client):

            def two_messages() -> bool:
                message = pubsub.get_message(timeout=0.05)
                if message is not None:
                    heard.append((message["channel"], json.loads(message["data"])))
                return len(heard) >= 2

            eventually(two_messages, what="the startup run's result and discrepancy on a node without our keys")
    finally:
        pubsub.close()
        listener.close()
    assert [channel for channel, _ in heard] == [RESULT_CHANNEL, DISCREPANCY_CHANNEL]
    assert heard[1][1]["symbol"] == "NVDA"


def sink_for(client: RedisCluster) -> RedisSink:
    from reconciliation._publishing.connection import publishing_client  # noqa: PLC0415

    return RedisSink(lambda: publishing_client(client), stream_maxlen=100_000)


def a_run(run_id: str, breaks: int) -> PendingRun:
    payloads = [(RESULT_CHANNEL, json.dumps({"run_id": run_id}))]
    payloads += [(DISCREPANCY_CHANNEL, json.dumps({"run_id": run_id, "n": n})) for n in range(breaks)]
    return PendingRun(run_id, tuple(payloads))


def test_a_run_sent_twice_through_a_cluster_is_published_once(cluster_client: RedisCluster) -> None:
    sink = sink_for(cluster_client)
    run = a_run("run-1", 3)

    assert sink.send([run]) == Sent(1)
    assert sink.send([run]) == Sent(1)

    assert run_ids(cluster_client) == ["run-1"]
    assert cluster_client.xlen(DISCREPANCY_STREAM) == 3
    sink.close()


def test_a_large_run_through_a_cluster_is_published_whole_in_order_and_once(cluster_client: RedisCluster) -> None:
    sink = sink_for(cluster_client)
    runs = [a_run("big", 1_234), a_run("after", 1)]

    assert sink.send(runs) == Sent(2)
    assert sink.send(runs) == Sent(2)

    assert run_ids(cluster_client) == ["big", "after"]
    numbers = [p["n"] for p in stream_payloads(cluster_client, DISCREPANCY_STREAM) if p["run_id"] == "big"]
    assert numbers == list(range(1_234))
    sink.close()


def test_runs_finished_while_the_master_holding_our_keys_restarts_are_delivered_after_it_in_order_once(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    ours = redis_cluster.master_of(RESULT_STREAM)
    with Desk(cluster_client) as desk:
        eventually(lambda: len(run_ids(cluster_client)) == 1, what="the startup run in the cluster")
        ours.kill()
        during = [desk.run(), desk.run()]
        eventually(lambda: desk.queued() == 2, what="both runs queued while the master is down")
        ours.start()
        redis_cluster.wait_until_ready()
        eventually(lambda: run_ids(cluster_client) == during, timeout=15, what="the queued runs delivered")
        after = desk.run()
        eventually(lambda: run_ids(cluster_client) == [*during, after], what="the next run delivered after them")

        assert desk.service.health().delivery["redis"].dropped_runs == 0


def test_the_stream_follower_reads_a_clusters_streams_in_publish_order(cluster_client: RedisCluster) -> None:
    sink = sink_for(cluster_client)
    sink.send([a_run("first", 2)])
    time.sleep(0.002)  # two runs in one millisecond come out results first (docs/payloads.md)
    sink.send([a_run("second", 1)])
    sink.close()
    entries: list[tuple[str, str]] = []

    StreamFollower(cluster_client, block_seconds=0.1).run(
        lambda entry: entries.append((entry.channel, json.loads(entry.raw or b"{}")["run_id"])),
        replay_last=5,
        done=lambda: len(entries) >= 5,
    )

    assert entries == [
        (RESULT_CHANNEL, "first"),
        (DISCREPANCY_CHANNEL, "first"),
        (DISCREPANCY_CHANNEL, "first"),
        (RESULT_CHANNEL, "second"),
        (DISCREPANCY_CHANNEL, "second"),
    ]


def test_watch_cluster_replays_what_the_clusters_streams_kept(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    with Desk(cluster_client):
        eventually(lambda: len(run_ids(cluster_client)) == 1, what="the startup run in the cluster")
    url = f"redis://127.0.0.1:{redis_cluster.masters[0].port}/0"

    outcome = CliRunner().invoke(
        main, ["watch", "--cluster", "--json", "--replay", "5", "--timeout", "0.5", "--redis-url", url]
    )

    assert outcome.exit_code == 0, outcome.output
    shown = [json.loads(line) for line in outcome.output.splitlines()]
    assert [line["channel"] for line in shown] == [RESULT_CHANNEL, DISCREPANCY_CHANNEL]
    assert shown[1]["symbol"] == "NVDA"


def test_watch_without_cluster_on_a_cluster_node_says_to_add_cluster(redis_cluster: LocalCluster) -> None:
    elsewhere = next(m for m in redis_cluster.masters if m is not redis_cluster.master_of(STANDALONE_RESULT_STREAM))
    url = f"redis://127.0.0.1:{elsewhere.port}/0"

    outcome = CliRunner().invoke(main, ["watch", "--replay", "1", "--timeout", "0.5", "--redis-url", url])

    assert outcome.exit_code == ExitCode.REDIS_REFUSED
    assert "a Redis Cluster node: add --cluster" in outcome.output
