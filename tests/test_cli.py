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
import typing
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import click
import pytest
from cli_runner import stderr_apart
from click.testing import CliRunner

from reconciliation._cli.main import COMMANDS, main
from reconciliation._cli.runner import ConfigError, load_config
from reconciliation._domain.models import ReconciliationConfig

if TYPE_CHECKING:

    import redis
    from redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
RESULT_STREAM = "reconciliation:stream:result"


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
    assert "Stopped reconciling 1 account(s)" in err
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
        (f'redis_url = "redis://x"\nredis_uri = "redis://y"\n{_FACTORIES}\n[[accounts]]\naccount_id = "A"\n', "redis_uri"),
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


@pytest.mark.real_redis
def test_run_starts_while_redis_is_down_says_so_and_publishes_once_it_answers(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    account = _account()
    config = _write_config(
        tmp_path, f'redis_url = "{_url(redis_server)}"\n{_FACTORIES}\n[[accounts]]\naccount_id = "{account}"\n'
    )
    redis_server.kill()
    runner = _start(_command("run", "--config", str(config)))
    try:
        _read_until(runner, "No Redis answers at")
        redis_server.start()
        client = redis_server.client()
        deadline = time.monotonic() + 15
        while not _results(client, account):
            assert time.monotonic() < deadline, "the startup run queued during the outage never arrived"
            time.sleep(0.1)
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=15)
    finally:
        runner.kill()
    assert runner.returncode == 0
    assert _results(client, account)[0]["context"] == {"trigger": "startup"}


@pytest.mark.real_redis
def test_a_second_signal_while_stopping_exits_at_once(tmp_path: Path, redis_server: RedisServer) -> None:
    account = _account()
    config = _write_config(
        tmp_path,
        f'redis_url = "{_url(redis_server)}"\n{_FACTORIES}interval_seconds = 0.1\n\n[[accounts]]\naccount_id = "{account}"\n',
    )
    runner = _start(_command("run", "--config", str(config)))
    try:
        _read_until(runner, "Reconciling 1 account(s)")
        redis_server.pause()
        time.sleep(0.5)
        runner.send_signal(signal.SIGINT)
        _read_until(runner, "send it again to exit at once")
        runner.send_signal(signal.SIGINT)
        started = time.monotonic()
        runner.wait(timeout=10)
        took = time.monotonic() - started
    finally:
        redis_server.resume()
        runner.kill()
    assert runner.returncode == 130
    assert took < 5


def test_run_with_a_malformed_redis_url_is_a_usage_error(tmp_path: Path) -> None:
    config = _write_config(tmp_path, f'redis_url = "notaurl"\n{_FACTORIES}\n[[accounts]]\naccount_id = "A"\n')
    outcome = CliRunner(env={"REDIS_URL": None}).invoke(main, ["run", "--config", str(config)])
    assert outcome.exit_code == 2, outcome.output
    assert "not a Redis URL" in outcome.output


def _start(command: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={key: value for key, value in os.environ.items() if key != "REDIS_URL"},
    )


