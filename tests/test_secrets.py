"""No credential in any output of `reconciliation run`: logs at DEBUG, Redis, the audit store,
/metrics and the command line.

ccxt (real `fetch`, its HTTP session answering recorded Binance JSON) and alpaca-py (its
session answering recorded Alpaca JSON) sign every request with the credentials set in the
environment; Binance's first positions call fails with a 503, so a run's error quotes the
signed URL. Every byte the run leaves behind is then searched for the credentials and for
the signatures the venue was sent.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlparse

import pytest
from click.testing import CliRunner

pytest.importorskip("ccxt")
pytest.importorskip("alpaca")
pytest.importorskip("prometheus_client")

import requests
import requests.adapters
from adapter_fixtures import recorded
from recorded_alpaca import RecordedAlpaca
from recorded_ccxt import binanceusdm_routes
from redis_server import free_port

from reconciliation._cli.main import main
from reconciliation._cli.runner import load_config

if TYPE_CHECKING:
    from collections.abc import Iterator

    import redis
    from redis_server import RedisServer

CREDENTIALS = {
    "BINANCE_API_KEY": "kEyBinance0dd1t1onalSecretText7d3f",
    "BINANCE_API_SECRET": "sEcretBinance9b8a7c6e5f4d3c2b1a0",
    "ALPACA_API_KEY": "PKSECRET0ALPACA0KEY0ID",
    "ALPACA_SECRET_KEY": "aLpacaSecret0Value0e8d7c6b5a4f3e2d1c0b9a8",
}
ACCOUNTS = ("binance-main", "PA3T8N36NVJK")


class RecordedBinance(requests.adapters.BaseAdapter):
    """Answers ccxt's requests with the recorded JSON for their path; the first positions call
    fails with a 503, as an overloaded venue does. Keeps every signature it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.routes = binanceusdm_routes(recorded("binanceusdm"))
        self.signatures: list[str] = []
        self.failed = False
        self.lock = threading.Lock()

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        url = urlparse(request.url or "")
        query = dict(parse_qsl(url.query))
        response = requests.Response()
        response.url = request.url or ""
        response.request = request
        with self.lock:
            if "signature" in query:
                self.signatures.append(query["signature"])
            failing = url.path == "/fapi/v3/positionRisk" and not self.failed
            self.failed = self.failed or failing
        if failing:
            response.status_code, response.reason = 503, "Service Unavailable"
            response._content = b"Service Unavailable"
            return response
        found = self.routes[url.path]
        response.status_code, response.reason = 200, "OK"
        response._content = json.dumps(found(query) if callable(found) else found).encode()
        response.headers["Content-Type"] = "application/json"
        return response

    def close(self) -> None:
        """No connection was opened."""


@pytest.fixture
def venues(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Binance and Alpaca answering offline through their SDKs' own HTTP code; credentials set."""
    binance = RecordedBinance()
    alpaca = RecordedAlpaca({"/positions": recorded("alpaca")["positions"], "/account": recorded("alpaca")["account"]})

    def session_for(transport: requests.adapters.BaseAdapter) -> Any:
        def make() -> requests.Session:
            session = requests.Session()
            session.mount("https://", transport)
            return session

        return make

    monkeypatch.setattr(sys.modules["ccxt.base.exchange"], "Session", session_for(binance))
    monkeypatch.setattr("alpaca.common.rest.Session", session_for(alpaca))
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return {"binance": binance, "alpaca": alpaca}


@pytest.fixture
def restore_logging() -> Iterator[None]:
    import logging  # noqa: PLC0415 - only this fixture needs it

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def config_file(tmp_path: Path, redis_port: int) -> Path:
    path = tmp_path / "brokers.toml"
    path.write_text(f"""
redis_url = "redis://127.0.0.1:{redis_port}/0"

[defaults]
interval_seconds = 3600
cost_tolerance_pct = "0.01"
audit_store = "{tmp_path / "audit.db"}"

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
""")
    return path


def run_until_reconciled(config: Path, real_redis: redis.Redis, *options: str) -> tuple[str, str]:
    """`reconciliation -v run` until both accounts have two runs (the second on demand); the
    command's output, and /metrics scraped before it stopped."""
    port = free_port()
    scraped: list[str] = []

    def runs() -> list[dict[str, Any]]:
        return [json.loads(fields["payload"]) for _, fields in real_redis.xrange("reconciliation:stream:result")]

    def stop_once_reconciled() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and {p["account_id"] for p in runs()} < set(ACCOUNTS):
            time.sleep(0.05)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            scraped.append(answer.read().decode())
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=stop_once_reconciled, daemon=True)
    watcher.start()
    outcome = CliRunner(env={"REDIS_URL": None}).invoke(
        main, ["-v", "run", "--config", str(config), "--metrics-port", str(port), *options]
    )
    watcher.join(10)
    assert outcome.exit_code == 0, outcome.output
    return outcome.output, scraped[0]


def everything_in_redis(client: redis.Redis) -> str:
    found = []
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == "stream":
            found.extend(json.dumps(fields) for _, fields in client.xrange(key))
        elif kind == "string":
            found.append(str(client.get(key)))
        elif kind == "hash":
            found.append(json.dumps(client.hgetall(key)))
        elif kind in {"list", "set", "zset"}:
            found.append(str(client.dump(key)))
        found.append(str(key))
    return "\n".join(found)


