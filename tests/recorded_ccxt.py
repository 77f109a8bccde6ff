"""ccxt exchanges that answer from recorded venue payloads, offline, through ccxt's own parsers.

As ccxt's own static tests do, `exchange.fetch` is replaced: every request ccxt builds
(URL, signature and all) is answered with the recorded JSON for its path, and then
parsed by the exchange's real `parse_market`, `parse_position` and `parse_balance`. The
SDK is imported when an exchange is built, so importing this module needs no ccxt.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlparse

from adapter_fixtures import recorded

Answer = Any | Callable[[dict[str, str]], Any]


class RecordedVenue:
    """Answers ccxt's HTTP requests by path; a request it has no answer for fails the test."""

    def __init__(self, routes: dict[str, Answer]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def answer(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        parsed = urlparse(url)
        query = dict(parse_qsl(parsed.query))
        self.requests.append((method, parsed.path, query))
        if parsed.path not in self.routes:
            msg = f"no recorded answer for {method} {parsed.path} {query}"
            raise AssertionError(msg)
        found = self.routes[parsed.path]
        return copy.deepcopy(found(query) if callable(found) else found)

    async def answer_async(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        return self.answer(url, method, headers, body)

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]


def _exchange(
    venue_id: str, routes: dict[str, Answer], *, asynchronous: bool, **config: Any
) -> tuple[Any, RecordedVenue]:
    sdk = importlib.import_module("ccxt.async_support" if asynchronous else "ccxt")
    exchange = getattr(sdk, venue_id)({"apiKey": "recorded-key", "secret": "recorded-secret", **config})
    exchange.number = Decimal
    venue = RecordedVenue(routes)
    exchange.fetch = venue.answer_async if asynchronous else venue.answer
    return exchange, venue


def binanceusdm_routes(payloads: dict[str, Any]) -> dict[str, Answer]:
    extra = recorded("binanceusdm_more")
    return {
        "/fapi/v1/exchangeInfo": payloads["exchangeInfo"],
        "/fapi/v3/positionRisk": payloads["positionRisk_v3"],
        "/fapi/v3/account": payloads["account_v3"],
        "/fapi/v1/leverageBracket": extra["leverageBracket"],
        "/sapi/v1/capital/config/getall": extra["capitalConfigGetall"],
        "/sapi/v1/margin/allPairs": extra["marginAllPairs"],
    }


def binanceusdm(
    payloads: dict[str, Any] | None = None, *, asynchronous: bool = False
) -> tuple[Any, RecordedVenue]:
    """Binance USDⓈ-M with the recorded markets loaded (`set_markets(parse_market(raw))`)."""
    payloads = payloads or recorded("binanceusdm")
    exchange, venue = _exchange("binanceusdm", binanceusdm_routes(payloads), asynchronous=asynchronous)
    exchange.set_markets([exchange.parse_market(raw) for raw in payloads["exchangeInfo"]["symbols"]])
    return exchange, venue


def okx(payloads: dict[str, Any] | None = None, *, asynchronous: bool = False) -> tuple[Any, RecordedVenue]:
    """OKX with the recorded instruments loaded."""
    payloads = payloads or recorded("okx")
    routes = {
        "/api/v5/account/positions": payloads["positions"],
        "/api/v5/account/balance": payloads["balance"],
    }
    exchange, venue = _exchange("okx", routes, asynchronous=asynchronous, password="recorded-passphrase")
    exchange.set_markets([exchange.parse_market(raw) for raw in payloads["instruments"]])
    return exchange, venue


def bybit_routes(payloads: dict[str, Any]) -> dict[str, Answer]:
    def instruments(query: dict[str, str]) -> Any:
        if query.get("status") == "PreLaunch":
            return payloads["positions_empty"]
        return payloads[f"instruments_{query['category']}"]

    def positions(query: dict[str, str]) -> Any:
        if (query.get("category"), query.get("settleCoin")) == ("linear", "USDT"):
            return payloads["positions_linear_usdt"]
        if query.get("category") == "inverse":
            return payloads["positions_inverse"]
        return payloads["positions_empty"]

    return {
        "/v5/market/instruments-info": instruments,
        "/v5/position/list": positions,
        "/v5/account/wallet-balance": payloads["wallet_balance"],
        "/v5/user/query-api": payloads["query_api"],
        "/v5/account/info": payloads["account_info"],
    }


def bybit(payloads: dict[str, Any] | None = None, *, asynchronous: bool = False) -> tuple[Any, RecordedVenue]:
    """Bybit with its linear and inverse instruments loaded by its own `fetch_markets`."""
    payloads = payloads or recorded("bybit")
    exchange, venue = _exchange(
        "bybit",
        bybit_routes(payloads),
        asynchronous=False,
        options={"fetchMarkets": {"types": ["linear", "inverse"]}},
    )
    exchange.set_markets(exchange.fetch_markets())
    if not asynchronous:
        return exchange, venue
    markets = exchange.markets
    exchange, venue = _exchange(
        "bybit",
        bybit_routes(payloads),
        asynchronous=True,
        options={"fetchMarkets": {"types": ["linear", "inverse"]}},
    )
    exchange.set_markets(list(markets.values()))
    return exchange, venue
