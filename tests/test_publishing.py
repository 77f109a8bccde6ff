"""RedisPublisher against fakeredis: every run delivered once, whole and in order."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from decimal import Decimal
from typing import Any

import fakeredis
import pytest
import redis

from reconciliation._domain.models import (
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    ReconciliationResult,
)
from reconciliation._publishing.payloads import discrepancy_payload, encode, iter_payloads, result_payload
from reconciliation._publishing.redis_publisher import (
    DISCREPANCY_CHANNEL,
    DISCREPANCY_STREAM,
    MAX_PAYLOADS_PER_ROUND_TRIP,
    PUBLISH_SCRIPT,
    PUBLISHED_KEY_PREFIX,
    PUBLISHED_TTL_SECONDS,
    RESULT_CHANNEL,
    RESULT_STREAM,
    PublisherHealth,
    RedisPublisher,
)
from reconciliation._runtime.clock import ManualClock

AT = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)


def highest(low: float, high: float) -> float:
    return high


def discrepancy(symbol: str, local: int) -> Discrepancy:
    return Discrepancy(
        type=DiscrepancyType.QUANTITY_MISMATCH,
        severity=DiscrepancySeverity.CRITICAL,
        symbol=symbol,
        local_value=Decimal(local),
        broker_value=Decimal("150.25"),
        timestamp=AT,
        account_id="ACC-1",
    )


def run(*discrepancies: Discrepancy, trigger: str = "periodic") -> ReconciliationResult:
    return ReconciliationResult(
        run_id=uuid.uuid4(),
        account_id="ACC-1",
        timestamp=AT,
        discrepancies=discrepancies,
        positions_checked=3,
        duration_ms=1.5,
        context={"trigger": trigger},
    )


class Subscriber:
    """Both channels, read in the order the server published them."""

    def __init__(self, client: redis.Redis) -> None:
        self._pubsub = client.pubsub()
        self._pubsub.subscribe(RESULT_CHANNEL, DISCREPANCY_CHANNEL)
        for _ in range(2):
            self._pubsub.get_message(timeout=1)

    def received(self) -> list[tuple[str, str]]:
        messages = []
        while (message := self._pubsub.get_message(timeout=0.05)) is not None:
            messages.append((message["channel"], message["data"]))
        return messages


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def client(server: fakeredis.FakeServer) -> redis.Redis:
    return fakeredis.FakeRedis(server=server, decode_responses=True)


@pytest.fixture
def subscriber(client: redis.Redis) -> Subscriber:
    return Subscriber(client)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(AT)


def make_publisher(client: redis.Redis, clock: ManualClock, **overrides: Any) -> RedisPublisher:
    options: dict[str, Any] = {
        "stream_maxlen": 1_000,
        "outbox_max_runs": 10,
        "retry_max_seconds": 30.0,
        "clock": clock,
        "random": highest,
    }
    return RedisPublisher(client, **(options | overrides))


@pytest.fixture
def publisher(client: redis.Redis, clock: ManualClock) -> RedisPublisher:
    return make_publisher(client, clock)


def stream(client: redis.Redis, key: str) -> list[str]:
    return [fields["payload"] for _, fields in client.xrange(key)]


def test_a_run_is_published_result_first_then_each_discrepancy(
    publisher: RedisPublisher, subscriber: Subscriber
) -> None:
    result = run(discrepancy("AAPL", 100), discrepancy("MSFT", 7))
    publisher.submit(result)

    publisher.deliver()

    assert subscriber.received() == [
        (RESULT_CHANNEL, encode(result_payload(result))),
        (DISCREPANCY_CHANNEL, encode(discrepancy_payload(result, result.discrepancies[0]))),
        (DISCREPANCY_CHANNEL, encode(discrepancy_payload(result, result.discrepancies[1]))),
    ]


def test_the_published_payloads_carry_the_contract_fields(
    publisher: RedisPublisher, subscriber: Subscriber
) -> None:
    result = run(discrepancy("AAPL", 100))
    publisher.submit(result)

    publisher.deliver()

    (_, result_json), (_, discrepancy_json) = subscriber.received()
    assert json.loads(result_json)["run_id"] == str(result.run_id)
    assert json.loads(result_json)["discrepancy_count"] == 1
    assert json.loads(discrepancy_json) | {"run_id": "-"} == {
        "run_id": "-",
        "type": "quantity_mismatch",
        "severity": "critical",
        "symbol": "AAPL",
        "asset_type": "stock",
        "currency": None,
        "local_value": "100",
        "broker_value": "150.25",
        "timestamp": "2026-11-25T10:00:00.000000+00:00",
        "account_id": "ACC-1",
    }


def test_every_payload_is_appended_to_its_stream_under_the_field_payload(
    publisher: RedisPublisher, client: redis.Redis
) -> None:
    result = run(discrepancy("AAPL", 100), discrepancy("MSFT", 7))
    publisher.submit(result)

    publisher.deliver()

    payloads = [payload for _, payload in iter_payloads(result)]
    assert stream(client, RESULT_STREAM) == payloads[:1]
    assert stream(client, DISCREPANCY_STREAM) == payloads[1:]


def test_runs_are_published_in_the_order_they_were_submitted(
    publisher: RedisPublisher, client: redis.Redis
) -> None:
    results = [run() for _ in range(5)]
    for result in results:
        publisher.submit(result)

    publisher.deliver()

    assert [json.loads(p)["run_id"] for p in stream(client, RESULT_STREAM)] == [
        str(r.run_id) for r in results
    ]


def test_the_streams_are_capped_near_stream_maxlen(client: redis.Redis, clock: ManualClock) -> None:
    client.config_set("stream-node-max-entries", 10)
    publisher = make_publisher(client, clock, stream_maxlen=20, outbox_max_runs=100)
    for _ in range(30):
        publisher.submit(run(*(discrepancy(f"S{i}", i) for i in range(5))))

    publisher.deliver()

    assert 20 <= client.xlen(RESULT_STREAM) <= 20 + 10
    assert 20 <= client.xlen(DISCREPANCY_STREAM) <= 20 + 10


def test_deliver_with_nothing_queued_returns_none(publisher: RedisPublisher) -> None:
    assert publisher.deliver() is None


def test_deliver_returns_none_once_everything_is_delivered(publisher: RedisPublisher) -> None:
    publisher.submit(run())

    assert publisher.deliver() is None
    assert publisher.health().outbox_depth == 0


def test_submit_does_not_touch_redis(
    publisher: RedisPublisher, server: fakeredis.FakeServer, client: redis.Redis
) -> None:
    server.connected = False

    publisher.submit(run(discrepancy("AAPL", 1)))

    server.connected = True
    assert client.keys("*") == []
    assert (publisher.health().outbox_depth, publisher.health().outbox_payloads) == (1, 2)


def test_while_redis_is_unreachable_deliver_keeps_the_runs_and_asks_to_retry_later(
    publisher: RedisPublisher, server: fakeredis.FakeServer
) -> None:
    server.connected = False
    for _ in range(3):
        publisher.submit(run())

    delay = publisher.deliver()

    assert delay is not None
    assert delay > 0
    assert publisher.health().outbox_depth == 3


def test_an_unreachable_redis_is_reported_in_health(
    publisher: RedisPublisher, server: fakeredis.FakeServer, clock: ManualClock
) -> None:
    server.connected = False
    publisher.submit(run())
    clock.advance(5)

    publisher.deliver()

    health = publisher.health()
    assert health.redis_reachable is False
    assert health.last_error is not None
    assert "ConnectionError: FakeRedis is emulating a connection error" in health.last_error
    assert health.last_error_at == AT + dt.timedelta(seconds=5)


def test_the_backoff_doubles_from_a_tenth_of_a_second_up_to_retry_max(
    client: redis.Redis, server: fakeredis.FakeServer, clock: ManualClock
) -> None:
    publisher = make_publisher(client, clock, retry_max_seconds=1.0)
    server.connected = False
    publisher.submit(run())

    delays = [publisher.deliver() for _ in range(6)]

    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_the_backoff_is_jittered_over_the_whole_interval(
    client: redis.Redis, server: fakeredis.FakeServer, clock: ManualClock
) -> None:
    intervals: list[float] = []

    def uniform(low: float, high: float) -> float:
        intervals.extend((low, high))
        return (low + high) / 2

    publisher = make_publisher(client, clock, random=uniform)
    server.connected = False
    publisher.submit(run())

    delays = [publisher.deliver(), publisher.deliver()]

    assert intervals == pytest.approx([0.0, 0.1, 0.0, 0.2])
    assert delays == pytest.approx([0.05, 0.1])


def test_the_backoff_starts_again_after_a_delivery(
    publisher: RedisPublisher, server: fakeredis.FakeServer
) -> None:
    server.connected = False
    publisher.submit(run())
    publisher.deliver()
    publisher.deliver()
    server.connected = True
    publisher.deliver()
    server.connected = False
    publisher.submit(run())

    assert publisher.deliver() == pytest.approx(0.1)


def test_when_redis_answers_again_the_queued_runs_arrive_once_and_in_order(
    publisher: RedisPublisher, server: fakeredis.FakeServer, subscriber: Subscriber
) -> None:
    server.connected = False
    results = [run(discrepancy("AAPL", i)) for i in range(3)]
    for result in results:
        publisher.submit(result)
        publisher.deliver()
    server.connected = True

    assert publisher.deliver() is None
    assert publisher.deliver() is None

    expected = [payload for result in results for payload in iter_payloads(result)]
    assert subscriber.received() == expected


def test_recovery_is_reported_in_health(
    publisher: RedisPublisher, server: fakeredis.FakeServer, clock: ManualClock
) -> None:
    server.connected = False
    publisher.submit(run(discrepancy("AAPL", 1)))
    publisher.deliver()
    server.connected = True
    clock.advance(2)

    publisher.deliver()

    health = publisher.health()
    assert health.redis_reachable is True
    assert (health.delivered_runs, health.delivered_payloads, health.outbox_depth) == (1, 2, 0)
    assert health.last_delivery_at == AT + dt.timedelta(seconds=2)


def test_a_run_submitted_twice_is_published_once(
    publisher: RedisPublisher, client: redis.Redis, subscriber: Subscriber
) -> None:
    result = run(discrepancy("AAPL", 100))
    publisher.submit(result)
    publisher.submit(result)

    publisher.deliver()

    assert subscriber.received() == iter_payloads(result)
    assert len(stream(client, RESULT_STREAM)) == 1
    assert publisher.health().already_published_runs == 1


def test_a_run_already_published_in_an_earlier_round_trip_is_not_published_again(
    publisher: RedisPublisher, client: redis.Redis, subscriber: Subscriber
) -> None:
    result = run()
    publisher.submit(result)
    publisher.deliver()
    publisher.submit(result)

    assert publisher.deliver() is None

    assert len(subscriber.received()) == 1
    assert len(stream(client, RESULT_STREAM)) == 1


def test_the_script_re_sent_for_a_published_run_is_a_no_op(
    client: redis.Redis, subscriber: Subscriber
) -> None:
    marker = f"{PUBLISHED_KEY_PREFIX}run-1"
    call = (
        PUBLISH_SCRIPT,
        3,
        marker,
        marker,
        RESULT_STREAM,
        PUBLISHED_TTL_SECONDS,
        100,
        RESULT_CHANNEL,
        "{}",
    )

    assert client.eval(*call) == 1
    assert client.eval(*call) == 0

    assert subscriber.received() == [(RESULT_CHANNEL, "{}")]
    assert len(stream(client, RESULT_STREAM)) == 1


def test_a_published_run_is_remembered_for_the_dedup_ttl(
    publisher: RedisPublisher, client: redis.Redis
) -> None:
    result = run()
    publisher.submit(result)

    publisher.deliver()

    assert client.ttl(f"{PUBLISHED_KEY_PREFIX}{result.run_id}") == PUBLISHED_TTL_SECONDS


def test_when_the_outbox_overflows_the_oldest_run_is_dropped_and_counted(
    client: redis.Redis, server: fakeredis.FakeServer, clock: ManualClock, subscriber: Subscriber
) -> None:
    publisher = make_publisher(client, clock, outbox_max_runs=2)
    server.connected = False
    oldest, middle, newest = run(discrepancy("AAPL", 1)), run(), run()
    for result in (oldest, middle, newest):
        publisher.submit(result)
    server.connected = True

    publisher.deliver()

    assert subscriber.received() == iter_payloads(middle) + iter_payloads(newest)
    assert (publisher.health().dropped_runs, publisher.health().dropped_payloads) == (1, 2)


def test_a_run_the_server_refuses_stays_queued_and_nothing_of_it_is_published(
    publisher: RedisPublisher, client: redis.Redis, subscriber: Subscriber
) -> None:
    client.set(DISCREPANCY_STREAM, "not a stream")
    publisher.submit(run(discrepancy("AAPL", 1)))

    delay = publisher.deliver()

    assert delay == pytest.approx(0.1)
    assert subscriber.received() == []
    assert client.xlen(RESULT_STREAM) == 0
    health = publisher.health()
    assert (health.outbox_depth, health.redis_reachable) == (1, True)
    assert health.last_error is not None
    assert "WRONGTYPE" in health.last_error


def test_a_run_the_server_refused_is_delivered_once_the_cause_is_gone(
    publisher: RedisPublisher, client: redis.Redis, subscriber: Subscriber
) -> None:
    client.set(DISCREPANCY_STREAM, "not a stream")
    result = run(discrepancy("AAPL", 1))
    publisher.submit(result)
    publisher.deliver()
    client.delete(DISCREPANCY_STREAM)

    assert publisher.deliver() is None

    assert subscriber.received() == iter_payloads(result)


def test_a_refused_run_is_not_overtaken_by_the_runs_queued_after_it(
    publisher: RedisPublisher, client: redis.Redis, subscriber: Subscriber
) -> None:
    client.set(DISCREPANCY_STREAM, "not a stream")
    refused, clean = run(discrepancy("AAPL", 1)), run()
    publisher.submit(refused)
    publisher.submit(clean)

    publisher.deliver()
    blocked = subscriber.received()
    client.delete(DISCREPANCY_STREAM)
    publisher.deliver()

    assert blocked == []
    assert subscriber.received() == iter_payloads(refused) + iter_payloads(clean)


def test_runs_are_delivered_after_redis_forgot_the_script(
    publisher: RedisPublisher, client: redis.Redis, subscriber: Subscriber
) -> None:
    publisher.submit(run())
    publisher.deliver()
    subscriber.received()
    client.script_flush()
    results = [run(), run()]
    for result in results:
        publisher.submit(result)

    assert publisher.deliver() is None

    assert subscriber.received() == iter_payloads(results[0]) + iter_payloads(results[1])


class _LostScriptPipeline:
    """A round trip in which Redis forgot the script after the first call."""

    def __init__(self) -> None:
        self.calls = 0

    def eval(self, *_args: object) -> None:
        self.calls += 1

    def evalsha(self, *_args: object) -> None:
        self.calls += 1

    def execute(self, **_options: object) -> list[object]:
        return [1, *[redis.exceptions.NoScriptError("No matching script")] * (self.calls - 1)]


class _LostScriptRedis:
    def pipeline(self, **_options: object) -> _LostScriptPipeline:
        return _LostScriptPipeline()


def test_a_script_lost_mid_round_trip_is_sent_again_at_once(clock: ManualClock) -> None:
    publisher = make_publisher(_LostScriptRedis(), clock)  # type: ignore[arg-type]
    for _ in range(3):
        publisher.submit(run())

    delay = publisher.deliver()

    health = publisher.health()
    assert delay == 0.0
    assert (health.delivered_runs, health.outbox_depth, health.last_error) == (1, 2, None)


def test_a_round_trip_carries_a_bounded_number_of_payloads(
    publisher: RedisPublisher, client: redis.Redis
) -> None:
    per_run = MAX_PAYLOADS_PER_ROUND_TRIP // 2
    for _ in range(3):
        publisher.submit(run(*(discrepancy(f"S{i}", i) for i in range(per_run - 1))))

    first = publisher.deliver()
    delivered_first = publisher.health().delivered_runs
    second = publisher.deliver()

    assert (first, delivered_first) == (0.0, 2)
    assert (second, publisher.health().delivered_runs) == (None, 3)
    assert client.xlen(RESULT_STREAM) == 3


def test_health_starts_empty_and_reachable(publisher: RedisPublisher) -> None:
    assert publisher.health() == PublisherHealth(
        outbox_depth=0,
        outbox_payloads=0,
        delivered_runs=0,
        delivered_payloads=0,
        dropped_runs=0,
        dropped_payloads=0,
        already_published_runs=0,
        last_error=None,
        last_error_at=None,
        last_delivery_at=None,
        redis_reachable=True,
    )


def test_the_first_failure_is_a_warning_and_the_next_ones_are_debug(
    publisher: RedisPublisher, server: fakeredis.FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.connected = False
    publisher.submit(run())

    with caplog.at_level(logging.DEBUG, logger="reconciliation._publishing.redis_publisher"):
        for _ in range(3):
            publisher.deliver()

    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert "FakeRedis is emulating a connection error" in caplog.records[0].getMessage()


def test_recovery_is_logged_at_info_with_the_runs_delivered_late(
    publisher: RedisPublisher, server: fakeredis.FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.connected = False
    for _ in range(3):
        publisher.submit(run())
    publisher.deliver()
    server.connected = True
    caplog.clear()

    with caplog.at_level(logging.INFO, logger="reconciliation._publishing.redis_publisher"):
        publisher.deliver()

    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert "3 runs delivered late" in record.getMessage()


def test_a_delivery_without_earlier_failure_logs_nothing(
    publisher: RedisPublisher, caplog: pytest.LogCaptureFixture
) -> None:
    publisher.submit(run(discrepancy("AAPL", 1)))

    with caplog.at_level(logging.DEBUG, logger="reconciliation"):
        publisher.deliver()

    assert caplog.records == []
