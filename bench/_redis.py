"""A Redis for the benchmarks: a private redis-server, or the one given by URL.

Pub/sub channels are shared by every database of a server, so publishing thousands of
benchmark alerts into the machine's Redis would reach other people's subscribers; a
private server on a free port avoids that. Either way the keys created are deleted.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from _harness import percentile

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["PRIVATE", "Longest", "SlowLog", "bench_redis", "delete_bench_keys"]

PRIVATE = "private redis-server"
"""How `bench_redis` describes its own server: one whose configuration the benchmarks may change."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def bench_redis(url: str | None) -> Iterator[tuple[redis.Redis, str]]:
    """A client and a description of the server it talks to."""
    if url is not None or shutil.which("redis-server") is None:
        url = url or "redis://127.0.0.1:6379/15"
        client = redis.Redis.from_url(url)
        client.ping()
        try:
            yield client, f"{url} (redis {client.info()['redis_version']})"
        finally:
            delete_bench_keys(client)
            client.close()
        return
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield client, f"{PRIVATE} {client.info()['redis_version']} on 127.0.0.1:{port}"
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)


def delete_bench_keys(client: redis.Redis) -> None:
    """Delete the streams and published markers the benchmarks created."""
    for pattern in ("reconciliation:stream:*", "reconciliation:published:*", "bench:*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])


class SlowLog:
    """The longest single command or script a private server ran between `reset` and
    `longest`, from its slow log.

    Every command of at least `THRESHOLD_US` is logged, not every command: Redis 7 also
    logs each command a script calls, two per payload (PUBLISH, XADD), so logging all of
    them would take a log of 200,000 entries for one run of 100,000 breaks. A script call
    is logged with its whole duration, which is what the figure is about.
    """

    THRESHOLD_US = 100

    def __init__(self, client: redis.Redis, capacity: int = 100_000) -> None:
        self._client = client
        self._saved = client.config_get("slowlog-*")
        client.config_set("slowlog-log-slower-than", self.THRESHOLD_US)
        client.config_set("slowlog-max-len", capacity)
        self._capacity = capacity

    def reset(self) -> None:
        self._client.slowlog_reset()

    def longest(self) -> Longest:
        """The longest command, and the spread of the script calls (`EVALSHA`), since `reset`.

        Raises:
            RuntimeError: the log filled up, so the longest may have been dropped.
        """
        entries = self._client.slowlog_get(self._capacity)
        if len(entries) >= self._capacity:
            msg = f"the slow log overflowed its {self._capacity} entries"
            raise RuntimeError(msg)
        named = [(int(entry["duration"]), _command_name(entry["command"])) for entry in entries]
        duration, name = max(named, default=(0, "none"))
        scripts = [d for d, command in named if command == "EVALSHA"]
        return Longest(duration, name, len(named), percentile(scripts, 50), percentile(scripts, 99))

    def close(self) -> None:
        for name, value in self._saved.items():
            self._client.config_set(name, value)


def _command_name(command: bytes | str) -> str:
    return (command.decode() if isinstance(command, bytes) else command).split(" ", 1)[0].upper()


@dataclass(frozen=True)
class Longest:
    """What the slow log says: durations in µs."""

    duration: int
    command: str
    logged: int
    script_median: float
    script_p99: float
