"""A private redis-server per test, on a free loopback port, that a test may kill and restart.

The `real_redis` tests need `redis-server` on PATH (CI installs it); without it they fail
and say so, rather than skip and pass unnoticed.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import time
from typing import TYPE_CHECKING

import pytest
import redis
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.retry import Retry

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["RedisServer", "free_port", "real_redis", "redis_executable", "redis_server"]

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 5.0
CLIENT_TIMEOUT_SECONDS = 0.5


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One `redis-server` process without persistence, always on the same port."""

    def __init__(self, executable: str, directory: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self._executable = executable
        self._directory = directory
        self._extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        log = self._directory / "redis.log"
        self._process = subprocess.Popen(  # noqa: S603 (a fixed command line)
            [
                self._executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._directory),
                "--logfile",
                str(log),
                *self._extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        probe = redis.Redis(
            host="127.0.0.1", port=self.port, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
        )
        try:
            while True:
                try:
                    if probe.ping():
                        return
                except redis.ConnectionError:
                    if self._process.poll() is not None or time.monotonic() > deadline:
                        self.kill()
                        text = log.read_text() if log.exists() else "(no log)"
                        pytest.fail(f"redis-server did not start on port {self.port}:\n{text}", pytrace=False)
                    time.sleep(0.02)
        finally:
            probe.close()

    def kill(self) -> None:
        """End the server at once (SIGKILL), as a crash would; connected clients see it vanish."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)
            self._process.kill()
            self._process.wait()
            self._process = None

    def pause(self) -> None:
        """Stall the server (SIGSTOP): connections stay open, nothing answers."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Start an empty server again on the same port (nothing is persisted)."""
        self.kill()
        self.start()

    def client(self) -> redis.Redis:
        """A client with short timeouts and redis-py's retries kept, but quick."""
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            decode_responses=True,
            socket_connect_timeout=CLIENT_TIMEOUT_SECONDS,
            socket_timeout=CLIENT_TIMEOUT_SECONDS,
            retry=Retry(EqualJitterBackoff(cap=0.05, base=0.01), retries=2),
        )


def redis_executable(name: str = "redis-server") -> str:
    """The path of `name`, or the test's failure saying how to install it."""
    executable = shutil.which(name)
    if executable is None:
        pytest.fail(
            f"{name} is not on PATH: the real_redis tests start private servers "
            "(install it, e.g. `apt-get install redis-server redis-tools`, as .ci/run does)",
            pytrace=False,
        )
    return executable


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started private redis-server, killed after the test."""
    server = RedisServer(redis_executable(), tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def real_redis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the test's private redis-server."""
    client = redis_server.client()
    yield client
    client.close()
