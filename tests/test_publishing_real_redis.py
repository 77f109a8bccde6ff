"""Publishing against a real, private redis-server that the tests kill and restart —
by Lua script, and by MULTI/EXEC as a server without scripting is published to."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
import redis

from reconciliation._domain.models import (
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    ReconciliationResult,
)
from reconciliation._domain.sinks import Sent, SinkUnavailableError
from reconciliation._publishing.connection import publishing_retry
from reconciliation._publishing.redis_sink import (
    DISCREPANCY_STREAM,
    PUBLISH_SCRIPT,
    PUBLISHED_KEY_PREFIX,
    PUBLISHED_TTL_SECONDS,
    RESULT_STREAM,
    PendingRun,
    RedisSink,
)
from reconciliation._wire.payloads import DISCREPANCY_CHANNEL, RESULT_CHANNEL, iter_payloads

if TYPE_CHECKING:
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


class WithoutScripting(redis.Redis):
    """A client to a server whose ACL (or build) does not let it run scripts."""

    def script_load(self, script: str) -> str:
        msg = "NOPERM this user has no permissions to run the 'script|load' command"
        raise redis.ResponseError(msg)


@pytest.fixture(params=["script", "transaction"])
def sink(request: pytest.FixtureRequest, redis_server: RedisServer) -> RedisSink:
    """A sink with its own client, as the service makes one."""
    kind = redis.Redis if request.param == "script" else WithoutScripting

    def connect() -> redis.Redis:
        return kind(
            host="127.0.0.1",
            port=redis_server.port,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=publishing_retry(),
        )

    return RedisSink(connect, stream_maxlen=1_000)


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


def pending(*results: ReconciliationResult) -> list[PendingRun]:
    return [PendingRun(str(r.run_id), iter_payloads(r)) for r in results]


def test_both_payloads_arrive_on_the_real_server_with_every_field(sink: RedisSink, subscriber: Subscriber) -> None:
    run_id = uuid.UUID("0b7e8c1e-5f2a-4d8e-9a61-3c2f1e0d9b7a")
    assert sink.send(pending(run(quantity_mismatch(), cash_mismatch(), run_id=run_id))) == Sent(1)

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
                "suspect": False,
                "suspect_reason": None,
                "next_run_due": None,
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


def test_a_failed_run_arrives_with_status_failed_and_its_error(sink: RedisSink, subscriber: Subscriber) -> None:
    failed = ReconciliationResult(
        run_id=uuid.uuid4(), account_id="ACC-1", timestamp=AT, error="broker timed out after 30.0 s"
    )
    sink.send(pending(failed))
    [(_, data)] = subscriber.received()
    payload = json.loads(data)
    assert (payload["status"], payload["is_clean"], payload["error"]) == (
        "failed",
        False,
        "broker timed out after 30.0 s",
    )


def test_both_streams_read_back_what_was_published(sink: RedisSink, real_redis: redis.Redis) -> None:
    first, second = run(quantity_mismatch()), run(cash_mismatch(), quantity_mismatch("MSFT"))
    sink.send(pending(first, second))
    payloads = iter_payloads(first) + iter_payloads(second)
    assert stream(real_redis, RESULT_STREAM) == [p for c, p in payloads if c == RESULT_CHANNEL]
    assert stream(real_redis, DISCREPANCY_STREAM) == [p for c, p in payloads if c == DISCREPANCY_CHANNEL]


def test_the_streams_are_capped_on_the_real_server(sink: RedisSink, real_redis: redis.Redis) -> None:
    real_redis.config_set("stream-node-max-entries", 10)
    capped = RedisSink(sink._connect, stream_maxlen=20)
    for _ in range(60):
        capped.send(pending(run()))
    assert 20 <= real_redis.xlen(RESULT_STREAM) <= 20 + 10


def test_runs_made_while_redis_was_down_arrive_once_each_and_in_order_after_a_restart(
    sink: RedisSink, redis_server: RedisServer, real_redis: redis.Redis
) -> None:
    sink.send(pending(run()))
    redis_server.kill()
    made_while_down = [run(quantity_mismatch()), run(), run(cash_mismatch(), quantity_mismatch("MSFT"))]
    for n in range(len(made_while_down)):
        with pytest.raises(SinkUnavailableError):
            sink.send(pending(*made_while_down[: n + 1]))
    redis_server.restart()
    subscriber = Subscriber(real_redis)
    assert sink.send(pending(*made_while_down)) == Sent(3)
    expected = [payload for result in made_while_down for payload in iter_payloads(result)]
    assert subscriber.received() == expected
    assert stream(real_redis, RESULT_STREAM) == [p for c, p in expected if c == RESULT_CHANNEL]
    assert stream(real_redis, DISCREPANCY_STREAM) == [p for c, p in expected if c == DISCREPANCY_CHANNEL]
    subscriber.close()


def test_a_run_re_sent_after_redis_restarted_empty_arrives_again_with_the_same_identities(
    sink: RedisSink, redis_server: RedisServer, real_redis: redis.Redis
) -> None:
    """The one way a run reaches a consumer twice (docs/payloads.md): its published
    marker was lost with Redis's data. The copy carries the same run_id, type and symbol."""
    result = run(quantity_mismatch())
    sink.send(pending(result))
    before = stream(real_redis, DISCREPANCY_STREAM)
    redis_server.restart()
    assert sink.send(pending(result)) == Sent(1)
    after = stream(real_redis, DISCREPANCY_STREAM)
    identity = [(p["run_id"], p["type"], p["symbol"]) for p in map(json.loads, before + after)]
    assert len(identity) == 2
    assert identity[0] == identity[1]


