"""RedisSink against fakeredis: every run published once, whole and in order — by Lua
script when the server runs it, by WATCH/MULTI/EXEC when it does not."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

import fakeredis
import pytest
import redis
from redis._parsers.base import BaseParser

from reconciliation._domain.ageing import AgeingUpdate
from reconciliation._domain.models import (
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    ReconciliationResult,
)
from reconciliation._domain.sinks import FinishedRun, Sent, SinkUnavailableError
from reconciliation._publishing.redis_sink import (
    BATCH_SEPARATOR,
    CLUSTER_KEYS,
    DISCREPANCY_STREAM,
    MAX_PAYLOAD_BYTES,
    PUBLISH_SCRIPT,
    PUBLISHED_KEY_PREFIX,
    PUBLISHED_TTL_SECONDS,
    RESULT_STREAM,
    STANDALONE_KEYS,
    PendingRun,
    RedisSink,
)
from reconciliation._wire.payloads import DISCREPANCY_CHANNEL, RESULT_CHANNEL, iter_payloads

AT = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
LAST_ID = "18446744073709551615-18446744073709551615"


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


def run(*discrepancies: Discrepancy) -> ReconciliationResult:
    return ReconciliationResult(
        run_id=uuid.uuid4(),
        account_id="ACC-1",
        timestamp=AT,
        discrepancies=discrepancies,
        positions_checked=3,
        duration_ms=1.5,
        context={"trigger": "periodic"},
    )


class WithoutScripting(fakeredis.FakeRedis):
    """A server that does not run Lua, as fakeredis without `lupa` (or an ACL) answers."""

    def script_load(self, script: str) -> str:
        msg = "unknown command 'SCRIPT'"
        raise redis.ResponseError(msg)


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


@pytest.fixture(params=["script", "transaction"])
def client(request: pytest.FixtureRequest, server: fakeredis.FakeServer) -> redis.Redis:
    kind = fakeredis.FakeRedis if request.param == "script" else WithoutScripting
    return kind(server=server, decode_responses=True)


@pytest.fixture
def subscriber(client: redis.Redis) -> Subscriber:
    return Subscriber(client)


@pytest.fixture
def sink(client: redis.Redis, server: fakeredis.FakeServer) -> RedisSink:
    """A sink with a client of its own, as the service makes one (closing it closes only its own)."""
    own = type(client)(server=server, decode_responses=True)
    return RedisSink(lambda: own, stream_maxlen=1_000)


def pending(*results: ReconciliationResult) -> list[PendingRun]:
    return [PendingRun(str(r.run_id), iter_payloads(r)) for r in results]


def stream(client: redis.Redis, key: str) -> list[str]:
    return [fields["payload"] for _, fields in client.xrange(key)]


def test_a_run_is_published_result_first_then_each_discrepancy(sink: RedisSink, subscriber: Subscriber) -> None:
    result = run(discrepancy("AAPL", 100), discrepancy("MSFT", 5))
    assert sink.send(pending(result)) == Sent(1)
    received = subscriber.received()
    assert [channel for channel, _ in received] == [RESULT_CHANNEL, DISCREPANCY_CHANNEL, DISCREPANCY_CHANNEL]
    assert received == iter_payloads(result)


def test_payloads_batched_per_channel_come_out_one_by_one_exactly_as_given(
    sink: RedisSink, client: redis.Redis, subscriber: Subscriber
) -> None:
    payloads = [
        (RESULT_CHANNEL, '{"n":1}'),
        (DISCREPANCY_CHANNEL, ""),
        (DISCREPANCY_CHANNEL, '{"s":"caf\u00e9 \u2603"}'),
        (DISCREPANCY_CHANNEL, "caf\u00e9 \u2603"),
        (RESULT_CHANNEL, '{"n":2}'),
        (DISCREPANCY_CHANNEL, '{"n":3}'),
    ]
    assert sink.send([PendingRun(str(uuid.uuid4()), payloads)]) == Sent(1)
    assert subscriber.received() == payloads
    assert stream(client, RESULT_STREAM) == ['{"n":1}', '{"n":2}']
    assert stream(client, DISCREPANCY_STREAM) == [text for channel, text in payloads if channel == DISCREPANCY_CHANNEL]


def test_prepare_encodes_the_run_with_its_breaks_ages(sink: RedisSink) -> None:
    result = run()
    prepared = sink.prepare(FinishedRun(result, AgeingUpdate(result.run_id, result.account_id)))
    assert prepared == PendingRun(str(result.run_id), iter_payloads(result))
    assert sink.weight(prepared) == 1


def test_every_payload_is_appended_to_its_stream_under_the_field_payload(
    sink: RedisSink, client: redis.Redis
) -> None:
    result = run(discrepancy("AAPL", 100))
    sink.send(pending(result))
    assert stream(client, RESULT_STREAM) == [iter_payloads(result)[0][1]]
    assert json.loads(stream(client, DISCREPANCY_STREAM)[0])["symbol"] == "AAPL"


def test_runs_are_published_in_the_order_they_are_given(sink: RedisSink, subscriber: Subscriber) -> None:
    results = [run(discrepancy("A", n)) for n in range(5)]
    assert sink.send(pending(*results)) == Sent(5)
    assert subscriber.received() == [payload for r in results for payload in iter_payloads(r)]


def test_the_streams_are_capped_near_stream_maxlen(client: redis.Redis) -> None:
    client.config_set("stream-node-max-entries", 10)
    sink = RedisSink(lambda: client, stream_maxlen=20)
    for _ in range(30):
        sink.send(pending(run(*(discrepancy(f"S{i}", i) for i in range(5)))))
    assert 20 <= client.xlen(RESULT_STREAM) <= 20 + 10
    assert 20 <= client.xlen(DISCREPANCY_STREAM) <= 20 + 10


def test_a_run_sent_twice_is_published_once(sink: RedisSink, subscriber: Subscriber) -> None:
    items = pending(run(discrepancy("AAPL", 1)))
    assert sink.send(items) == Sent(1)
    assert sink.send(items) == Sent(1)
    assert len(subscriber.received()) == 2


def test_a_run_already_published_in_an_earlier_round_trip_is_not_published_again(
    sink: RedisSink, subscriber: Subscriber
) -> None:
    first, second = pending(run(), run())
    sink.send([first])
    assert sink.send([first, second]) == Sent(2)
    assert [json.loads(text)["run_id"] for _, text in subscriber.received()] == [first.run_id, second.run_id]


def test_the_published_marker_expires_after_the_dedup_ttl(sink: RedisSink, client: redis.Redis) -> None:
    (item,) = pending(run())
    sink.send([item])
    ttl = client.ttl(PUBLISHED_KEY_PREFIX + item.run_id)
    assert PUBLISHED_TTL_SECONDS - 5 <= ttl <= PUBLISHED_TTL_SECONDS


def test_an_unreachable_redis_makes_the_sink_unavailable(
    sink: RedisSink, server: fakeredis.FakeServer
) -> None:
    server.connected = False
    with pytest.raises(SinkUnavailableError, match="ConnectionError"):
        sink.send(pending(run()))


def test_a_stream_key_of_another_type_holds_every_run_and_publishes_nothing_of_them(
    sink: RedisSink, client: redis.Redis, subscriber: Subscriber
) -> None:
    client.set(DISCREPANCY_STREAM, "not a stream")
    items = pending(run(discrepancy("AAPL", 1)), run())
    with pytest.raises(SinkUnavailableError, match="WRONGTYPE"):
        sink.send(items)
    assert subscriber.received() == []
    assert client.xlen(RESULT_STREAM) == 0
    assert not client.exists(PUBLISHED_KEY_PREFIX + items[0].run_id)


def test_runs_held_by_a_bad_stream_key_are_delivered_in_order_once_it_is_fixed(
    sink: RedisSink, client: redis.Redis, subscriber: Subscriber
) -> None:
    client.set(DISCREPANCY_STREAM, "not a stream")
    results = [run(discrepancy("AAPL", 1)), run()]
    with pytest.raises(SinkUnavailableError):
        sink.send(pending(*results))
    client.delete(DISCREPANCY_STREAM)
    assert sink.send(pending(*results)) == Sent(2)
    assert subscriber.received() == iter_payloads(results[0]) + iter_payloads(results[1])


def test_a_stream_with_no_ids_left_holds_the_run_without_publishing_half_of_it(
    sink: RedisSink, client: redis.Redis, subscriber: Subscriber
) -> None:
    client.xadd(DISCREPANCY_STREAM, {"payload": "{}"}, id=LAST_ID)
    items = pending(run(discrepancy("AAPL", 1)))
    with pytest.raises(SinkUnavailableError, match="no IDs left"):
        sink.send(items)
    assert subscriber.received() == []
    assert client.xlen(RESULT_STREAM) == 0
    assert not client.exists(PUBLISHED_KEY_PREFIX + items[0].run_id)


def test_a_run_with_an_oversized_payload_is_refused_and_the_ones_before_it_go(
    sink: RedisSink, subscriber: Subscriber
) -> None:
    small = PendingRun(str(uuid.uuid4()), [(RESULT_CHANNEL, json.dumps({"run_id": "small"}))])
    huge = PendingRun(str(uuid.uuid4()), [(RESULT_CHANNEL, "x" * (MAX_PAYLOAD_BYTES + 1))])
    assert sink.send([small, huge]) == Sent(1)
    assert sink.send([huge]) == Sent(0, refused=f"a payload is larger than {MAX_PAYLOAD_BYTES} bytes")
    assert len(subscriber.received()) == 1


def test_runs_are_delivered_after_redis_forgot_the_script(server: fakeredis.FakeServer) -> None:
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    subscriber = Subscriber(client)
    sink = RedisSink(lambda: client, stream_maxlen=1_000)
    sink.send(pending(run()))
    subscriber.received()
    client.script_flush()
    results = [run(), run()]
    assert sink.send(pending(*results)) == Sent(2)
    assert subscriber.received() == iter_payloads(results[0]) + iter_payloads(results[1])


def test_the_script_re_sent_for_a_published_run_is_a_no_op(server: fakeredis.FakeServer) -> None:
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    subscriber = Subscriber(client)
    (item,) = pending(run())
    sink = RedisSink(lambda: client, stream_maxlen=1_000)
    sink.send([item])
    marker = PUBLISHED_KEY_PREFIX + item.run_id
    keys = [marker, marker, RESULT_STREAM]
    assert client.eval(PUBLISH_SCRIPT, len(keys), *keys, 60, 100, "", "", *item.payloads[0]) == 0
    assert len(subscriber.received()) == 1


def test_the_sink_finds_out_once_which_way_the_server_publishes(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    sink = RedisSink(lambda: client, stream_maxlen=1_000)
    with caplog.at_level(logging.WARNING, logger="reconciliation"):
        sink.send(pending(run()))
        sink.send(pending(run()))
    expected = not isinstance(client, WithoutScripting)
    assert sink.scripting is expected
    warnings = [r.getMessage() for r in caplog.records if "MULTI/EXEC" in r.getMessage()]
    assert len(warnings) == (0 if expected else 1)


def test_a_closed_sink_sends_nothing(sink: RedisSink, subscriber: Subscriber) -> None:
    sink.send(pending(run()))
    sink.close()
    with pytest.raises(SinkUnavailableError, match="closed"):
        sink.send(pending(run()))
    assert len(subscriber.received()) == 1


def test_closing_under_a_send_in_progress_never_raises_even_on_fakeredis() -> None:
    """fakeredis raises ValueError("generator already executing") from a pool closed under a
    send; `close` is how stop() cuts a stalled sink off, and must not raise out of it."""
    sink = RedisSink(fakeredis.FakeRedis, stream_maxlen=100)
    sink.send([PendingRun("first", ((RESULT_CHANNEL, "{}"),))])
    sending = threading.Event()
    ended: list[BaseException] = []

    def send_until_closed() -> None:
        for n in itertools.count():
            sending.set()
            try:
                sink.send([PendingRun(f"run-{n}", ((RESULT_CHANNEL, "{}"),) * 50)])
            except SinkUnavailableError as error:
                ended.append(error)
                return

    sender = threading.Thread(target=send_until_closed, daemon=True)
    sender.start()
    sending.wait(5)
    time.sleep(0.05)
    for _ in range(20):
        sink.close()
    sender.join(5)
    assert ended, "the send in progress ended with the sink unavailable"


def test_the_client_is_made_at_the_first_send_not_before() -> None:
    made: list[Any] = []

    def connect() -> redis.Redis:
        made.append(fakeredis.FakeRedis())
        return made[-1]

    sink = RedisSink(connect, stream_maxlen=10)
    assert made == []
    sink.send(pending(run()))
    sink.send(pending(run()))
    assert len(made) == 1


def test_a_client_that_cannot_be_made_makes_the_sink_unavailable() -> None:
    def connect() -> redis.Redis:
        msg = "Redis Cluster cannot be connected"
        raise redis.exceptions.RedisClusterException(msg)

    with pytest.raises(SinkUnavailableError, match="cannot be connected"):
        RedisSink(connect, stream_maxlen=10).send(pending(run()))


class CountingScripts(fakeredis.FakeRedis):
    """Counts the payloads of each script call the sink makes."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.calls: list[int] = []

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        inner = super().pipeline(transaction=transaction, shard_hint=shard_hint)
        original = inner.evalsha
        calls = self.calls

        def evalsha(sha: str, numkeys: int, *rest: Any) -> Any:
            streams = numkeys - 2
            batches = rest[numkeys + 4 + streams + 1 :: 2]  # keys, TTL, MAXLEN, fence, channels, then pairs
            calls.append(sum(batch.count(BATCH_SEPARATOR) + 1 for batch in batches))
            return original(sha, numkeys, *rest)

        inner.evalsha = evalsha  # type: ignore[method-assign]
        return inner