def _read_until(process: subprocess.Popen[str], text: str, timeout: float = 15) -> None:
    """Read the process's stderr, line by line, until a line holds `text`."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return
    pytest.fail(f"{text!r} never appeared; stderr was:\n{''.join(seen)}")


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


def _money_fields(kind: type) -> list[str]:
    """The options of `kind` (and of the policies it holds, as `table.key`) that hold Decimals."""
    found = []
    for field in attrs.fields(attrs.resolve_types(kind)):
        parts = (field.type, *typing.get_args(field.type))
        found.extend(field.name for part in parts if part is Decimal)
        found.extend(f"{field.name}.{name}" for part in parts if attrs.has(part) for name in _money_fields(part))
    return found


def test_a_toml_float_is_read_as_the_digits_written_wherever_money_belongs(tmp_path: Path) -> None:
    config = _write_config(
        tmp_path,
        f'{_FACTORIES}\n[[accounts]]\naccount_id = "A"\ncash_tolerance = 0.1\nequity_tolerance_pct = 0.25\n'
        "cost_tolerance_pct = 0.01\ncash_tolerance_by_currency = { EUR = 0.3 }\n"
        "[accounts.correction]\nmax_notional = 2500.75\nmax_notional_by_currency = { EUR = 99.95 }\n"
        "[accounts.correction.limits]\nnotional_per_run = 100.5\nnotional_per_day = 1000.25\n"
        "[accounts.plausibility]\nmax_position_change = 0.3\nmax_notional_change = 0.4\nmax_cash_change = 0.6\n",
    )

    (spec,) = load_config(config).accounts

    assert set(_money_fields(ReconciliationConfig)) == {
        "cash_tolerance",
        "equity_tolerance_pct",
        "cost_tolerance_pct",
        "cash_tolerance_by_currency",
        "correction.max_notional",
        "correction.max_notional_by_currency",
        "correction.limits.notional_per_run",
        "correction.limits.notional_per_day",
        "plausibility.max_position_change",
        "plausibility.max_notional_change",
        "plausibility.max_cash_change",
    }, "a new money option: add it to this file, which proves a TOML float is read exactly for it"
    assert spec.config.correction is not None
    limits, plausibility = spec.config.correction.limits, spec.config.plausibility
    assert [
        str(spec.config.cash_tolerance),
        str(spec.config.equity_tolerance_pct),
        str(spec.config.cost_tolerance_pct),
        str(spec.config.cash_tolerance_by_currency["EUR"]),
        str(spec.config.correction.max_notional),
        str(spec.config.correction.max_notional_by_currency["EUR"]),
        str(limits.notional_per_run),
        str(limits.notional_per_day),
        str(plausibility.max_position_change),
        str(plausibility.max_notional_change),
        str(plausibility.max_cash_change),
    ] == ["0.1", "0.25", "0.01", "0.3", "2500.75", "99.95", "100.5", "1000.25", "0.3", "0.4", "0.6"]


def test_the_runtimes_own_correction_limits_are_read_from_their_table(tmp_path: Path) -> None:
    config = _write_config(
        tmp_path,
        f'{_FACTORIES}\n[[accounts]]\naccount_id = "A"\n[correction_limits]\nper_day = 200\nnotional_per_day = "1000000"\n',
    )

    limits = load_config(config).correction_limits

    assert limits is not None
    assert (limits.per_day, limits.notional_per_day) == (200, Decimal(1_000_000))


def test_a_mistake_in_the_runtimes_correction_limits_is_named_with_its_table(tmp_path: Path) -> None:
    config = _write_config(tmp_path, f'{_FACTORIES}\n[[accounts]]\naccount_id = "A"\n[correction_limits]\nper_dya = 200\n')

    with pytest.raises(ConfigError) as refused:
        load_config(config)

    assert refused.value.problems == ("correction_limits.per_dya: unknown key (did you mean 'per_day'?)",)


def test_the_runtime_name_and_lease_period_are_read_from_the_top_of_the_file(tmp_path: Path) -> None:
    config = _write_config(
        tmp_path, f'runtime_name = "eu-1"\nlease_seconds = 12.5\n{_FACTORIES}\n[[accounts]]\naccount_id = "A"\n'
    )

    loaded = load_config(config)

    assert (loaded.runtime_name, loaded.lease_seconds) == ("eu-1", 12.5)


def test_a_blank_runtime_name_and_a_lease_too_short_are_each_named(tmp_path: Path) -> None:
    config = _write_config(
        tmp_path, f'runtime_name = " "\nlease_seconds = 0.2\n{_FACTORIES}\n[[accounts]]\naccount_id = "A"\n'
    )

    with pytest.raises(ConfigError) as refused:
        load_config(config)

    assert refused.value.problems == (
        "runtime_name: the runtime name must be 1 to 200 printable characters, not blank",
        "lease_seconds: lease_seconds must be from 1 to 3600 s, not 0.2",
    )


def test_a_mistake_in_a_table_of_amounts_names_the_entry(tmp_path: Path) -> None:
    config = _write_config(
        tmp_path,
        f'{_FACTORIES}\n[[accounts]]\naccount_id = "A"\n'
        '[accounts.cash_tolerance_by_currency]\nEUR = "0.50"\nJPY = "a hundred"\nCHF = -1\n',
    )

    with pytest.raises(ConfigError) as refused:
        load_config(config)

    assert refused.value.problems == (
        "accounts[0].cash_tolerance_by_currency.JPY: expected a number such as \"1.00\", got a string 'a hundred'",
    )


def test_every_command_has_help_with_examples() -> None:
    for command in ("demo", "watch", "run", "history", "serve"):
        outcome = CliRunner().invoke(main, [command, "--help"])
        assert outcome.exit_code == 0
        assert "Examples:" in outcome.output
        assert "Exit codes:" in outcome.output


HEAVY = ("pyarrow", "numpy", "ccxt", "starlette", "uvicorn", "prometheus_client", "psycopg", "pykka", "redis", "rich")


def test_the_help_imports_no_command_and_nothing_heavy() -> None:
    shown = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reconciliation", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    imported = {line.rsplit("|", 1)[1].strip() for line in shown.stderr.splitlines() if line.startswith("import time:")}
    assert "Commands:" in shown.stdout
    assert "click" in imported
    assert sorted(m for m in imported if m.split(".")[0] in HEAVY or m.startswith("reconciliation._cli.commands")) == []


def test_the_help_lists_each_command_with_its_own_summary() -> None:
    ctx = click.Context(main, info_name="reconciliation")
    listed, loaded = click.HelpFormatter(), click.HelpFormatter()

    main.format_commands(ctx, listed)
    click.Group.format_commands(main, ctx, loaded)

    assert listed.getvalue() == loaded.getvalue()
    assert "watch    Show runs, breaks" in listed.getvalue()
    assert [main.get_command(ctx, name).name for name in COMMANDS] == list(COMMANDS)


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


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_is_accepted_before_or_after_the_command(where: str) -> None:
    check = ["run", "--check", "--config", str(ROOT / "docs" / "example-config.toml")]
    args = ["-v", *check] if where == "before" else [*check[:1], "-v", *check[1:]]

    outcome = CliRunner().invoke(main, args)

    assert outcome.exit_code == 0, outcome.output
    assert logging.getLogger().level == logging.DEBUG


def test_demo_with_a_url_that_is_not_a_redis_url_is_a_usage_error() -> None:
    outcome = CliRunner().invoke(main, ["demo", "--quick", "--redis-url", "notaurl"])

    assert outcome.exit_code == 2, outcome.output
    assert outcome.output.startswith("Error: --redis-url: not a Redis URL: notaurl")


def test_run_with_a_redis_url_that_is_not_one_is_a_usage_error(tmp_path: Path) -> None:
    config = _write_config(tmp_path, f'redis_url = "notaurl"\n{_FACTORIES}\n[[accounts]]\naccount_id = "A"\n')

    outcome = CliRunner(env={"REDIS_URL": None}).invoke(main, ["run", "--config", str(config)])

    assert outcome.exit_code == 2, outcome.output
    assert "not a Redis URL" in outcome.output


def test_a_config_with_several_mistakes_reports_each_on_its_own_line(tmp_path: Path) -> None:
    config = _write_config(
        tmp_path,
        'redis_uri = "redis://y"\n'
        f"{_FACTORIES}"
        'cash_tolerance = "a dollar"\n\n'
        '[[accounts]]\naccount_id = "A"\nintervall_seconds = 5\ninterval_seconds = -5\n'
        'broker_timeout_seconds = 0\nbroker = "reconciliation.nowhere:broker"\n'
        "[accounts.ageing]\nhalt_after = 3\nescalate_after = 2\n\n"
        '[[accounts]]\naccount_id = "B"\nenabled = "yes"\n',
    )

    outcome = CliRunner().invoke(main, ["run", "--config", str(config)])

    assert outcome.exit_code == 2, outcome.output
    named = [line.removeprefix(f"Error: {config}: ").split(":")[0] for line in outcome.output.splitlines()]
    assert named == [
        "redis_uri",
        "accounts[0].intervall_seconds",
        "accounts[0].broker",
        "defaults.cash_tolerance",
        "accounts[0].ageing.halt_after",
        "accounts[0].ageing.escalate_after",
        "accounts[0].interval_seconds",
        "accounts[0].broker_timeout_seconds",
        "accounts[1].enabled",
    ]


def test_a_factory_module_in_the_working_directory_can_be_named_by_run(tmp_path: Path) -> None:
    (tmp_path / "house_books.py").write_text(
        "from reconciliation.paper import paper_broker, paper_portfolio\n\n"
        "def broker(account_id):\n    return paper_broker(account_id)\n\n"
        "def portfolio(account_id):\n    return paper_portfolio(account_id)\n"
    )
    config = _write_config(
        tmp_path, '[defaults]\nbroker = "house_books:broker"\nportfolio = "house_books:portfolio"\n\n[[accounts]]\naccount_id = "A"\n'
    )
    script = Path(sys.executable).with_name("reconciliation")
    assert script.exists(), f"the console script {script} is not installed (pip install -e .)"

    checked = subprocess.run(  # noqa: S603 - the installed script, fixed arguments
        [str(script), "run", "--check", "--config", config.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert checked.returncode == 0, checked.stderr
    assert "OK (1 account(s): A" in checked.stdout


_HOUSE_BOOKS = """\
from decimal import Decimal

