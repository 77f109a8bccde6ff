"""The publishing connection: checked at the door, and our own.

The service takes whatever redis-py client the host has — `redis.Redis`,
`redis.asyncio.Redis`, `redis.RedisCluster`, `redis.asyncio.RedisCluster`, or their
fakeredis doubles — and refuses anything else (a URL, a dict) with a `TypeError` that
says what to pass instead.

It does not publish through the host's client itself. It makes a synchronous client of
its own with the same server, credentials and database, on a connection pool of its
own with bounded socket timeouts: the delivery actor's thread does blocking I/O (so an
asyncio client, bound to the host's loop, is no use to it), a client built without
timeouts would let a stalled Redis stall publishing forever, and closing our pool at
stop — to unblock a stalled call — must not close the host's connections.
"""

from __future__ import annotations

import logging

import redis
import redis.asyncio
import redis.asyncio.connection
import redis.connection
from redis.backoff import NoBackoff
from redis.retry import Retry

from reconciliation._domain.error_text import describe_error

__all__ = [
    "PUBLISH_CONNECT_TIMEOUT_SECONDS",
    "PUBLISH_SOCKET_TIMEOUT_SECONDS",
    "check_client",
    "close_client",
    "publishing_client",
    "publishing_retry",
]

logger = logging.getLogger(__name__)

PUBLISH_SOCKET_TIMEOUT_SECONDS = 5.0
"""The longest one publishing round trip may wait on Redis before Redis counts as unreachable."""
PUBLISH_CONNECT_TIMEOUT_SECONDS = 2.0

ACCEPTED = (redis.Redis, redis.asyncio.Redis, redis.RedisCluster, redis.asyncio.RedisCluster)

_SYNC_CONNECTION = {
    redis.asyncio.connection.Connection: redis.connection.Connection,
    redis.asyncio.connection.SSLConnection: redis.connection.SSLConnection,
    redis.asyncio.connection.UnixDomainSocketConnection: redis.connection.UnixDomainSocketConnection,
}

_ASYNC_ONLY_KWARGS = frozenset({"retry", "redis_connect_func", "connected"})
"""Connection settings that are objects of the asyncio client, not plain values."""
_CLUSTER_SETTINGS = frozenset(
    {"username", "password", "db", "ssl", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "client_name"}
)
"""What our cluster client takes over from the host's: its credentials and TLS settings."""
_FAKE_SERVER_SETTINGS = ("server", "host", "port", "db", "server_type", "version", "lua_modules")
"""What identifies a fakeredis client's in-process server (it keys servers by host and port)."""


def check_client(client: object, argument: str = "redis") -> None:
    """Refuse what is not a redis-py client, naming the argument and the fix.

    Raises:
        TypeError: `client` is a URL, a dict, or anything but a redis-py client.
    """
    if isinstance(client, ACCEPTED):
        return
    hint = "; to connect to a URL, pass redis.Redis.from_url(url)" if isinstance(client, str) else ""
    msg = (
        f"{argument} must be a redis-py client (redis.Redis, redis.asyncio.Redis or redis.RedisCluster), "
        f"not {type(client).__name__}{hint}"
    )
    raise TypeError(msg)


def publishing_client(client: object) -> redis.Redis | redis.RedisCluster:
    """A synchronous client of our own to the server `client` talks to, with bounded timeouts.

    Raises:
        TypeError: as `check_client`.
    """
    check_client(client)
    if isinstance(client, redis.RedisCluster | redis.asyncio.RedisCluster):
        nodes = [
            redis.cluster.ClusterNode(node.host, node.port)  # type: ignore[no-untyped-call,unused-ignore]
            for node in client.nodes_manager.startup_nodes.values()
        ]
        settings = getattr(client, "connection_kwargs", None) or client.nodes_manager.connection_kwargs
        return redis.RedisCluster(
            startup_nodes=nodes,
            retry=publishing_retry(),
            socket_timeout=PUBLISH_SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=PUBLISH_CONNECT_TIMEOUT_SECONDS,
            **{key: value for key, value in settings.items() if key in _CLUSTER_SETTINGS},
        )
    if not isinstance(client, redis.Redis | redis.asyncio.Redis):  # pragma: no cover - check_client
        raise TypeError(type(client).__name__)
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    connection_class = pool.connection_class
    if "server" in kwargs and connection_class.__module__.startswith("fakeredis"):
        import fakeredis  # noqa: PLC0415 - only when the host passed a fakeredis client

        shared = {key: kwargs[key] for key in _FAKE_SERVER_SETTINGS if key in kwargs}
        fake: redis.Redis = fakeredis.FakeRedis(**shared)
        return fake
    if isinstance(client, redis.asyncio.Redis):
        sync_class = _SYNC_CONNECTION.get(connection_class)
        if sync_class is None:
            msg = (
                f"cannot publish through an asyncio client whose connections are "
                f"{connection_class.__name__}: pass a redis.Redis built with the same settings"
            )
            raise TypeError(msg)
        connection_class = sync_class
        kwargs = {key: value for key, value in kwargs.items() if key not in _ASYNC_ONLY_KWARGS}
    kwargs["socket_timeout"] = _bounded(kwargs.get("socket_timeout"), PUBLISH_SOCKET_TIMEOUT_SECONDS)
    if connection_class is not redis.connection.UnixDomainSocketConnection:
        kwargs["socket_connect_timeout"] = _bounded(
            kwargs.get("socket_connect_timeout"), PUBLISH_CONNECT_TIMEOUT_SECONDS
        )
    kwargs["retry"] = publishing_retry()
    return redis.Redis(
        connection_pool=redis.ConnectionPool(
            connection_class=connection_class, max_connections=4, **kwargs
        )
    )


def publishing_retry() -> Retry:
    """One immediate retry (a pooled socket that went stale when Redis restarted), no more:
    the delivery actor's own backoff paces the attempts at an unreachable Redis."""
    return Retry(NoBackoff(), 1)


def _bounded(given: float | None, ceiling: float) -> float:
    return ceiling if given is None else min(given, ceiling)


def close_client(client: redis.Redis | redis.RedisCluster | None) -> None:
    """Close a client of our own and its pool's connections (from any thread: a call stalled
    on one of them ends with an error). Never raises: it is called at stop."""
    if client is None:
        return
    try:
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            pool.disconnect()
        client.close()
    except Exception as error:  # noqa: BLE001 - fakeredis raises ValueError("generator already executing") when closed under a send
        logger.debug("Closing a connection of ours: %s", describe_error(error))