def test_a_large_run_is_published_in_bounded_parts_in_order_and_once(server: fakeredis.FakeServer) -> None:
    client = CountingScripts(server=server, decode_responses=True)
    subscriber = Subscriber(client)
    sink = RedisSink(lambda: client, stream_maxlen=100_000)
    big = run(*(discrepancy(f"S{i:05d}", i) for i in range(1_234)))
    items = pending(big)
    assert sink.send(items) == Sent(1)
    assert client.calls == [500, 500, 235]
    assert subscriber.received() == iter_payloads(big)
    assert sink.send(items) == Sent(1)
    assert client.xlen(RESULT_STREAM) == 1
    assert client.xlen(DISCREPANCY_STREAM) == 1_234


class DropsConnectionAfter(fakeredis.FakeRedis):
    """Executes `parts` publishing calls (script calls or transactions), then loses the
    connection once: the calls after it in the same round trip never reach the server."""

    def __init__(self, parts: int, **options: Any) -> None:
        super().__init__(**options)
        self.remaining: int | None = parts

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        inner = super().pipeline(transaction=transaction, shard_hint=shard_hint)
        original = inner.execute
        owner = self

        def execute(raise_on_error: bool = True) -> Any:
            if owner.remaining is None:
                return original(raise_on_error)
            if transaction:
                if owner.remaining == 0:
                    owner.remaining = None
                    raise redis.ConnectionError("connection lost")
                owner.remaining -= 1
                return original(raise_on_error)
            del inner.command_stack[owner.remaining :]
            original(raise_on_error)
            owner.remaining = None
            raise redis.ConnectionError("connection lost")

        inner.execute = execute
        return inner