def test_a_run_sent_twice_while_redis_kept_its_data_appears_once(
    sink: RedisSink, subscriber: Subscriber, real_redis: redis.Redis
) -> None:
    items = pending(run(quantity_mismatch()))
    assert sink.send(items) == Sent(1)
    assert sink.send(items) == Sent(1)
    assert len(subscriber.received()) == 2
    assert len(stream(real_redis, RESULT_STREAM)) == 1


def test_a_bad_stream_key_holds_the_runs_and_says_why(sink: RedisSink, real_redis: redis.Redis) -> None:
    real_redis.set(DISCREPANCY_STREAM, "not a stream")
    result = run(quantity_mismatch())
    with pytest.raises(SinkUnavailableError, match="WRONGTYPE"):
        sink.send(pending(result))
    assert real_redis.xlen(RESULT_STREAM) == 0
    assert not real_redis.exists(PUBLISHED_KEY_PREFIX + str(result.run_id))


def test_a_stream_with_no_ids_left_holds_the_runs_without_publishing_half_of_one(
    sink: RedisSink, real_redis: redis.Redis
) -> None:
    real_redis.xadd(DISCREPANCY_STREAM, {"payload": "{}"}, id="18446744073709551615-18446744073709551615")
    result = run(quantity_mismatch())
    with pytest.raises(SinkUnavailableError, match="no IDs left"):
        sink.send(pending(result))
    assert real_redis.xlen(RESULT_STREAM) == 0
    assert not real_redis.exists(PUBLISHED_KEY_PREFIX + str(result.run_id))


def test_a_run_whose_script_is_executed_twice_appears_once(
    real_redis: redis.Redis, subscriber: Subscriber
) -> None:
    marker = f"{PUBLISHED_KEY_PREFIX}{uuid.uuid4()}"
    keys = [marker, marker, RESULT_STREAM, DISCREPANCY_STREAM]
    args = [
        PUBLISHED_TTL_SECONDS,
        100,
        "",  # no lease: no runtime, no fencing token
        "",
        RESULT_CHANNEL,  # the channel of each stream, in the order of the keys
        DISCREPANCY_CHANNEL,
        RESULT_CHANNEL,  # then each payload
        '{"n":1}',
        DISCREPANCY_CHANNEL,
        '{"n":2}',
    ]

    replies = [real_redis.eval(PUBLISH_SCRIPT, len(keys), *keys, *args) for _ in range(2)]

    assert replies == [1, 0]
    assert subscriber.received() == [(RESULT_CHANNEL, '{"n":1}'), (DISCREPANCY_CHANNEL, '{"n":2}')]
    assert (stream(real_redis, RESULT_STREAM), stream(real_redis, DISCREPANCY_STREAM)) == (
        ['{"n":1}'],
        ['{"n":2}'],
    )


class ResendingRedis(redis.Redis):
    """A client whose pipelines run twice, as redis-py re-sends after a lost reply."""

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        inner = super().pipeline(transaction=transaction, shard_hint=shard_hint)
        original = inner.execute

        def execute(raise_on_error: bool = True) -> Any:
            stack = list(inner.command_stack)
            original(raise_on_error=raise_on_error)
            inner.command_stack = stack
            return original(raise_on_error=raise_on_error)

        inner.execute = execute  # type: ignore[method-assign]
        return inner


def test_a_round_trip_re_sent_by_the_client_publishes_each_run_once(
    redis_server: RedisServer, real_redis: redis.Redis, subscriber: Subscriber
) -> None:
    sink = RedisSink(lambda: ResendingRedis(host="127.0.0.1", port=redis_server.port), stream_maxlen=100)
    results = [run(quantity_mismatch()), run()]
    assert sink.send(pending(*results)) == Sent(2)
    expected = iter_payloads(results[0]) + iter_payloads(results[1])
    assert subscriber.received() == expected
    assert len(stream(real_redis, RESULT_STREAM)) == 2
