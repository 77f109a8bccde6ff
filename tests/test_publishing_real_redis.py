"""RedisPublisher against a real, private redis-server that the tests kill and restart."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from reconciliation._domain.models import (
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    ReconciliationResult,
)
from reconciliation._publishing.payloads import iter_payloads
from reconciliation._publishing.redis_publisher import (
    DISCREPANCY_CHANNEL,
    DISCREPANCY_STREAM,
    PUBLISH_SCRIPT,
    PUBLISHED_KEY_PREFIX,
    PUBLISHED_TTL_SECONDS,
    RESULT_CHANNEL,
    RESULT_STREAM,
    RedisPublisher,
)
from reconciliation._runtime.clock import ManualClock

if TYPE_CHECKING:
    import redis
    from redis_server import RedisServer

pytestmark = pytest.mark.real_redis

AT = dt.datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=dt.UTC)


def quantity_mismatch(symbol: str = "AAPL") -> Discrepancy:
    return Discrepancy(
        type=DiscrepancyType.QUANTITY_MISMATCH,
        severity=DiscrepancySeverity.CRITICAL,
        symbol=symbol,
        local_value=Decimal(100),
        broker_value=Decimal("1.5025E+2"),
        timestamp=AT,
        account_id="ACC-1",
    )


def cash_mismatch() -> Discrepancy:
    return Discrepancy(
        type=DiscrepancyType.CASH_MISMATCH,
        severity=DiscrepancySeverity.WARNING,
        symbol=None,
        local_value=Decimal("10000.00"),
        broker_value=Decimal("9875.4"),
        timestamp=AT,
        account_id="ACC-1",
    )


def run(*discrepancies: Discrepancy, run_id: uuid.UUID | None = None) -> ReconciliationResult:
    return ReconciliationResult(
        run_id=run_id or uuid.uuid4(),
        account_id="ACC-1",
        timestamp=AT,
        discrepancies=discrepancies,
        positions_checked=12,
        duration_ms=3.2,
        context={"trigger": "on_demand", "requested_by": "api"},
    )


def make_publisher(client: redis.Redis) -> RedisPublisher:
    return RedisPublisher(
        client,
        stream_maxlen=1_000,
        outbox_max_runs=10,
        retry_max_seconds=1.0,
        clock=ManualClock(AT),
        random=lambda _low, high: high,
    )


class Subscriber:
    def __init__(self, client: redis.Redis) -> None:
        self._pubsub = client.pubsub()
        self._pubsub.subscribe(RESULT_CHANNEL, DISCREPANCY_CHANNEL)
        for _ in range(2):
            assert self._pubsub.get_message(timeout=1) is not None

    def received(self) -> list[tuple[str, str]]:
        messages = []
        while (message := self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)) is not None:
            messages.append((message["channel"], message["data"]))
        return messages

    def close(self) -> None:
        self._pubsub.close()


@pytest.fixture
def subscriber(real_redis: redis.Redis) -> Any:
    subscriber = Subscriber(real_redis)
    yield subscriber
    subscriber.close()


def stream(client: redis.Redis, key: str) -> list[str]:
    return [fields["payload"] for _, fields in client.xrange(key)]


def deliver_all(publisher: RedisPublisher) -> None:
    for _ in range(10):
        if publisher.deliver() is None:
            return
    pytest.fail(f"the outbox did not empty: {publisher.health()}")


def test_both_payloads_arrive_on_the_real_server_with_every_field(
    real_redis: redis.Redis, subscriber: Subscriber
) -> None:
    run_id = uuid.UUID("0b7e8c1e-5f2a-4d8e-9a61-3c2f1e0d9b7a")
    publisher = make_publisher(real_redis)
    publisher.submit(run(quantity_mismatch(), cash_mismatch(), run_id=run_id))

    assert publisher.deliver() is None

    messages = [(channel, json.loads(data)) for channel, data in subscriber.received()]
    assert messages == [
        (
            RESULT_CHANNEL,
            {
                "run_id": str(run_id),
                "account_id": "ACC-1",
                "timestamp": "2026-11-25T10:00:00.123456+00:00",
                "is_clean": False,
                "discrepancy_count": 2,
                "positions_checked": 12,
                "duration_ms": 3.2,
                "context": {"trigger": "on_demand", "requested_by": "api"},
                "status": "ok",
                "error": None,
                "netted": [],
            },
        ),
        (
            DISCREPANCY_CHANNEL,
            {
                "run_id": str(run_id),
                "type": "quantity_mismatch",
                "severity": "critical",
                "symbol": "AAPL",
                "asset_type": "stock",
                "currency": None,
                "local_value": "100",
                "broker_value": "150.25",
                "timestamp": "2026-11-25T10:00:00.123456+00:00",
                "account_id": "ACC-1",
            },
        ),
        (
            DISCREPANCY_CHANNEL,
            {
                "run_id": str(run_id),
                "type": "cash_mismatch",
                "severity": "warning",
                "symbol": None,
                "asset_type": None,
                "currency": None,
                "local_value": "10000.00",
                "broker_value": "9875.4",
                "timestamp": "2026-11-25T10:00:00.123456+00:00",
                "account_id": "ACC-1",
            },
        ),
    ]


def test_a_failed_run_arrives_with_status_failed_and_its_error(
    real_redis: redis.Redis, subscriber: Subscriber
) -> None:
    publisher = make_publisher(real_redis)
    failed = ReconciliationResult(
        run_id=uuid.uuid4(), account_id="ACC-1", timestamp=AT, error="broker timed out after 30.0 s"
    )
    publisher.submit(failed)

    publisher.deliver()

    [(_, data)] = subscriber.received()
    payload = json.loads(data)
    assert (payload["status"], payload["is_clean"], payload["error"]) == (
        "failed",
        False,
        "broker timed out after 30.0 s",
    )


def test_both_streams_read_back_what_was_published(real_redis: redis.Redis) -> None:
    publisher = make_publisher(real_redis)
    first, second = run(quantity_mismatch()), run(cash_mismatch(), quantity_mismatch("MSFT"))
    publisher.submit(first)
    publisher.submit(second)

    publisher.deliver()

    payloads = iter_payloads(first) + iter_payloads(second)
    assert stream(real_redis, RESULT_STREAM) == [p for c, p in payloads if c == RESULT_CHANNEL]
    assert stream(real_redis, DISCREPANCY_STREAM) == [p for c, p in payloads if c == DISCREPANCY_CHANNEL]


def test_the_streams_are_capped_on_the_real_server(real_redis: redis.Redis) -> None:
    real_redis.config_set("stream-node-max-entries", 10)
    publisher = RedisPublisher(
        real_redis, stream_maxlen=20, outbox_max_runs=100, retry_max_seconds=1.0, clock=ManualClock(AT)
    )
    for _ in range(60):
        publisher.submit(run())

    deliver_all(publisher)

    assert 20 <= real_redis.xlen(RESULT_STREAM) <= 20 + 10


def test_runs_made_while_redis_was_down_arrive_once_each_and_in_order_after_a_restart(
    redis_server: RedisServer, real_redis: redis.Redis
) -> None:
    publisher = make_publisher(real_redis)
    publisher.submit(run())
    deliver_all(publisher)
    redis_server.kill()
    made_while_down = [run(quantity_mismatch()), run(), run(cash_mismatch(), quantity_mismatch("MSFT"))]
    delays = []
    for result in made_while_down:
        publisher.submit(result)
        delays.append(publisher.deliver())
    redis_server.restart()
    subscriber = Subscriber(real_redis)

    deliver_all(publisher)

    assert all(delay is not None and delay > 0 for delay in delays)
    expected = [payload for result in made_while_down for payload in iter_payloads(result)]
    assert subscriber.received() == expected
    assert stream(real_redis, RESULT_STREAM) == [p for c, p in expected if c == RESULT_CHANNEL]
    assert stream(real_redis, DISCREPANCY_STREAM) == [p for c, p in expected if c == DISCREPANCY_CHANNEL]
    subscriber.close()


def test_health_reports_the_outage_and_the_recovery(
    redis_server: RedisServer, real_redis: redis.Redis
) -> None:
    publisher = make_publisher(real_redis)
    redis_server.kill()
    publisher.submit(run())
    publisher.deliver()
    during = publisher.health()
    redis_server.restart()

    deliver_all(publisher)

    after = publisher.health()
    assert (during.redis_reachable, during.outbox_depth) == (False, 1)
    assert during.last_error is not None
    assert "ConnectionError" in during.last_error
    assert (after.redis_reachable, after.outbox_depth, after.delivered_runs) == (True, 0, 1)


def test_a_run_whose_script_is_executed_twice_appears_once(
    real_redis: redis.Redis, subscriber: Subscriber
) -> None:
    marker = f"{PUBLISHED_KEY_PREFIX}{uuid.uuid4()}"
    keys = [marker, marker, RESULT_STREAM, DISCREPANCY_STREAM]
    args = [PUBLISHED_TTL_SECONDS, 100, RESULT_CHANNEL, '{"n":1}', DISCREPANCY_CHANNEL, '{"n":2}']

    replies = [real_redis.eval(PUBLISH_SCRIPT, len(keys), *keys, *args) for _ in range(2)]

    assert replies == [1, 0]
    assert subscriber.received() == [(RESULT_CHANNEL, '{"n":1}'), (DISCREPANCY_CHANNEL, '{"n":2}')]
    assert (stream(real_redis, RESULT_STREAM), stream(real_redis, DISCREPANCY_STREAM)) == (
        ['{"n":1}'],
        ['{"n":2}'],
    )


class _ResendingPipeline:
    """Sends the queued commands twice, as redis-py does when a reply is lost, and returns the second replies."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._calls: list[tuple[str, tuple[Any, ...]]] = []

    def eval(self, *args: Any) -> None:
        self._calls.append(("eval", args))

    def evalsha(self, *args: Any) -> None:
        self._calls.append(("evalsha", args))

    def execute(self, **options: Any) -> list[Any]:
        replies: list[Any] = []
        for _ in range(2):
            pipeline = self._client.pipeline(transaction=False)
            for name, args in self._calls:
                getattr(pipeline, name)(*args)
            replies = pipeline.execute(**options)
        return replies


class _ResendingRedis:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def pipeline(self, **_options: Any) -> _ResendingPipeline:
        return _ResendingPipeline(self._client)


def test_a_round_trip_re_sent_by_the_client_publishes_each_run_once(
    real_redis: redis.Redis, subscriber: Subscriber
) -> None:
    publisher = make_publisher(_ResendingRedis(real_redis))  # type: ignore[arg-type]
    results = [run(quantity_mismatch()), run()]
    for result in results:
        publisher.submit(result)

    assert publisher.deliver() is None

    expected = iter_payloads(results[0]) + iter_payloads(results[1])
    assert subscriber.received() == expected
    assert len(stream(real_redis, RESULT_STREAM)) == 2
    assert publisher.health().already_published_runs == 2