@pytest.mark.parametrize("scripting", [True, False], ids=["script", "transaction"])
def test_a_large_run_cut_off_part_way_is_finished_later_in_order_without_doubles(
    server: fakeredis.FakeServer, scripting: bool
) -> None:
    client = DropsConnectionAfter(1, server=server, decode_responses=True)
    if not scripting:
        client.script_load = WithoutScripting.script_load.__get__(client)  # type: ignore[method-assign]
    subscriber = Subscriber(client)
    sink = RedisSink(lambda: client, stream_maxlen=100_000)
    big = run(*(discrepancy(f"S{i:05d}", i) for i in range(1_200)))
    items = pending(big)
    with pytest.raises(SinkUnavailableError):
        sink.send(items)
    assert client.xlen(DISCREPANCY_STREAM) == 499
    assert not client.exists(PUBLISHED_KEY_PREFIX + str(big.run_id))
    assert sink.send(items) == Sent(1)
    assert subscriber.received() == iter_payloads(big)
    assert client.xlen(DISCREPANCY_STREAM) == 1_200
    assert client.exists(PUBLISHED_KEY_PREFIX + str(big.run_id))


def test_on_a_cluster_every_key_carries_one_hash_tag_so_one_script_may_touch_them_all() -> None:
    for channel in (RESULT_CHANNEL, DISCREPANCY_CHANNEL):
        assert CLUSTER_KEYS.stream_of(channel).startswith("{reconciliation}:stream:")
    assert CLUSTER_KEYS.marker("r") == "{reconciliation}:published:r"
    assert CLUSTER_KEYS.part_marker("r", 2).startswith("{reconciliation}:")
    assert STANDALONE_KEYS.stream_of(RESULT_CHANNEL) == RESULT_STREAM
    assert STANDALONE_KEYS.marker("r") == PUBLISHED_KEY_PREFIX + "r"


