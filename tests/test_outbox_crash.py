"""The durable outbox end to end: `reconciliation run` killed with SIGKILL while Redis is down
loses no run; restarted with Redis back, it publishes every one of them first, once, in order."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from typing import TYPE_CHECKING

import pytest

from reconciliation._publishing.redis_sink import RESULT_STREAM
from reconciliation._runtime.journal import JOURNAL_FILE

if TYPE_CHECKING:
    from pathlib import Path

    import redis
    from redis_server import RedisServer

pytestmark = pytest.mark.real_redis

RUNS_QUEUED_DURING_THE_OUTAGE = 40


def journaled_run_ids(state_dir: Path) -> list[str]:
    """The runs the journal holds, oldest first (read beside the process, as WAL allows)."""
    connection = sqlite3.connect(f"file:{state_dir / JOURNAL_FILE}?mode=ro", uri=True, timeout=5)
    try:
        return [run_id for (run_id,) in connection.execute("SELECT run_id FROM outbox ORDER BY seq")]
    finally:
        connection.close()


def published_run_ids(client: redis.Redis, account_id: str) -> list[str]:
    payloads = [json.loads(fields["payload"]) for _, fields in client.xrange(RESULT_STREAM)]
    return [payload["run_id"] for payload in payloads if payload["account_id"] == account_id]


def start_run(config: Path, state_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "reconciliation", "run", "--config", str(config), "--state-dir", str(state_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={key: value for key, value in os.environ.items() if key != "REDIS_URL"},
    )


def wait_for(condition: object, what: str, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if process.poll() is not None:
            pytest.fail(f"the run process ended while waiting for {what}:\n{process.communicate()[1]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("outage", ["down", "stalled"])
def test_runs_queued_during_an_outage_survive_a_kill_9_and_are_published_first_once_in_order(
    tmp_path: Path, redis_server: RedisServer, outage: str
) -> None:
    """Down: the server killed (connections refused), back empty. Stalled: the server
    paused (SIGSTOP) with a round trip of ours stuck in it, back with its data — so that
    round trip may land after the kill, and the restarted process re-sends it: a no-op."""
    account = f"TEST-{uuid.uuid4().hex[:8]}"
    state_dir = tmp_path / "state"
    config = tmp_path / "reconciliation.toml"
    config.write_text(
        f'redis_url = "redis://127.0.0.1:{redis_server.port}/0"\n'
        "[defaults]\n"
        'broker = "reconciliation.paper:paper_broker"\n'
        'portfolio = "reconciliation.paper:paper_portfolio"\n'
        "interval_seconds = 0.05\n"
        f'\n[[accounts]]\naccount_id = "{account}"\n'
    )
    client = redis_server.client()
    first = start_run(config, state_dir)
    try:
        wait_for(lambda: published_run_ids(client, account), "a first run published", first)
        if outage == "down":  # runs pile up in the outbox
            redis_server.kill()
        else:
            redis_server.pause()
        wait_for(
            lambda: len(journaled_run_ids(state_dir)) >= RUNS_QUEUED_DURING_THE_OUTAGE,
            f"{RUNS_QUEUED_DURING_THE_OUTAGE} runs journaled",
            first,
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=15)
    queued = journaled_run_ids(state_dir)
    assert len(queued) >= RUNS_QUEUED_DURING_THE_OUTAGE

    if outage == "down":
        redis_server.start()  # back, empty
        client = redis_server.client()
    else:
        redis_server.resume()
    second = start_run(config, state_dir)
    try:
        wait_for(lambda: len(published_run_ids(client, account)) > len(queued), "the queued runs published", second)
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=15)
    finally:
        second.kill()

    published = published_run_ids(client, account)
    assert len(set(published)) == len(published), "no run was published twice"
    first = published.index(queued[0])
    assert published[first : first + len(queued)] == queued, "the queued runs came first, in the order they finished"
    if outage == "down":
        assert first == 0, "Redis came back empty: nothing precedes the queued runs"
    assert "delivered to redis first, in order" in err
    assert journaled_run_ids(state_dir) == []
