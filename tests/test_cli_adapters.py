"""`reconciliation run` with `[accounts.broker_adapter]`: real brokers from the TOML file alone.

The SDKs are fed recorded payloads: ccxt's `fetch` answers the recorded Binance JSON,
alpaca-py's HTTP session the recorded Alpaca JSON, and ib_async connects to a fake
TWS on localhost that answers the recorded wire messages.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import signal
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import fakeredis
import pytest
from click.testing import CliRunner

pytest.importorskip("ccxt")
pytest.importorskip("alpaca")
pytest.importorskip("ib_async")

import ccxt
import requests
from adapter_fixtures import recorded
from fake_tws import FakeTws
from recorded_alpaca import RecordedAlpaca
from recorded_ccxt import RecordedVenue, binanceusdm_routes

from reconciliation._cli.main import main
from reconciliation._cli.runner import ADAPTERS, ConfigError, StartError, build_runtime, load_config
from reconciliation.adapters._common import MissingCredentialError
from reconciliation.adapters.alpaca import AlpacaBroker
from reconciliation.adapters.ccxt import CcxtBroker
from reconciliation.adapters.ib import IBBroker, close_connections

if TYPE_CHECKING:
    import redis
    from redis_server import RedisServer

CREDENTIALS = {
    "BINANCE_API_KEY": "recorded-binance-key",
    "BINANCE_API_SECRET": "recorded-binance-secret",
    "ALPACA_API_KEY": "recorded-alpaca-key",
    "ALPACA_SECRET_KEY": "recorded-alpaca-secret",
}
ACCOUNTS = ("binance-main", "PA3T8N36NVJK", "DU7654321")


def three_brokers(port: int) -> str:
    """Binance, Alpaca and IB accounts, each reconciled against the book matching its recording."""
    return f"""
[defaults]
interval_seconds = 3600
cost_tolerance_pct = "0.01"

[[accounts]]
account_id = "binance-main"
portfolio = "recorded_books:binance_book"
[accounts.broker_adapter]
adapter = "ccxt"
venue = "binanceusdm"
currency = "USDT"
credentials = {{ apiKey = "BINANCE_API_KEY", secret = "BINANCE_API_SECRET" }}

[[accounts]]
account_id = "PA3T8N36NVJK"
portfolio = "recorded_books:alpaca_book"
[accounts.broker_adapter]
adapter = "alpaca"
venue = "paper"
credentials = {{ api_key = "ALPACA_API_KEY", secret_key = "ALPACA_SECRET_KEY" }}