class Answering(fakeredis.FakeRedis):
    """A server whose every publishing call gets `reply`, parsed as redis-py parses a real one."""

    def __init__(self, reply: str, **options: Any) -> None:
        super().__init__(**options)
        self.reply = reply

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        inner = super().pipeline(transaction=transaction, shard_hint=shard_hint)
        error = BaseParser.parse_error(self.reply)

        def execute(raise_on_error: bool = True) -> Any:
            count = len(inner.command_stack)
            inner.reset()
            if raise_on_error:
                raise error
            return [error] * count

        inner.execute = execute
        return inner


@pytest.mark.parametrize(
    "reply",
    [
        "LOADING Redis is loading the dataset in memory",
        "CLUSTERDOWN The cluster is down",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "READONLY You can't write against a read only replica.",
        "OOM command not allowed when used memory > 'maxmemory'.",
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
        "NOPERM User reconciliation has no permissions to run the 'evalsha' command",
    ],
    ids=lambda reply: reply.split()[0],
)
def test_a_reply_that_holds_up_every_run_keeps_the_run_queued_rather_than_setting_it_aside(
    server: fakeredis.FakeServer, reply: str
) -> None:
    client = Answering(reply, server=server)
    sink = RedisSink(lambda: client, stream_maxlen=10)

    with pytest.raises(SinkUnavailableError):
        sink.send(pending(run()))


def test_a_reply_about_the_run_itself_sets_it_aside(server: fakeredis.FakeServer) -> None:
    client = Answering("ERR Error running script: user_script:1: something about this run", server=server)
    sink = RedisSink(lambda: client, stream_maxlen=10)

    sent = sink.send(pending(run()))

    assert sent.delivered == 0
    assert sent.refused is not None
