"""Two real `reconciliation run` processes on the same account, on a private redis-server.

One owns the account and publishes; the other is standby. The owner is killed (SIGKILL:
no clean stop, its leases are not released); the standby takes over within one lease
period and publishes, and at no time do both publish: in the stream, every entry of the
first runtime comes before every entry of the second, under a lower fencing token.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest

from reconciliation._cli.main import ExitCode

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import redis
    from redis_server import RedisServer

pytestmark = pytest.mark.real_redis

ACCOUNT = "ACC-1"
RESULT_STREAM = "reconciliation:stream:result"


class Run:
    """`reconciliation run --name NAME`, its stderr read as it comes (so the pipe never fills)."""

    def __init__(self, config: Path, name: str) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "reconciliation", "run", "--config", str(config), "--name", name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={key: value for key, value in os.environ.items() if key not in {"REDIS_URL", "RECONCILIATION_NAME"}},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def output(self) -> str:
        self._reader.join(5)
        return "".join(self.lines)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


@pytest.fixture
def runs() -> Iterator[Callable[[Path, str], Run]]:
    started: list[Run] = []

    def start(config: Path, name: str) -> Run:
        run = Run(config, name)
        started.append(run)
        return run

    yield start
    for run in started:
        run.kill()


def config_file(tmp_path: Path, server: RedisServer, lease_seconds: float) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(
        f'redis_url = "redis://127.0.0.1:{server.port}/0"\nlease_seconds = {lease_seconds}\n\n'
        '[defaults]\nbroker = "reconciliation.paper:paper_broker"\n'
        'portfolio = "reconciliation.paper:paper_portfolio"\ninterval_seconds = 0.3\n\n'
        f'[[accounts]]\naccount_id = "{ACCOUNT}"\n'
    )
    return path


def entries(client: redis.Redis) -> list[tuple[int, str, int]]:
    """Each result entry: (its stream time in ms, runtime, fencing token), in stream order."""
    found = []
    for entry_id, fields in client.xrange(RESULT_STREAM):
        assert json.loads(fields["payload"])["account_id"] == ACCOUNT
        found.append((int(entry_id.split("-")[0]), fields["runtime"], int(fields["fencing_token"])))
    return found


def wait_for(condition: Callable[[], bool], timeout: float, what: str, *watched: Run) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for run in watched:
            assert run.process.poll() is None, run.output()
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(0.02)


def published_by(client: redis.Redis, runtime: str) -> list[tuple[int, str, int]]:
    return [entry for entry in entries(client) if entry[1] == runtime]


def test_the_standby_takes_over_within_one_lease_period_after_the_owner_is_killed_and_never_both_publish(
    tmp_path: Path, redis_server: RedisServer, real_redis: redis.Redis, runs: Callable[[Path, str], Run]
) -> None:
    lease = 3.0
    config = config_file(tmp_path, redis_server, lease)
    owner = runs(config, "owner")
    wait_for(lambda: len(published_by(real_redis, "owner")) >= 2, 20, "the owner's runs", owner)
    standby = runs(config, "standby")
    wait_for(lambda: standby.said("standby (owned by owner)"), 20, "the second process standing by", standby)
    time.sleep(1.0)
    assert published_by(real_redis, "standby") == []

    killed_ms = time.time_ns() // 1_000_000
    owner.process.send_signal(signal.SIGKILL)
    owner.kill()
    wait_for(lambda: published_by(real_redis, "standby") != [], 3 * lease, "the standby's first run", standby)
    time.sleep(1.0)

    published = entries(real_redis)
    runtimes = [runtime for _, runtime, _ in published]
    switch = runtimes.index("standby")
    assert set(runtimes[:switch]) == {"owner"}, "the two interleaved"
    assert set(runtimes[switch:]) == {"standby"}, "the two interleaved"
    assert {token for _, runtime, token in published if runtime == "owner"} == {1}
    assert {token for _, runtime, token in published if runtime == "standby"} == {2}
    taken_over_after = (published[switch][0] - killed_ms) / 1000
    assert taken_over_after <= lease, f"the standby published {taken_over_after:.2f} s after the owner died"
    assert standby.said("This runtime now owns ACC-1 (lease token 2)")


def test_a_process_restarted_under_its_name_takes_its_lease_back_at_once_under_the_same_token(
    tmp_path: Path, redis_server: RedisServer, real_redis: redis.Redis, runs: Callable[[Path, str], Run]
) -> None:
    lease = 30.0
    config = config_file(tmp_path, redis_server, lease)
    first = runs(config, "eu-1")
    wait_for(lambda: len(published_by(real_redis, "eu-1")) >= 1, 20, "the first process's runs", first)
    first.kill()
    before = len(entries(real_redis))

    started = time.monotonic()
    restarted = runs(config, "eu-1")
    wait_for(lambda: len(entries(real_redis)) > before, 20, "the restarted process's first run", restarted)

    assert time.monotonic() - started < lease / 3, "it waited for its own lease to expire"
    assert {token for _, _, token in entries(real_redis)} == {1}


def test_a_second_live_process_under_a_name_in_use_is_refused_at_start(
    tmp_path: Path, redis_server: RedisServer, real_redis: redis.Redis, runs: Callable[[Path, str], Run]
) -> None:
    config = config_file(tmp_path, redis_server, 3.0)
    first = runs(config, "eu-1")
    wait_for(lambda: len(published_by(real_redis, "eu-1")) >= 1, 20, "the first process's runs", first)

    second = runs(config, "eu-1")

    assert second.process.wait(20) == ExitCode.START_FAILED
    assert "another live process runs as runtime 'eu-1'" in second.output()
    assert first.process.poll() is None
