"""Health tells the truth about a stalled sink within its limit: a Redis that stops answering
mid-call, an audit store whose port accepts and never answers — each shown unreachable,
"busy since" the call began, no later than its limit after that; and stop() still ends."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
import redis
from helpers import eventually

from reconciliation import InMemoryPortfolio, PaperBroker, ReconciliationConfig, ReconciliationService
from reconciliation._domain.sinks import Sent, SinkUnavailableError
from reconciliation._publishing.connection import PUBLISH_SOCKET_TIMEOUT_SECONDS
from reconciliation._publishing.redis_sink import RedisSink
from reconciliation._runtime.delivery import DEFAULT_BUSY_LIMIT_SECONDS

if TYPE_CHECKING:
    from collections.abc import Iterator

    from redis_server import RedisServer

ACCOUNT = "ACC-1"
SLACK_SECONDS = 1.5
"""A shared, loaded machine: how late a health poll may see what is due."""


def service(client: object, **options: object) -> ReconciliationService:
    return ReconciliationService(
        InMemoryPortfolio(ACCOUNT, cash=Decimal(1000)),
        PaperBroker(ACCOUNT, cash=Decimal(1000)),
        client,
        ReconciliationConfig(ACCOUNT, interval_seconds=0.1, **options),  # type: ignore[arg-type]
    )


def seconds_until_unreachable(running: ReconciliationService, sink: str, timeout: float) -> float:
    started = time.monotonic()
    eventually(lambda: not running.health().delivery[sink].reachable, timeout=timeout, what=f"{sink} unreachable")
    return time.monotonic() - started


@pytest.mark.real_redis
def test_a_stalled_redis_is_unreachable_busy_since_the_call_within_its_limit(redis_server: RedisServer) -> None:
    running = service(redis.Redis(port=redis_server.port))  # no timeouts of its own: ours apply
    asyncio.run(running.start())
    try:
        eventually(lambda: running.health().delivery["redis"].delivered_runs >= 2, what="runs delivered")
        redis_server.pause()
        took = seconds_until_unreachable(running, "redis", PUBLISH_SOCKET_TIMEOUT_SECONDS + 5)
        health = running.health()
        redis_health = health.delivery["redis"]
        assert took <= PUBLISH_SOCKET_TIMEOUT_SECONDS + SLACK_SECONDS
        assert "busy since" in (redis_health.last_error or "")
        assert redis_health.busy_since is not None
        assert not health.healthy
        assert any(line.startswith("redis unreachable") for line in health.problems)
        eventually(lambda: running.health().delivery["redis"].incoming_runs > 0, what="runs waiting in the inbox")
    finally:
        redis_server.resume()
    delivered = running.health().delivery["redis"].delivered_runs
    eventually(
        lambda: running.health().delivery["redis"].reachable
        and running.health().delivery["redis"].delivered_runs > delivered,
        timeout=3 * PUBLISH_SOCKET_TIMEOUT_SECONDS + 35,
        what="redis reachable again and delivering",
    )
    assert asyncio.run(running.stop()).clean


class SilentServer:
    """A TCP port that accepts connections and never says a word (a stalled PostgreSQL)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            with contextlib.suppress(TimeoutError):
                connection, _ = self._listener.accept()
                self._held.append(connection)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self._listener.close()
        for connection in self._held:
            connection.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_an_audit_store_that_accepts_and_never_answers_is_unreachable_within_its_limit(
    silent_server: SilentServer,
) -> None:
    import fakeredis  # noqa: PLC0415 - only this test publishes nowhere real

    pytest.importorskip("psycopg")
    running = service(fakeredis.FakeRedis(), audit_store=f"postgresql://postgres@127.0.0.1:{silent_server.port}/test")
    asyncio.run(running.start())
    try:
        took = seconds_until_unreachable(running, "audit", DEFAULT_BUSY_LIMIT_SECONDS + 5)
        health = running.health()
        assert took <= DEFAULT_BUSY_LIMIT_SECONDS + SLACK_SECONDS
        assert not health.healthy
        assert any(line.startswith("audit unreachable") for line in health.problems)
        eventually(lambda: running.health().delivery["audit"].queued_runs > 0, timeout=15, what="runs queued")
    finally:
        report = asyncio.run(running.stop())
    assert report.clean, report.still_running


def test_stop_never_raises_when_cutting_off_a_stalled_redis_actor_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    import fakeredis  # noqa: PLC0415 - a stall made by hand, no server needed

    released = threading.Event()
    stalled = threading.Event()

    def stalled_send(self: RedisSink, items: object) -> Sent:
        stalled.set()
        released.wait(30)
        raise SinkUnavailableError("released")

    def raising_close(self: RedisSink) -> None:
        raise ValueError("generator already executing")

    monkeypatch.setattr(RedisSink, "send", stalled_send)
    monkeypatch.setattr(RedisSink, "close", raising_close)
    running = service(fakeredis.FakeRedis())
    asyncio.run(running.start())
    try:
        assert stalled.wait(10)
        report = running._runtime.stop(timeout=0.2)
        assert "delivery:redis" in report.still_running
    finally:
        released.set()
