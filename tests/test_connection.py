"""The redis argument: checked at the door, and published through whatever client the host has."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from decimal import Decimal
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio

from reconciliation import InMemoryPortfolio, PaperBroker, ReconciliationConfig, ReconciliationService
from reconciliation._publishing.connection import (
    PUBLISH_SOCKET_TIMEOUT_SECONDS,
    check_client,
    publishing_client,
)
from reconciliation._publishing.redis_sink import RESULT_STREAM


def service_over(client: object) -> ReconciliationService:
    return ReconciliationService(
        InMemoryPortfolio("ACC-1", Decimal(1000)),
        PaperBroker("ACC-1", Decimal(1000)),
        client,
        ReconciliationConfig("ACC-1"),
    )


@pytest.mark.parametrize(
    ("given", "named"),
    [("redis://127.0.0.1:6379/0", "str"), ({"host": "127.0.0.1"}, "dict"), (None, "NoneType"), (6379, "int")],
)
def test_anything_but_a_redis_py_client_is_a_type_error_naming_the_argument(given: object, named: str) -> None:
    with pytest.raises(TypeError, match=rf"redis must be a redis-py client .* not {named}"):
        service_over(given)


def test_a_url_is_refused_with_the_fix_and_without_being_echoed() -> None:
    with pytest.raises(TypeError) as refused:
        service_over("redis://:s3cret@cache.internal:6379/0")
    assert "redis.Redis.from_url(url)" in str(refused.value)
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize(
    "client",
    [
        redis.Redis(host="127.0.0.1"),
        redis.asyncio.Redis(host="127.0.0.1"),
        fakeredis.FakeRedis(),
        fakeredis.FakeAsyncRedis(),
    ],
    ids=["redis.Redis", "redis.asyncio.Redis", "fakeredis", "fakeredis-async"],
)
def test_every_redis_py_client_is_accepted(client: object) -> None:
    check_client(client)


def test_our_connection_keeps_the_hosts_server_and_credentials_but_bounds_its_timeouts() -> None:
    host = redis.Redis(host="10.1.2.3", port=6380, db=4, username="svc", password="pw")
    ours = publishing_client(host)
    assert isinstance(ours, redis.Redis)
    settings = ours.connection_pool.connection_kwargs
    assert (settings["host"], settings["port"], settings["db"], settings["username"], settings["password"]) == (
        "10.1.2.3",
        6380,
        4,
        "svc",
        "pw",
    )
    assert settings["socket_timeout"] == PUBLISH_SOCKET_TIMEOUT_SECONDS
    assert ours.connection_pool is not host.connection_pool


def test_a_hosts_shorter_timeout_is_kept() -> None:
    ours = publishing_client(redis.Redis(host="10.1.2.3", socket_timeout=0.25))
    assert ours.connection_pool.connection_kwargs["socket_timeout"] == 0.25


def test_an_asyncio_client_becomes_a_synchronous_one_to_the_same_server() -> None:
    ours = publishing_client(redis.asyncio.Redis(host="10.1.2.3", port=6390, password="pw"))
    assert isinstance(ours, redis.Redis)
    assert issubclass(ours.connection_pool.connection_class, redis.connection.Connection)
    assert ours.connection_pool.connection_kwargs["port"] == 6390


def test_an_asyncio_service_publishes_to_the_server_its_client_talks_to(real_redis: redis.Redis) -> None:
    port = real_redis.connection_pool.connection_kwargs["port"]

    async def session() -> None:
        client = redis.asyncio.Redis(host="127.0.0.1", port=port)
        service = service_over(client)
        await service.start()
        await service.reconcile()
        await service.stop()
        await client.aclose()

    asyncio.run(session())
    assert real_redis.xlen(RESULT_STREAM) == 2


def test_a_fakeredis_client_is_published_to_in_process(harness_factory: Any) -> None:
    harness = harness_factory()
    harness.start()
    harness.stop()
    assert harness.redis.xlen(RESULT_STREAM) == 1


def test_an_async_fakeredis_client_is_published_to_in_process() -> None:
    client = fakeredis.FakeAsyncRedis()

    async def session() -> int:
        service = service_over(client)
        await service.start()
        await service.stop()
        return int(await client.xlen(RESULT_STREAM))

    assert asyncio.run(session()) == 1


def test_fakeredis_without_lua_is_published_to_by_transaction() -> None:
    """A host's first test double: fakeredis.FakeRedis() where lupa is not installed."""
    script = textwrap.dedent(
        """
        import asyncio, logging, sys
        from decimal import Decimal

        logging.basicConfig(level=logging.WARNING)

        class NoLupa:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "lupa":
                    raise ImportError("lupa is not installed")

        sys.meta_path.insert(0, NoLupa())
        import fakeredis
        from reconciliation import (
            InMemoryPortfolio, OrderFill, PaperBroker, ReconciliationConfig, ReconciliationService,
        )

        async def main():
            client = fakeredis.FakeRedis()
            broker = PaperBroker("ACC-1", Decimal(1000))
            service = ReconciliationService(
                InMemoryPortfolio("ACC-1", Decimal(1000)), broker, client, ReconciliationConfig("ACC-1")
            )
            await service.start()
            for _ in range(3):
                await service.reconcile()
            await service.stop()
            print(client.xlen("reconciliation:stream:result"), service.publisher_health().delivered_runs)

        asyncio.run(main())
        """
    )
    finished = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.split() == ["4", "4"]
    assert "does not run Lua scripts" in finished.stderr
