"""`[accounts.broker_adapter]`: a broker from the TOML file alone, over ccxt, alpaca-py or ib_async.

The table names the adapter, its venue and the environment variables that hold the
credentials, never the credentials themselves:

    [accounts.broker_adapter]
    adapter = "ccxt"
    venue = "binanceusdm"
    currency = "USDT"
    credentials = { apiKey = "BINANCE_API_KEY", secret = "BINANCE_API_SECRET" }

`adapter_factory` checks the table when the file is read (the SDK is imported then, so
a missing extra or an unknown venue is a configuration error) and returns the factory
that builds the broker when the service starts, reading the environment only then.
docs/configuration.md documents every key.
"""

from __future__ import annotations

import atexit
import difflib
import importlib
import logging
import os
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, NoReturn

__all__ = ["ADAPTERS", "AdapterConfigError", "MissingCredentialError", "adapter_factory", "close_connections"]

logger = logging.getLogger(__name__)

Factory = Callable[[str], Any]

ADAPTERS = ("ccxt", "alpaca", "ib")

_ENVIRONMENT_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
"""An environment variable's name, in capitals: a pasted key or secret never looks like one."""

_KEYS = {
    "ccxt": ("adapter", "venue", "currency", "credentials", "options", "sandbox", "units"),
    "alpaca": ("adapter", "venue", "credentials"),
    "ib": ("adapter", "host", "port", "client_id", "currency", "timeout_seconds"),
}
_ALPACA_VENUES = ("paper", "live")
_ALPACA_CREDENTIALS = ("api_key", "secret_key")
_EXTRAS = {"ccxt": "ccxt", "alpaca": "alpaca", "ib": "ib"}
_SDKS = {"ccxt": "ccxt", "alpaca": "alpaca.trading.client", "ib": "ib_async"}

_connections: list[Any] = []
"""The IB connections the factories opened, closed at exit (or by `close_connections`)."""


