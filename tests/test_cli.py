"""The `reconciliation` command as a user runs it: demo, watch, run, and their errors."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest
from click.testing import CliRunner

from reconciliation._cli.main import main
from reconciliation._domain.models import ReconciliationConfig

if TYPE_CHECKING:
    from collections.abc import Iterator

    import redis
    from redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
RESULT_STREAM = "reconciliation:stream:result"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI configures the root logger; put it back for the next test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _url(server: RedisServer) -> str:
    return f"redis://127.0.0.1:{server.port}/0"


def _results(client: redis.Redis, account_id: str) -> list[dict[str, object]]:
    payloads = [json.loads(fields["payload"]) for _, fields in client.xrange(RESULT_STREAM)]
    return [payload for payload in payloads if payload["account_id"] == account_id]


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciliation", *args]


def _account() -> str:
    return f"TEST-{uuid.uuid4().hex[:8]}"


@pytest.mark.real_redis
def test_demo_quick_publishes_every_trigger_and_catches_every_fault(
    redis_server: RedisServer, real_redis: redis.Redis
) -> None:
    account = _account()

    outcome = CliRunner().invoke(
        main, ["demo", "--quick", "--redis-url", _url(redis_server), "--account", account]
    )

    assert outcome.exit_code == 0, outcome.output
    assert "fake Redis" not in outcome.output
    assert "Injected faults" in outcome.output
    breaks = {
        (payload["type"], payload["symbol"])
        for _, fields in real_redis.xrange("reconciliation:stream:discrepancy")
        if (payload := json.loads(fields["payload"]))["account_id"] == account
    }
    assert breaks == {
        ("quantity_mismatch", "MSFT"),
        ("missing_local", "NVDA"),
        ("missing_broker", "GOOG"),
        ("cash_mismatch", None),
        ("cost_mismatch", "AMZN"),
        ("equity_mismatch", None),
    }
    published = _results(real_redis, account)
    assert {payload["context"]["trigger"] for payload in published} == {  # type: ignore[index]
        "startup",
        "post_fill",
        "periodic",
        "on_demand",
    }
    assert f"{len(published)} results" in outcome.output


def test_demo_without_redis_says_so_and_runs_on_the_in_process_fake() -> None:
    outcome = CliRunner().invoke(
        main, ["demo", "--quick", "--redis-url", f"redis://127.0.0.1:{_closed_port()}/0"]
    )

    assert outcome.exit_code == 0, outcome.output
    assert "no Redis answered at redis://127.0.0.1:" in outcome.output
    assert "in-process fake Redis" in outcome.output
    assert "Injected faults" in outcome.output


@pytest.mark.real_redis
def test_watch_prints_a_payload_published_while_it_listens(
    redis_server: RedisServer, real_redis: redis.Redis
) -> None:
    payload = json.dumps({"run_id": str(uuid.uuid4()), "type": "quantity_mismatch", "severity": "critical"})
    watcher = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        _command("watch", "--json", "--count", "1", "--timeout", "10", "--redis-url", _url(redis_server)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while real_redis.pubsub_numsub("reconciliation:discrepancy")[0][1] == 0:
            assert watcher.poll() is None, watcher.communicate()
            assert time.monotonic() < deadline, "watch never subscribed"
            time.sleep(0.05)
        real_redis.publish("reconciliation:discrepancy", payload)
        out, err = watcher.communicate(timeout=10)
    finally:
        watcher.kill()

    assert watcher.returncode == 0, err
    assert out.splitlines() == [payload]


@pytest.mark.real_redis
def test_watch_replays_what_the_streams_kept_and_colours_it(
    redis_server: RedisServer, real_redis: redis.Redis
) -> None:
    run_id = str(uuid.uuid4())
    result = {
        "run_id": run_id,
        "account_id": "ACC-9",
        "context": {"trigger": "periodic"},
        "discrepancy_count": 1,
    }
    discrepancy = {
        "run_id": run_id,
        "type": "missing_broker",
        "severity": "critical",
        "symbol": "GOOG",
        "local_value": "25",
        "broker_value": None,
        "account_id": "ACC-9",
    }
    halt = {**discrepancy, "consecutive_runs": 3, "first_seen": "2026-11-25T10:00:00.000000+00:00"}
    real_redis.xadd(RESULT_STREAM, {"payload": json.dumps(result)})
    real_redis.xadd("reconciliation:stream:discrepancy", {"payload": json.dumps(discrepancy)})
    real_redis.xadd("reconciliation:stream:halt", {"payload": json.dumps(halt)})

    outcome = CliRunner(env={"FORCE_COLOR": "1"}).invoke(
        main, ["watch", "--replay", "5", "--timeout", "0.5", "--redis-url", _url(redis_server)]
    )

    assert outcome.exit_code == 0, outcome.output
    lines = [line for line in outcome.output.splitlines() if "(replay)" in line]
    assert len(lines) == 3
    assert "ACC-9" in lines[0]
    assert "periodic" in lines[0]
    assert "missing_broker" in lines[1]
    assert "\x1b[1;31mCRITICAL" in lines[1]
    assert "HALT" in lines[2]
    assert "kill switch: 3 runs in a row since 10:00:00" in lines[2]


def test_watch_without_redis_exits_3_with_one_line() -> None:
    outcome = CliRunner().invoke(main, ["watch", "--redis-url", f"redis://127.0.0.1:{_closed_port()}/0"])

    assert outcome.exit_code == 3
    assert outcome.output.strip().count("\n") == 0
    assert outcome.output.startswith("Error: no Redis answered at redis://127.0.0.1:")


@pytest.mark.real_redis
def test_watch_timing_out_before_count_exits_1(redis_server: RedisServer) -> None:
    outcome = CliRunner().invoke(
        main, ["watch", "--count", "1", "--timeout", "0.3", "--redis-url", _url(redis_server)]
    )

    assert outcome.exit_code == 1
    assert "0 of 1 messages" in outcome.output


def _write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "reconciliation.toml"
    path.write_text(body)
    return path


_FACTORIES = """
[defaults]
broker = "reconciliation.paper:paper_broker"
portfolio = "reconciliation.paper:paper_portfolio"
"""


@pytest.mark.real_redis
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_reconciles_until_signalled_then_stops_cleanly(
    tmp_path: Path, redis_server: RedisServer, real_redis: redis.Redis, signum: signal.Signals
) -> None:
    account = _account()
    config = _write_config(
        tmp_path,
        f'redis_url = "{_url(redis_server)}"\n{_FACTORIES}interval_seconds = 0.3\n\n'
        f'[[accounts]]\naccount_id = "{account}"\n',
    )
    runner = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        _command("run", "--config", str(config)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={key: value for key, value in os.environ.items() if key != "REDIS_URL"},
    )
    try:
        deadline = time.monotonic() + 15
        while {"startup", "periodic"} - {p["context"]["trigger"] for p in _results(real_redis, account)}:  # type: ignore[index]
            assert runner.poll() is None, runner.communicate()
            assert time.monotonic() < deadline, "no startup and periodic results were published"
            time.sleep(0.1)
        runner.send_signal(signum)
        _, err = runner.communicate(timeout=15)
    finally:
        runner.kill()

    assert runner.returncode == 0, err
    assert "Stopped 1 reconciliation service(s)" in err
    assert "Traceback" not in err
    assert all(payload["status"] == "ok" for payload in _results(real_redis, account))


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (
            f'{_FACTORIES}\n[[accounts]]\naccount_id = "A"\nintervall_seconds = 5\n',
            "accounts[0].intervall_seconds",
        ),
        (
            f'{_FACTORIES}\n[[accounts]]\naccount_id = "A"\ninterval_seconds = -5\n',
            "accounts[0].interval_seconds",
        ),
        (
            f'{_FACTORIES}cash_tolerance = "a dollar"\n\n[[accounts]]\naccount_id = "A"\n',
            "defaults.cash_tolerance",
        ),
        (f'{_FACTORIES}\n[[accounts]]\naccount_id = "A"\nenabled = "yes"\n', "accounts[0].enabled"),
        (
            f'{_FACTORIES}\n[[accounts]]\naccount_id = "A"\nbroker = "reconciliation.nowhere:broker"\n',
            "accounts[0].broker",
        ),
        (
            f'{_FACTORIES}\n[[accounts]]\naccount_id = "A"\n[accounts.severity_overrides]\ncost_mismatch = "loud"\n',
            "accounts[0].severity_overrides",
        ),
        (
            f'{_FACTORIES}\n[[accounts]]\naccount_id = "A"\n\n[[accounts]]\naccount_id = "A"\n',
            "accounts[1].account_id",
        ),
        (
            f'{_FACTORIES}\n[[accounts]]\naccount_id = "A"\n[accounts.ageing]\nhalt_after = 3\n',
            "accounts[0].ageing.halt_after",
        ),
        (
            f'{_FACTORIES}\n[[accounts]]\naccount_id = "A"\n[accounts.ageing]\nescalate_to = "critical"\n',
            "accounts[0].ageing",
        ),
        (_FACTORIES, "accounts"),
        ('redis_url = "redis://x"\nredis_uri = "redis://y"\n', "redis_uri"),
    ],
)
def test_a_bad_config_gives_one_line_naming_the_key_and_exit_2(tmp_path: Path, body: str, named: str) -> None:
    config = _write_config(tmp_path, body)

    outcome = CliRunner().invoke(main, ["run", "--config", str(config)])

    assert outcome.exit_code == 2, outcome.output
    assert outcome.output.startswith(f"Error: {config}: {named}: "), outcome.output
    assert outcome.output.strip().count("\n") == 0, outcome.output


def test_unknown_key_suggests_the_known_one(tmp_path: Path) -> None:
    config = _write_config(tmp_path, f'{_FACTORIES}\n[[accounts]]\naccount_id = "A"\nintervall_seconds = 5\n')

    outcome = CliRunner().invoke(main, ["run", "--config", str(config)])

    assert "did you mean 'interval_seconds'?" in outcome.output


def test_example_config_is_valid() -> None:
    outcome = CliRunner().invoke(
        main, ["run", "--check", "--config", str(ROOT / "docs" / "example-config.toml")]
    )

    assert outcome.exit_code == 0, outcome.output
    assert "OK" in outcome.output


def test_run_without_redis_exits_3(tmp_path: Path) -> None:
    config = _write_config(
        tmp_path,
        f'redis_url = "redis://127.0.0.1:{_closed_port()}/0"\n{_FACTORIES}\n[[accounts]]\naccount_id = "A"\n',
    )

    outcome = CliRunner(env={"REDIS_URL": None}).invoke(main, ["run", "--config", str(config)])

    assert outcome.exit_code == 3, outcome.output
    assert "no Redis answered" in outcome.output


def test_every_config_option_is_documented_and_settable_from_toml(tmp_path: Path) -> None:
    documented = (ROOT / "docs" / "configuration.md").read_text()
    defaults = ReconciliationConfig("A")
    lines, tables = [_FACTORIES], []
    for field in attrs.fields(ReconciliationConfig):
        assert f"`{field.name}`" in documented, f"docs/configuration.md does not describe {field.name}"
        value = getattr(defaults, field.name)
        if field.name in {"account_id", "severity_overrides"} or value is None:
            continue
        if attrs.has(type(value)):
            tables.append(f"[defaults.{field.name}]")
        elif isinstance(value, Mapping):
            tables.append(f'[defaults.{field.name}]\nEUR = "0.50"')
        elif isinstance(value, bool | int | float):
            lines.append(f"{field.name} = {json.dumps(value)}")
        else:
            lines.append(f'{field.name} = "{value}"')
    lines.extend(tables)
    lines.append(
        '\n[[accounts]]\naccount_id = "A"\n[accounts.severity_overrides]\ncost_mismatch = "warning"\n'
    )
    config = _write_config(tmp_path, "\n".join(lines))

    outcome = CliRunner().invoke(main, ["run", "--check", "--config", str(config)])

    assert outcome.exit_code == 0, outcome.output


def test_every_command_has_help_with_examples() -> None:
    for command in ("demo", "watch", "run"):
        outcome = CliRunner().invoke(main, [command, "--help"])
        assert outcome.exit_code == 0
        assert "Examples:" in outcome.output
        assert "Exit codes:" in outcome.output


def test_demo_without_redis_or_fakeredis_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "lupa" else real_find_spec(name, *a)
    )

    outcome = CliRunner().invoke(
        main, ["demo", "--quick", "--redis-url", f"redis://127.0.0.1:{_closed_port()}/0"]
    )

    assert outcome.exit_code == 3, outcome.output
    assert "pip install 'fakeredis[lua]'" in outcome.output


@pytest.mark.real_redis
def test_watch_that_loses_redis_exits_3_with_one_line(
    redis_server: RedisServer, real_redis: redis.Redis
) -> None:
    watcher = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        _command("watch", "--timeout", "20", "--redis-url", _url(redis_server)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while real_redis.pubsub_numsub("reconciliation:result")[0][1] == 0:
            assert watcher.poll() is None, watcher.communicate()
            assert time.monotonic() < deadline, "watch never subscribed"
            time.sleep(0.05)
        redis_server.kill()
        _, err = watcher.communicate(timeout=10)
    finally:
        watcher.kill()

    assert watcher.returncode == 3, err
    assert err.startswith("Error: lost Redis at redis://127.0.0.1:")
    assert err.strip().count("\n") == 0, err