def everything_in_the_audit_store(tmp_path: Path) -> str:
    return "\n".join(
        path.read_bytes().decode("utf-8", errors="replace") for path in sorted(tmp_path.glob("audit.db*"))
    )


@pytest.mark.real_redis
def test_no_credential_or_signature_in_any_output_of_a_run(
    tmp_path: Path,
    venues: dict[str, Any],
    redis_server: RedisServer,
    real_redis: redis.Redis,
    restore_logging: None,
) -> None:
    output, metrics = run_until_reconciled(config_file(tmp_path, redis_server.port), real_redis)

    outputs = {
        "the command's output and its DEBUG log": output,
        "Redis": everything_in_redis(real_redis),
        "the audit store": everything_in_the_audit_store(tmp_path),
        "/metrics": metrics,
    }
    secrets = [*CREDENTIALS.values(), *venues["binance"].signatures]
    assert len(venues["binance"].signatures) >= 2
    assert venues["alpaca"].requests[0][2]["APCA-API-KEY-ID"] == CREDENTIALS["ALPACA_API_KEY"]
    assert "positionRisk?***" in outputs["Redis"]
    assert "positionRisk?***" in outputs["the audit store"]
    assert " DEBUG " in output
    for where, text in outputs.items():
        leaked = [secret for secret in secrets if secret in text]
        assert not leaked, f"{where} holds {len(leaked)} secret(s)"
        assert "signature=" not in text, where


@pytest.mark.real_redis
def test_debug_sdk_shows_the_sdks_debug_lines_and_warns_that_they_hold_keys(
    tmp_path: Path,
    venues: dict[str, Any],
    redis_server: RedisServer,
    real_redis: redis.Redis,
    restore_logging: None,
) -> None:
    output, _ = run_until_reconciled(config_file(tmp_path, redis_server.port), real_redis, "--debug-sdk")

    assert "--debug-sdk: the SDKs log at DEBUG" in output
    assert CREDENTIALS["BINANCE_API_KEY"] in output


def test_an_upper_case_key_in_place_of_a_variable_name_is_refused_without_echoing_it(tmp_path: Path) -> None:
    config = tmp_path / "alpaca.toml"
    config.write_text(
        '[[accounts]]\naccount_id = "A"\nportfolio = "reconciliation.paper:paper_portfolio"\n'
        '[accounts.broker_adapter]\nadapter = "alpaca"\nvenue = "paper"\n'
        'credentials = { api_key = "PKTE5T1D0000EXAMPLE0", secret_key = "ALPACA_SECRET_KEY" }\n'
    )

    outcome = CliRunner().invoke(main, ["run", "--check", "--config", str(config)])

    assert outcome.exit_code == 2, outcome.output
    assert "accounts[0].broker_adapter.credentials.api_key: this looks like a key itself" in outcome.output
    assert "PKTE5T1D0000EXAMPLE0" not in outcome.output


def test_a_credential_variable_name_is_never_echoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    passphrase = "CORRECT_HORSE_BATTERY_STAPLE"
    config = tmp_path / "okx.toml"
    config.write_text(
        'redis_url = "redis://127.0.0.1:1/0"\n'
        '[[accounts]]\naccount_id = "A"\nportfolio = "reconciliation.paper:paper_portfolio"\n'
        '[accounts.broker_adapter]\nadapter = "ccxt"\nvenue = "okx"\ncurrency = "USDT"\n'
        f'credentials = {{ apiKey = "OKX_KEY", secret = "OKX_SECRET", password = "{passphrase}" }}\n'
    )
    monkeypatch.setenv("OKX_KEY", "k")
    monkeypatch.setenv("OKX_SECRET", "s")
    monkeypatch.delenv(passphrase, raising=False)

    outcome = CliRunner(env={"REDIS_URL": None}).invoke(main, ["-v", "run", "--config", str(config)])

    assert outcome.exit_code == 4, outcome.output
    assert "credentials.password: the environment variable it names is not set" in outcome.output
    assert passphrase not in outcome.output
    assert [spec.broker for spec in load_config(config).accounts] == [
        "ccxt okx (credentials apiKey, secret, password from the environment)"
    ]


def test_a_credential_in_the_ccxt_options_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "binance.toml"
    config.write_text(
        '[[accounts]]\naccount_id = "A"\nportfolio = "reconciliation.paper:paper_portfolio"\n'
        '[accounts.broker_adapter]\nadapter = "ccxt"\nvenue = "binanceusdm"\ncurrency = "USDT"\n'
        'credentials = { apiKey = "BINANCE_API_KEY", secret = "BINANCE_API_SECRET" }\n'
        'options = { secret = "hunter2hunter2" }\n'
    )

    outcome = CliRunner().invoke(main, ["run", "--check", "--config", str(config)])

    assert outcome.exit_code == 2, outcome.output
    assert "accounts[0].broker_adapter.options.secret: a credential, never an option" in outcome.output
    assert "hunter2hunter2" not in outcome.output