[[accounts]]
account_id = "DU7654321"
portfolio = "recorded_books:ib_book"
[accounts.broker_adapter]
adapter = "ib"
host = "127.0.0.1"
port = {port}
client_id = 17
currency = "USD"
"""


@pytest.fixture
def tws() -> Iterator[FakeTws]:
    """A fake TWS; the IB connections the runner opens to it are closed after the test."""
    server = FakeTws(recorded("ib_wire"))
    server.start()
    yield server
    close_connections()
    server.stop()


@pytest.fixture
def recorded_venues(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """ccxt's Binance and alpaca-py's HTTP answer the recordings; the credentials are set."""
    binance = RecordedVenue(binanceusdm_routes(recorded("binanceusdm")))
    monkeypatch.setattr(ccxt.binanceusdm, "fetch", lambda _self, url, *args: binance.answer(url, *args))
    alpaca = RecordedAlpaca(
        {"/positions": recorded("alpaca")["positions"], "/account": recorded("alpaca")["account"]}
    )

    def recorded_session() -> requests.Session:
        session = requests.Session()
        session.mount("https://", alpaca)
        return session

    monkeypatch.setattr("alpaca.common.rest.Session", recorded_session)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return {"binance": binance, "alpaca": alpaca}


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "brokers.toml"
    path.write_text(body)
    return path


def test_the_three_brokers_pass_the_check(tmp_path: Path, tws: FakeTws) -> None:
    outcome = CliRunner().invoke(
        main, ["run", "--check", "--config", str(write(tmp_path, three_brokers(tws.port)))]
    )

    assert outcome.exit_code == 0, outcome.output
    assert "3 account(s): binance-main, PA3T8N36NVJK, DU7654321" in outcome.output


def test_each_broker_is_built_from_the_file_alone(
    tmp_path: Path, tws: FakeTws, recorded_venues: dict[str, Any]
) -> None:
    config = load_config(write(tmp_path, three_brokers(tws.port)))

    runtime = build_runtime(config, fakeredis.FakeRedis())

    assert [type(account.broker) for account in runtime.accounts.values()] == [CcxtBroker, AlpacaBroker, IBBroker]
    assert [spec.broker for spec in config.accounts] == [
        "ccxt binanceusdm (credentials apiKey, secret from the environment)",
        "alpaca paper (credentials api_key, secret_key from the environment)",
        f"ib 127.0.0.1:{tws.port} client 17",
    ]


def test_the_three_recorded_accounts_reconcile_clean_when_built_from_the_file(
    tmp_path: Path, tws: FakeTws, recorded_venues: dict[str, Any]
) -> None:
    runtime = build_runtime(load_config(write(tmp_path, three_brokers(tws.port))), fakeredis.FakeRedis())

    async def startup_runs() -> list[Any]:
        try:
            return list((await runtime.start()).values())
        finally:
            await runtime.stop()

    results = asyncio.run(startup_runs())

    assert [(r.account_id, r.error, r.discrepancies) for r in results] == [(a, None, ()) for a in ACCOUNTS]
    assert "/fapi/v3/positionRisk" in recorded_venues["binance"].paths()
    assert recorded_venues["alpaca"].requests[0][2]["APCA-API-KEY-ID"] == "recorded-alpaca-key"


@pytest.mark.real_redis
def test_reconciliation_run_reconciles_binance_alpaca_and_ib_from_toml_alone(
    tmp_path: Path,
    tws: FakeTws,
    recorded_venues: dict[str, Any],
    redis_server: RedisServer,
    real_redis: redis.Redis,
    restore_logging: None,
) -> None:
    config = write(
        tmp_path, f'redis_url = "redis://127.0.0.1:{redis_server.port}/0"\n' + three_brokers(tws.port)
    )
    published: list[dict[str, Any]] = []

    def stop_once_every_account_ran() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            entries = real_redis.xrange("reconciliation:stream:result")
            published[:] = [json.loads(fields["payload"]) for _, fields in entries]
            if {p["account_id"] for p in published} >= set(ACCOUNTS):
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=stop_once_every_account_ran, daemon=True)
    watcher.start()
    outcome = CliRunner(env={"REDIS_URL": None}).invoke(main, ["run", "--config", str(config)])
    watcher.join(5)

    assert outcome.exit_code == 0, outcome.output
    assert {(p["account_id"], p["status"], p["is_clean"]) for p in published} == {
        (a, "ok", True) for a in ACCOUNTS
    }
    assert not [p for p in published if p["account_id"] not in ACCOUNTS]


def test_a_credential_missing_from_the_environment_fails_the_start_naming_the_credential(
    tmp_path: Path, tws: FakeTws, recorded_venues: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BINANCE_API_SECRET")
    config = load_config(write(tmp_path, three_brokers(tws.port)))

    with pytest.raises(
        StartError, match=r"account binance-main: the broker factory .*credentials.secret: the environment variable"
    ) as failed:
        build_runtime(config, fakeredis.FakeRedis())

    assert isinstance(failed.value.__cause__, MissingCredentialError)
    assert "recorded-binance-key" not in str(failed.value)
    assert "BINANCE_API_SECRET" not in str(failed.value)


BINANCE = """
[[accounts]]
account_id = "A"
portfolio = "reconciliation.paper:paper_portfolio"
[accounts.broker_adapter]
"""


@pytest.mark.parametrize(
    ("table", "named", "problem"),
    [
        ('adapter = "ftx"\n', "accounts[0].broker_adapter.adapter", "expected one of 'ccxt', 'alpaca', 'ib'"),
        (
            'adapter = "ccxt"\nvenue = "binanceusd"\ncurrency = "USDT"\n',
            "accounts[0].broker_adapter.venue",
            "did you mean 'binanceusdm'?",
        ),
        (
            (
                'adapter = "ccxt"\nvenue = "binanceusdm"\ncurrency = "USDT"\n'
                'credentials = { apiKey = "BINANCE_API_KEY", secret = "s3cr3tValueFromTheVenue" }\n'
            ),
            "accounts[0].broker_adapter.credentials.secret",
            "expected the NAME of an environment variable",
        ),
        (
            'adapter = "ccxt"\nvenue = "binanceusdm"\ncurrency = "USDT"\ncredentials = { apiKey = "K", secret = "S", apikey = "X" }\n',
            "accounts[0].broker_adapter.credentials.apikey",
            "did you mean 'apiKey'?",
        ),
        (
            'adapter = "ccxt"\nvenue = "okx"\ncurrency = "USDT"\ncredentials = { apiKey = "K", secret = "S" }\n',
            "accounts[0].broker_adapter.credentials.password",
            "missing: name the environment variable",
        ),
        (
            'adapter = "ccxt"\nvenue = "binanceusdm"\ncredentials = { apiKey = "K", secret = "S" }\n',
            "accounts[0].broker_adapter.currency",
            "expected a non-empty string",
        ),
        (
            'adapter = "alpaca"\nvenue = "demo"\ncredentials = { api_key = "K", secret_key = "S" }\n',
            "accounts[0].broker_adapter.venue",
            "expected 'paper' or 'live'",
        ),
        ('adapter = "ib"\nclient_id = 1\n', "accounts[0].broker_adapter.port", "expected a whole number"),
        (
            'adapter = "ccxt"\nvenue = "binanceusdm"\ncurrency = "USDT"\ncredentials = { apiKey = 5, secret = "S" }\n',
            "accounts[0].broker_adapter.credentials.apiKey",
            "expected a non-empty string, got an integer 5",
        ),
        (
            'adapter = "ib"\nport = 4002\nclient_id = 1\nclientId = 2\n',
            "accounts[0].broker_adapter.clientId",
            "unknown key",
        ),
    ],
)
def test_a_bad_broker_adapter_table_gives_one_line_naming_the_key(
    tmp_path: Path, table: str, named: str, problem: str
) -> None:
    outcome = CliRunner().invoke(main, ["run", "--check", "--config", str(write(tmp_path, BINANCE + table))])

    assert outcome.exit_code == 2, outcome.output
    assert outcome.output.startswith(f"Error: {tmp_path / 'brokers.toml'}: {named}: "), outcome.output
    assert problem in outcome.output


def test_every_mistake_in_a_broker_adapter_table_is_reported_at_once(tmp_path: Path) -> None:
    body = BINANCE + 'adapter = "ib"\nhost = 7\nport = "4002"\ntimeout_seconds = "ten"\n'

    with pytest.raises(ConfigError) as refused:
        load_config(write(tmp_path, body))

    assert refused.value.problems == (
        "accounts[0].broker_adapter.host: expected a non-empty string, got an integer 7",
        "accounts[0].broker_adapter.port: expected a whole number, got a string '4002'",
        "accounts[0].broker_adapter.client_id: missing: expected a whole number",
        "accounts[0].broker_adapter.timeout_seconds: expected a number of seconds, got a string 'ten'",
    )


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_an_adapter_is_its_module_with_settings_and_an_extra_of_its_name(name: str) -> None:
    adapter = importlib.import_module(ADAPTERS[name])
    extras = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    importlib.import_module(adapter.SDK)

    assert attrs.has(adapter.Settings)
    assert callable(adapter.Settings.broker)
    assert name in extras["optional-dependencies"]


def test_a_broker_factory_and_a_broker_adapter_in_one_account_are_refused(tmp_path: Path) -> None:
    body = BINANCE.replace(
        "[accounts.broker_adapter]", 'broker = "reconciliation.paper:paper_broker"\n[accounts.broker_adapter]'
    )
    body += 'adapter = "ib"\nport = 4002\nclient_id = 1\n'

    outcome = CliRunner().invoke(main, ["run", "--check", "--config", str(write(tmp_path, body))])

    assert outcome.exit_code == 2, outcome.output
    assert (
        "accounts[0].broker_adapter: give either broker (a factory) or broker_adapter, not both"
        in outcome.output
    )


def test_an_accounts_broker_adapter_replaces_the_default_broker_factory(tmp_path: Path) -> None:
    body = (
        '[defaults]\nbroker = "reconciliation.paper:paper_broker"\n'
        + BINANCE
        + 'adapter = "ib"\nport = 4002\nclient_id = 1\n'
    )

    (spec,) = load_config(write(tmp_path, body)).accounts

    assert spec.broker == "ib 127.0.0.1:4002 client 1"


def test_a_missing_sdk_is_a_config_error_saying_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = __import__("importlib").import_module

    def without_alpaca(name: str, *args: Any) -> Any:
        if name.startswith("alpaca"):
            msg = f"No module named {name!r}"
            raise ModuleNotFoundError(msg)
        return real_import(name, *args)

    monkeypatch.setattr("reconciliation._cli.runner.importlib.import_module", without_alpaca)
    body = (
        BINANCE + 'adapter = "alpaca"\nvenue = "paper"\ncredentials = { api_key = "K", secret_key = "S" }\n'
    )

    outcome = CliRunner().invoke(main, ["run", "--check", "--config", str(write(tmp_path, body))])

    assert outcome.exit_code == 2, outcome.output
    assert "pip install 'reconciliation[alpaca]'" in outcome.output


def test_the_documented_binance_alpaca_and_ib_example_is_valid(tmp_path: Path) -> None:
    documented = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    section = documented.split("### A real broker from the file alone", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    runnable = example.replace("mypackage.books:portfolio_for", "reconciliation.paper:paper_portfolio")

    outcome = CliRunner().invoke(main, ["run", "--check", "--config", str(write(tmp_path, runnable))])

    assert outcome.exit_code == 0, outcome.output
    assert "3 account(s): binance-main, PA3T8N36NVJK, DU7654321" in outcome.output


def test_an_account_in_btc_without_a_tolerance_in_btc_fails_the_start_naming_the_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DERIBIT_KEY", "recorded-key")
    monkeypatch.setenv("DERIBIT_SECRET", "recorded-secret")
    config = load_config(
        write(
            tmp_path,
            """
