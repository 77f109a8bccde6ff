"""Connecting the command line to Redis: the real one at a URL, or an in-process fake.

`connect` answers only once Redis has answered a PING, so a command can tell the user
plainly that nobody is listening instead of failing later in a thread.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Literal, overload

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from reconciliation._domain.redaction import redact_text, redact_url

__all__ = [
    "DEFAULT_REDIS_URL",
    "AnyRedis",
    "InvalidRedisUrlError",
    "RedisUnreachableError",
    "answers",
    "client_for",
    "connect",
    "disconnect",
    "fake_redis",
    "redacted",
    "redis_url_from_env",
]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

CONNECT_TIMEOUT_SECONDS = 2.0
COMMAND_TIMEOUT_SECONDS = 10.0


AnyRedis = redis.Redis | redis.RedisCluster
"""A client of one Redis server or of a Redis Cluster: the CLI's readers take either."""


class RedisUnreachableError(Exception):
    """No Redis answered at the URL; the message says where and why."""


class InvalidRedisUrlError(RedisUnreachableError):
    """The URL is not a Redis URL at all: a usage error rather than an unreachable server."""


def redis_url_from_env() -> str:
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


redacted = redact_url
"""The URL without its password, fit for a message or a log line (see `redaction`)."""


@overload
def client_for(url: str, *, retry_commands: bool = ..., cluster: Literal[False] = ...) -> redis.Redis: ...
@overload
def client_for(url: str, *, retry_commands: bool = ..., cluster: bool) -> redis.Redis | redis.RedisCluster: ...
def client_for(url: str, *, retry_commands: bool = True, cluster: bool = False) -> redis.Redis | redis.RedisCluster:
    """A client for `url` that has not talked to Redis yet (it connects at its first command).

    Args:
        url: `redis://[[user]:password@]host[:port][/db]`, `rediss://...` or `unix://...`.
        retry_commands: let redis-py retry a failed command itself (its default); False
            for a caller that waits for Redis with its own backoff and says so.
        cluster: `url` is any node of a Redis Cluster: a `redis.RedisCluster` that finds
            the others (it talks to the cluster at once, to learn its slots).

    Raises:
        InvalidRedisUrlError: the URL is malformed.
        RedisUnreachableError: `cluster`, and no node answered at `url`.
    """
    options: dict[str, object] = {
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": COMMAND_TIMEOUT_SECONDS,
    }
    if not retry_commands:
        options["retry"] = Retry(NoBackoff(), 0)
    try:
        if not cluster:
            return redis.Redis.from_url(url, **options)
        try:
            return redis.RedisCluster.from_url(url, **options)
        except (redis.RedisError, OSError) as exc:
            msg = f"no Redis Cluster answered at {redact_url(url)}: {redact_text(str(exc))}"
            raise RedisUnreachableError(msg) from None
    except (ValueError, TypeError) as exc:
        msg = f"not a Redis URL: {redact_url(url)} ({redact_text(str(exc))})"
        raise InvalidRedisUrlError(msg) from None


def answers(client: redis.Redis | redis.RedisCluster) -> str | None:
    """None when Redis answers a PING; otherwise why it does not, for an operator."""
    try:
        client.ping()
    except redis.RedisError as exc:
        return redact_text(str(exc))
    return None


@overload
def connect(url: str, *, retry_commands: bool = ..., cluster: Literal[False] = ...) -> redis.Redis: ...
@overload
def connect(url: str, *, retry_commands: bool = ..., cluster: bool) -> redis.Redis | redis.RedisCluster: ...
def connect(url: str, *, retry_commands: bool = True, cluster: bool = False) -> redis.Redis | redis.RedisCluster:
    """A client for `url` (see `client_for`) that has answered a PING.

    Raises:
        InvalidRedisUrlError: the URL is malformed.
        RedisUnreachableError: nothing answered.
    """
    client = client_for(url, retry_commands=retry_commands, cluster=cluster)
    problem = answers(client)
    if problem is not None:
        client.close()
        msg = f"no Redis answered at {redact_url(url)}: {problem}"
        raise RedisUnreachableError(msg)
    return client


def disconnect(client: AnyRedis) -> None:
    """Close every pooled connection of `client` now: a read blocked on one ends with an error."""
    if isinstance(client, redis.RedisCluster):
        client.disconnect_connection_pools()  # type: ignore[no-untyped-call,unused-ignore]
    else:
        client.connection_pool.disconnect()


def fake_redis() -> redis.Redis:
    """An in-process Redis (fakeredis, with Lua for the publisher's script), visible only to this process.

    Raises:
        RedisUnreachableError: fakeredis or its Lua support (lupa) is not installed.
    """
    if importlib.util.find_spec("fakeredis") is None or importlib.util.find_spec("lupa") is None:
        msg = "the in-process fallback needs fakeredis with Lua: pip install 'fakeredis[lua]'"
        raise RedisUnreachableError(msg)
    import fakeredis  # noqa: PLC0415 - optional: only the demo's fallback needs it

    client: redis.Redis = fakeredis.FakeRedis()
    return client