from reconciliation import BrokerPosition
from reconciliation.paper import OPENING_CASH
from reconciliation.testing import ScriptedBroker


def broker(account_id):
    return ScriptedBroker(
        account_id, [BrokerPosition("AAPL", 10, 100, 1000)], cash=OPENING_CASH, total_equity=OPENING_CASH
    )
"""


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics page, parsed by prometheus_client, by name and labels."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415 - the metrics extra

    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.real_redis
def test_run_serves_metrics_that_prometheus_parses(tmp_path: Path, redis_server: RedisServer) -> None:
    account = _account()
    (tmp_path / "house_books.py").write_text(_HOUSE_BOOKS)
    config = _write_config(
        tmp_path,
        f'redis_url = "{_url(redis_server)}"\n\n[defaults]\nbroker = "house_books:broker"\n'
        f'portfolio = "reconciliation.paper:paper_portfolio"\n\n[[accounts]]\naccount_id = "{account}"\n',
    )
    port = _closed_port()
    runner = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        _command("run", "--config", str(config), "--metrics-port", str(port), "--name", "edge-1"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={key: value for key, value in os.environ.items() if key != "REDIS_URL"},
    )
    try:
        _read_until(runner, f"Serving Prometheus metrics on http://127.0.0.1:{port}/metrics")
        _read_until(runner, "Reconciling 1 account(s)")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            samples = _samples(response.read().decode())
        runner.send_signal(signal.SIGTERM)
        _, err = runner.communicate(timeout=15)
    finally:
        runner.kill()

    def sample(name: str, **labels: str) -> float | None:
        return samples.get((name, frozenset(labels.items())))

    assert runner.returncode == 0, err
    assert sample("reconciliation_runs_total", account=account, trigger="startup", status="ok") == 1
    assert sample("reconciliation_runs_total", account=account, trigger="startup", status="failed") == 0
    assert sample("reconciliation_run_duration_seconds_count", account=account) == 1
    assert sample("reconciliation_open_breaks", account=account, type="missing_local", severity="critical") == 1
    assert sample("reconciliation_open_breaks", account=account, type="cash_mismatch", severity="warning") is None
    assert sample("reconciliation_oldest_open_break_age_seconds", account=account) is not None
    assert sample(
        "reconciliation_book_call_duration_seconds_count", runtime="edge-1", call="broker.get_positions"
    ) == 1
    assert sample("reconciliation_book_call_timeouts_total", account=account, call="broker.get_positions") == 0
    assert sample("reconciliation_delivery_queued_runs", runtime="edge-1", sink="redis") is not None
    assert sample("reconciliation_delivery_dropped_runs_total", runtime="edge-1", sink="redis") == 0
    assert sample("reconciliation_book_calls_hung", runtime="edge-1") == 0
    assert sample("reconciliation_component_state", runtime="edge-1", component="comparator", state="running") == 1
    assert sample("process_resident_memory_bytes") is not None
    assert sample("reconciliation_last_clean_run_timestamp_seconds", account=account) == 0
    assert sample("reconciliation_account_stale", account=account) == 0
    assert [labels for name, labels in samples if name == "reconciliation_build_info"] != []


def test_run_with_its_metrics_port_in_use_says_so_in_one_line_and_exits_4(tmp_path: Path) -> None:
    config = _write_config(tmp_path, f'{_FACTORIES}\n[[accounts]]\naccount_id = "A"\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        outcome = CliRunner(env={"REDIS_URL": None}).invoke(
            main, ["run", "--config", str(config), "--metrics-port", str(port)]
        )

    assert outcome.exit_code == 4, outcome.output
    assert outcome.output == (
        f"Error: --metrics-host/--metrics-port: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


def test_run_with_a_metrics_port_but_without_prometheus_client_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "reconciliation.metrics", raising=False)
    config = _write_config(tmp_path, f'{_FACTORIES}\n[[accounts]]\naccount_id = "A"\n')

    outcome = CliRunner().invoke(main, ["run", "--check", "--config", str(config), "--metrics-port", "9108"])

    assert outcome.exit_code == 2, outcome.output
    assert outcome.output.startswith("Error: --metrics-port: reconciliation.metrics needs prometheus_client")
    assert outcome.output.rstrip().endswith("pip install 'reconciliation[metrics]'")
    assert outcome.output.strip().count("\n") == 0


# Operator polish (issue 26)


def test_the_demo_story_is_not_interleaved_with_the_run_logs_repeat_of_each_break() -> None:
    outcome = stderr_apart().invoke(main, ["demo", "--quick", "--redis-url", f"redis://127.0.0.1:{_closed_port()}/0"])

    assert outcome.exit_code == 0, outcome.output
    assert "missing_local" in outcome.stdout
    assert "reconciliation.runs" not in outcome.stderr


@pytest.mark.real_redis
def test_ctrl_c_stops_the_demo_promptly(redis_server: RedisServer) -> None:
    demo = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        _command("demo", "--redis-url", _url(redis_server), "--account", _account()),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 20
        while "[fault]" not in demo.stdout.readline():
            assert time.monotonic() < deadline, "the demo never reached its first fault"
        time.sleep(0.3)
        interrupted = time.monotonic()
        demo.send_signal(signal.SIGINT)
        demo.communicate(timeout=15)
        took = time.monotonic() - interrupted
    finally:
        demo.kill()

    assert demo.returncode == 130
    # The demo leaves at most INTERRUPT_GRACE_SECONDS (0.5 s) after the signal; the bound is
    # wider because a loaded 2-CPU machine delays the signal and the exit (1.09 s measured).
    assert took < 3.0, f"the demo took {took:.2f} s to stop"


@pytest.mark.real_redis
def test_run_logs_json_lines_at_the_level_asked(tmp_path: Path, redis_server: RedisServer) -> None:
    account = _account()
    config = _write_config(tmp_path, f'redis_url = "{_url(redis_server)}"\n{_FACTORIES}\n[[accounts]]\naccount_id = "{account}"\n')
    runner = _start(_command("run", "--config", str(config), "--log-format", "json", "--log-level", "info"))
    try:
        _read_until(runner, "Reconciling 1 account(s)")
        runner.send_signal(signal.SIGTERM)
        _, err = runner.communicate(timeout=15)
    finally:
        runner.kill()

    lines = [json.loads(line) for line in err.splitlines()]
    assert {"time", "level", "logger", "message"} <= lines[0].keys()
    assert any(line["level"] == "INFO" and line["message"].startswith("Stopped reconciling") for line in lines)


@pytest.mark.real_redis
def test_run_at_log_level_warning_leaves_out_info(tmp_path: Path, redis_server: RedisServer) -> None:
    account = _account()
    config = _write_config(tmp_path, f'redis_url = "{_url(redis_server)}"\n{_FACTORIES}\n[[accounts]]\naccount_id = "{account}"\n')
    runner = _start(_command("run", "--config", str(config), "--log-level", "warning", "--metrics-port", str(port := _closed_port())))
    try:
        deadline = time.monotonic() + 15
        while _healthz(port)[0] != HTTPStatus.OK:  # ready: its startup ran, SIGTERM is its stop
            assert time.monotonic() < deadline, "the service never became ready"
            time.sleep(0.1)
        runner.send_signal(signal.SIGTERM)
        _, err = runner.communicate(timeout=15)
    finally:
        runner.kill()

    assert runner.returncode == 0
    assert "Reconciling 1 account(s)" not in err


def _healthz(port: int) -> tuple[int, dict[str, typing.Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)
    except (urllib.error.URLError, ConnectionError):
        return 0, {}


@pytest.mark.real_redis
def test_healthz_is_ready_once_the_startup_runs_finished(tmp_path: Path, redis_server: RedisServer) -> None:
    account = _account()
    port = _closed_port()
    config = _write_config(tmp_path, f'redis_url = "{_url(redis_server)}"\n{_FACTORIES}\n[[accounts]]\naccount_id = "{account}"\n')
    runner = _start(_command("run", "--config", str(config), "--metrics-port", str(port)))
    try:
        _read_until(runner, "Reconciling 1 account(s)")
        deadline = time.monotonic() + 15  # a loaded machine may answer a first request late
        while (answer := _healthz(port))[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        runner.send_signal(signal.SIGTERM)
        runner.communicate(timeout=15)
    finally:
        runner.kill()

    status, body = answer
    assert (status, body.get("status"), body.get("accounts")) == (200, "ok", 1), body


def test_healthz_fails_naming_a_stopped_component() -> None:
    from reconciliation._cli.runner import Readiness  # noqa: PLC0415
    from reconciliation._runtime.health import ComponentHealth, ComponentState, ServiceHealth  # noqa: PLC0415

    class Stopped:
        accounts = ("A",)

        def health(self) -> ServiceHealth:
            return ServiceHealth(
                components={
                    "comparator": ComponentHealth("comparator", ComponentState.STOPPED),
                    "scheduler": ComponentHealth("scheduler", ComponentState.RUNNING),
                },
                delivery={},
            )

    readiness = Readiness()
    starting = readiness()
    readiness.runtime, readiness.ready = Stopped(), True  # type: ignore[assignment]

    ok, details = readiness()

    assert starting == (False, {"status": "starting", "detail": "the accounts' startup runs have not all finished"})
    assert (ok, details["status"], details["stopped"]) == (False, "failing", ["comparator"])


def test_an_interrupted_demo_leaves_even_when_stopping_hangs() -> None:
    script = (
        "import time; from rich.console import Console; "
        "from reconciliation._cli.commands.demo import _leave_if_stopping_lingers; "
        "_leave_if_stopping_lingers(Console()); time.sleep(30)"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20, check=False)  # noqa: S603 - this interpreter, fixed arguments

    assert done.returncode == 130
    assert done.stdout.count("Interrupted.") == 1
    assert time.monotonic() - started < 10
