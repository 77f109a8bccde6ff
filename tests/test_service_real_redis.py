"""The service against a real redis-server: what operators see, and what survives an outage."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
import redis
from helpers import eventually

from reconciliation import (
    InMemoryPortfolio,
    OrderFill,
    PaperBroker,
    ReconciliationConfig,
    ReconciliationService,
)
from reconciliation._publishing.redis_sink import DISCREPANCY_STREAM, RESULT_STREAM
from reconciliation.testing import RedisCapture

pytestmark = pytest.mark.real_redis

ACCOUNT = "ACC-1"


def books_with_a_missed_fill() -> tuple[InMemoryPortfolio, PaperBroker]:
    """The broker booked a fill the local book never saw."""
    broker = PaperBroker(ACCOUNT, cash=Decimal(100000))
    book = InMemoryPortfolio(ACCOUNT, cash=Decimal(100000))
    fill = OrderFill("ORD-1", "FILL-1", ACCOUNT, "AAPL", 100, Decimal("150.25"), dt.datetime.now(dt.UTC))
    broker.apply_fill(fill)
    return book, broker


def stream(client: redis.Redis, key: str) -> list[dict[str, Any]]:
    return [json.loads(fields["payload"]) for _, fields in client.xrange(key)]


def test_a_subscriber_sees_the_run_and_each_discrepancy_with_every_field(real_redis: redis.Redis) -> None:
    book, broker = books_with_a_missed_fill()
    service = ReconciliationService(book, broker, real_redis, ReconciliationConfig(ACCOUNT))
    with RedisCapture(real_redis) as capture:
        result = asyncio.run(service.start())
        assert result is not None
        eventually(lambda: len(capture.discrepancies) == 2, what="both discrepancies")
        asyncio.run(service.stop())
    (published,) = capture.results
    assert published["run_id"] == str(result.run_id)
    assert (published["status"], published["is_clean"], published["error"]) == ("ok", False, None)
    assert (published["discrepancy_count"], published["positions_checked"]) == (2, 1)
    assert published["context"] == {"trigger": "startup"}
    missing, cash = capture.discrepancies
    assert (missing["type"], missing["severity"], missing["symbol"]) == ("missing_local", "critical", "AAPL")
    assert (missing["local_value"], missing["broker_value"]) == (None, "100")
    assert (cash["type"], cash["symbol"], cash["local_value"], cash["broker_value"]) == (
        "cash_mismatch",
        None,
        "100000",
        "84975.00",
    )
    assert {d["run_id"] for d in capture.discrepancies} == {str(result.run_id)}


def test_an_operator_who_was_away_reads_the_runs_back_from_the_streams(real_redis: redis.Redis) -> None:
    book, broker = books_with_a_missed_fill()
    service = ReconciliationService(book, broker, real_redis, ReconciliationConfig(ACCOUNT))
    startup = asyncio.run(service.start())
    assert startup is not None
    eventually(lambda: len(stream(real_redis, DISCREPANCY_STREAM)) == 2, what="the stream entries")
    asyncio.run(service.stop())
    assert [r["run_id"] for r in stream(real_redis, RESULT_STREAM)] == [str(startup.run_id)]


def test_runs_made_while_redis_is_down_arrive_once_each_and_in_order_when_it_is_back(
    redis_server: Any, real_redis: redis.Redis
) -> None:
    book, broker = books_with_a_missed_fill()
    config = ReconciliationConfig(ACCOUNT, publish_retry_max_seconds=0.5)
    service = ReconciliationService(book, broker, real_redis, config)
    asyncio.run(service.start())
    eventually(lambda: len(stream(real_redis, RESULT_STREAM)) == 1, what="the startup run")
    redis_server.kill()
    outage = []
    for _ in range(3):
        started = time.monotonic()
        outage.append(asyncio.run(service.reconcile()))
        assert time.monotonic() - started < 2, "a run waited on the unreachable Redis"
    eventually(lambda: not service.publisher_health().reachable, what="the publisher noticing the outage")
    assert service.publisher_health().queued_runs >= 1
    redis_server.restart()
    eventually(lambda: service.publisher_health().queued_runs == 0, timeout=10, what="the queue draining")
    asyncio.run(service.stop())
    # Redis restarted without its data, so it forgot which runs it had: a run whose
    # delivery straddled the kill may arrive twice, with the same identities
    # (docs/payloads.md). Deduplicated as a consumer does, every run is there, in order.
    assert first_seen(r["run_id"] for r in stream(real_redis, RESULT_STREAM)) == [str(r.run_id) for r in outage]
    discrepancies = first_seen((d["run_id"], d["type"], d["symbol"]) for d in stream(real_redis, DISCREPANCY_STREAM))
    assert discrepancies == [(str(r.run_id), d.type.value, d.symbol) for r in outage for d in r.discrepancies]
    health = service.publisher_health()
    assert (health.dropped_runs, health.reachable) == (0, True)


def first_seen(identities: Any) -> list[Any]:
    """The identities in the order they first appear: what a de-duplicating consumer keeps."""
    return list(dict.fromkeys(identities))


def test_a_stalled_redis_is_an_unreachable_one_and_stop_ends_every_thread(
    redis_server: Any, real_redis: redis.Redis
) -> None:
    """The README's client, without a socket timeout, against a Redis that stopped answering
    (SIGSTOP): runs go on and are queued, within the bound; stop() ends every thread, so
    nothing more is sent. A round trip already sent to the stalled server stays in its
    socket buffer and is executed when it resumes (no client can recall it): only runs
    that were queued, in order, can appear then."""
    before = set(threading.enumerate())
    book, broker = books_with_a_missed_fill()
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    config = ReconciliationConfig(ACCOUNT, outbox_max_runs=3, publish_retry_max_seconds=0.5)
    service = ReconciliationService(book, broker, client, config)
    startup = asyncio.run(service.start())
    assert startup is not None
    eventually(lambda: len(stream(real_redis, RESULT_STREAM)) == 1, what="the startup run published")
    redis_server.pause()
    try:
        made = []
        for _ in range(6):
            started = time.monotonic()
            made.append(asyncio.run(service.reconcile()))
            assert made[-1].status == "ok"
            assert time.monotonic() - started < 2, "a run waited on the stalled Redis"
        eventually(lambda: not service.publisher_health().reachable, timeout=15, what="the stall noticed")
        eventually(  # the runs wait in the actor's inbox until the stalled call gives up, then the bound applies
            lambda: service.publisher_health().dropped_runs >= 2, timeout=20, what="the oldest runs dropped"
        )
        health = service.publisher_health()
        assert health.queued_runs <= 3
        assert health.dropped_runs >= 2
        started = time.monotonic()
        report = asyncio.run(service.stop())
        assert report.clean, report
        assert time.monotonic() - started < 15
        eventually(lambda: not set(threading.enumerate()) - before, what="every thread of the service ended")
    finally:
        redis_server.resume()
    published = [r["run_id"] for r in stream(redis_server.client(), RESULT_STREAM)]
    assert published[0] == str(startup.run_id)
    assert set(published[1:]) <= {str(r.run_id) for r in made}
    assert published[1:] == sorted(published[1:], key=[str(r.run_id) for r in made].index)