[[accounts]]
account_id = "deribit-main"
portfolio = "recorded_books:binance_book"
[accounts.broker_adapter]
adapter = "ccxt"
venue = "deribit"
currency = "BTC"
credentials = { apiKey = "DERIBIT_KEY", secret = "DERIBIT_SECRET" }
""",
        )
    )

    with pytest.raises(
        StartError, match=r"^account deribit-main is reconciled in BTC .* cash_tolerance_by_currency\.BTC$"
    ):
        build_runtime(config, fakeredis.FakeRedis())


HYPERLIQUID = """
[[accounts]]
account_id = "hl-main"
portfolio = "recorded_books:binance_book"
[accounts.broker_adapter]
adapter = "ccxt"
venue = "hyperliquid"
currency = "USDC"
"""


def test_hyperliquid_is_configured_with_its_wallet_address_alone(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, HYPERLIQUID + 'credentials = { walletAddress = "HL_WALLET" }\n'))

    assert config.accounts[0].broker == "ccxt hyperliquid (credentials walletAddress from the environment)"


def test_a_hyperliquid_private_key_is_refused_in_the_file(tmp_path: Path) -> None:
    body = HYPERLIQUID + 'credentials = { walletAddress = "HL_WALLET", privateKey = "HL_KEY" }\n'

    with pytest.raises(ConfigError, match=r"credentials\.privateKey: hyperliquid reads with walletAddress alone"):
        load_config(write(tmp_path, body))