class AdapterConfigError(ValueError):
    """A `broker_adapter` table is unusable: `key` is the path of the key, `problem` what is wrong."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class MissingCredentialError(LookupError):
    """An environment variable a `broker_adapter` names is not set when its service starts."""


def adapter_factory(path: str, table: object) -> tuple[str, Factory]:
    """Check the `broker_adapter` table at `path`; a description of it and its broker factory.

    Raises:
        AdapterConfigError: naming the key and what is wrong with it.
    """
    if not isinstance(table, Mapping):
        _fail(
            path,
            f'expected a table such as {{ adapter = "ccxt", venue = "binanceusdm", ... }}, got {table!r}',
        )
    adapter = table.get("adapter")
    if adapter not in ADAPTERS:
        _fail(f"{path}.adapter", f"expected one of {', '.join(map(repr, ADAPTERS))}, got {adapter!r}")
    _check_keys(table, _KEYS[adapter], path)
    _import_sdk(adapter, path)
    if adapter == "ccxt":
        return _ccxt(path, table)
    if adapter == "alpaca":
        return _alpaca(path, table)
    return _ib(path, table)


def _ccxt(path: str, table: Mapping[str, Any]) -> tuple[str, Factory]:
    ccxt = importlib.import_module("ccxt")
    venue = _text(table, "venue", path)
    if venue not in ccxt.exchanges:
        close = difflib.get_close_matches(venue, ccxt.exchanges, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        _fail(f"{path}.venue", f"{venue!r} is not a ccxt exchange id{hint}")
    currency = _text(table, "currency", path)
    needed = getattr(ccxt, venue)().requiredCredentials
    credentials = _credentials(
        table, path, tuple(needed), required=tuple(field for field, required in needed.items() if required)
    )
    options = table.get("options", {})
    if not isinstance(options, Mapping):
        _fail(f"{path}.options", f"expected a table of ccxt options, got {options!r}")
    sandbox = table.get("sandbox", False)
    if not isinstance(sandbox, bool):
        _fail(f"{path}.sandbox", f"expected true or false, got {sandbox!r}")
    units = table.get("units", "base")
    if units not in {"base", "contracts"}:
        _fail(f"{path}.units", f"expected 'base' or 'contracts', got {units!r}")

    def build(account_id: str) -> Any:
        from reconciliation.adapters.ccxt import CcxtBroker  # noqa: PLC0415 - needs the optional SDK

        secrets = _read_environment(credentials, f"{path}.credentials")
        exchange = getattr(ccxt, venue)({**options, **secrets})
        exchange.number = Decimal
        if sandbox:
            exchange.set_sandbox_mode(True)
        return CcxtBroker(exchange, account_id, currency=currency, units=units)

    return f"ccxt {venue}{' sandbox' if sandbox else ''} ({_described(credentials)})", build


def _alpaca(path: str, table: Mapping[str, Any]) -> tuple[str, Factory]:
    venue = _text(table, "venue", path)
    if venue not in _ALPACA_VENUES:
        _fail(f"{path}.venue", f"expected 'paper' or 'live', got {venue!r}")
    credentials = _credentials(table, path, _ALPACA_CREDENTIALS, required=_ALPACA_CREDENTIALS)

    def build(account_id: str) -> Any:
        from reconciliation.adapters.alpaca import AlpacaBroker  # noqa: PLC0415 - needs the optional SDK

        secrets = _read_environment(credentials, f"{path}.credentials")
        client = importlib.import_module("alpaca.trading.client").TradingClient(
            secrets["api_key"], secrets["secret_key"], paper=venue == "paper"
        )
        return AlpacaBroker(client, account_id)

    return f"alpaca {venue} ({_described(credentials)})", build


def _ib(path: str, table: Mapping[str, Any]) -> tuple[str, Factory]:
    host = table.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        _fail(f"{path}.host", f"expected a host name or address, got {host!r}")
    port = _whole(table, "port", path)
    client_id = _whole(table, "client_id", path)
    currency = table.get("currency", "USD")
    if not isinstance(currency, str) or not currency:
        _fail(f"{path}.currency", f"expected the account's base currency such as 'USD', got {currency!r}")
    timeout = table.get("timeout_seconds", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < float("inf"):
        _fail(f"{path}.timeout_seconds", f"expected a number of seconds above 0, got {timeout!r}")

    def build(account_id: str) -> Any:
        from reconciliation.adapters.ib import IBBroker, IBThread  # noqa: PLC0415 - needs the optional SDK

        connection = IBThread(host, port, client_id, account=account_id, timeout=float(timeout))
        ib = connection.start()
        if not _connections:
            atexit.register(close_connections)
        _connections.append(connection)
        return IBBroker(ib, account_id, currency=currency, loop=connection.loop)

    return f"ib {host}:{port} client {client_id}", build


def close_connections() -> None:
    """Disconnect every IB connection the factories opened, and stop its thread."""
    while _connections:
        _connections.pop().stop()


def _import_sdk(adapter: str, path: str) -> None:
    try:
        importlib.import_module(_SDKS[adapter])
    except ImportError as exc:
        _fail(
            f"{path}.adapter",
            f"the {adapter} adapter needs its SDK: pip install 'reconciliation[{_EXTRAS[adapter]}]' ({exc})",
        )


def _credentials(
    table: Mapping[str, Any], path: str, known: tuple[str, ...], *, required: tuple[str, ...]
) -> dict[str, str]:
    """The `credentials` table: each SDK credential field to the environment variable holding it."""
    where = f"{path}.credentials"
    credentials = table.get("credentials", {})
    if not isinstance(credentials, Mapping):
        _fail(
            where,
            'expected a table of field = "ENVIRONMENT_VARIABLE", such as { apiKey = "BINANCE_API_KEY" }',
        )
    _check_keys(credentials, known, where)
    for field in required:
        if field not in credentials:
            _fail(f"{where}.{field}", "missing: name the environment variable that holds it")
    for field, name in credentials.items():
        if not isinstance(name, str) or not _ENVIRONMENT_NAME.match(name):
            _fail(
                f"{where}.{field}",
                "expected the NAME of an environment variable (capitals, digits and _), never the "
                "credential itself",
            )
    return dict(credentials)


def _read_environment(credentials: Mapping[str, str], where: str) -> dict[str, str]:
    """Each credential field's value, from the environment.

    Raises:
        MissingCredentialError: naming the variable (never a value).
    """
    secrets = {}
    for field, name in credentials.items():
        value = os.environ.get(name)
        if not value:
            msg = f"the environment variable {name} ({where}.{field}) is not set"
            raise MissingCredentialError(msg)
        secrets[field] = value
    return secrets


def _described(credentials: Mapping[str, str]) -> str:
    return f"credentials from {', '.join(credentials.values())}" if credentials else "no credentials"


def _text(table: Mapping[str, Any], key: str, path: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        _fail(f"{path}.{key}", f"expected a non-empty string, got {value!r}")
    return value


def _whole(table: Mapping[str, Any], key: str, path: str) -> int:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        _fail(f"{path}.{key}", f"expected a whole number, got {value!r}")
    return value


def _check_keys(table: Mapping[str, Any], known: tuple[str, ...], path: str) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(known)}"
            _fail(f"{path}.{key}", f"unknown key{hint}")


def _fail(key: str, problem: str) -> NoReturn:
    raise AdapterConfigError(key, problem)
