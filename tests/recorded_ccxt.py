"""ccxt exchanges that answer from recorded venue payloads, offline, through ccxt's own parsers.

As ccxt's own static tests do, `exchange.fetch` is replaced: every request ccxt builds
(URL, signature and all) is answered with the recorded JSON for its path, and then
parsed by the exchange's real `parse_market`, `parse_position` and `parse_balance`. The
SDK is imported when an exchange is built, so importing this module needs no ccxt.
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

from adapter_fixtures import FIXTURES, recorded

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
    venue_id: str, routes: dict[str, Answer], *, asynchronous: bool, number: type = Decimal, **config: Any
) -> tuple[Any, RecordedVenue]:
    sdk = importlib.import_module("ccxt.async_support" if asynchronous else "ccxt")
    exchange = getattr(sdk, venue_id)({"apiKey": "recorded-key", "secret": "recorded-secret", **config})
    exchange.number = number
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
    payloads: dict[str, Any] | None = None, *, asynchronous: bool = False, number: type = Decimal
) -> tuple[Any, RecordedVenue]:
    """Binance USDⓈ-M with the recorded markets loaded (`set_markets(parse_market(raw))`)."""
    payloads = payloads or recorded("binanceusdm")
    exchange, venue = _exchange(
        "binanceusdm", binanceusdm_routes(payloads), asynchronous=asynchronous, number=number
    )
    exchange.set_markets([exchange.parse_market(raw) for raw in payloads["exchangeInfo"]["symbols"]])
    return exchange, venue


def okx(
    payloads: dict[str, Any] | None = None, *, asynchronous: bool = False, number: type = Decimal
) -> tuple[Any, RecordedVenue]:
    """OKX with the recorded instruments loaded."""
    payloads = payloads or recorded("okx")
    routes = {
        "/api/v5/account/positions": payloads["positions"],
        "/api/v5/account/balance": payloads["balance"],
        "/api/v5/trade/fills-history": payloads["fills"],
    }
    exchange, venue = _exchange(
        "okx", routes, asynchronous=asynchronous, number=number, password="recorded-passphrase"
    )
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


def bybit(
    payloads: dict[str, Any] | None = None, *, asynchronous: bool = False, number: type = Decimal
) -> tuple[Any, RecordedVenue]:
    """Bybit with its linear and inverse instruments loaded by its own `fetch_markets`."""
    payloads = payloads or recorded("bybit")
    exchange, venue = _exchange(
        "bybit",
        bybit_routes(payloads),
        asynchronous=False,
        number=number,
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
        number=number,
        options={"fetchMarkets": {"types": ["linear", "inverse"]}},
    )
    exchange.set_markets(list(markets.values()))
    return exchange, venue


class RecordedRoutes:
    """Answers ccxt's requests from a venue's directory of recorded answers (tests/fixtures/brokers/<venue>/).

    Its `routes.json` lists, per request (method, URL path and the query or JSON-body
    params it must carry; the route naming the most params wins), the file holding the
    venue's answer, an inline `stub` (a placeholder that is NOT venue data, with its
    `why`), or an `error` (the venue refused). A route may `append` the entries of a
    hand-made file (`handmade_*.json`, README.md says why) to a list in the recorded
    answer. A file's text goes through ccxt's own JSON parser, as an HTTP body would. A
    request without a route fails the test. Every request is recorded: method, path,
    params and the body's action type.
    """

    def __init__(self, venue: str, exchange: Any) -> None:
        self.directory = FIXTURES / venue
        self.routes: list[dict[str, Any]] = json.loads((self.directory / "routes.json").read_text())
        self.exchange = exchange
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.replaced: dict[str, Any] = {}

    def replace(self, file: str, change: Callable[[Any], Any]) -> None:
        """Serve `change(answer)` for the recorded `file` (a test's variant of a recorded answer)."""
        self.replaced[file] = change

    def answer(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        path, params = _request(url, body)
        self.requests.append((method, path, params))
        route = self._route(method, path, params)
        if "error" in route:
            error = getattr(importlib.import_module("ccxt"), route["error"]["class"])
            raise error(route["error"]["message"])
        if "stub" in route:
            return copy.deepcopy(route["stub"])
        answer = self.exchange.parse_json((self.directory / route["file"]).read_text())
        for addition in route.get("append", ()):
            node = answer
            for step in addition["at"].split(".") if addition["at"] else ():
                node = node[int(step)] if isinstance(node, list) else node[step]
            node.extend(self.exchange.parse_json((self.directory / addition["file"]).read_text()))
        change = self.replaced.get(route["file"])
        return answer if change is None else change(answer)

    async def answer_async(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        return self.answer(url, method, headers, body)

    def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        matching = [
            route
            for route in self.routes
            if route["method"] == method
            and path.endswith(route["path"])
            and all(str(params.get(key)) == str(value) for key, value in route.get("params", {}).items())
        ]
        if not matching:
            msg = f"no recorded answer for {method} {path} {params}"
            raise AssertionError(msg)
        return max(matching, key=lambda route: len(route.get("params", {})))

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]


def _request(url: str, body: Any) -> tuple[str, dict[str, Any]]:
    parsed = urlparse(url)
    params: dict[str, Any] = dict(parse_qsl(parsed.query, keep_blank_values=True))
    if body:
        try:
            decoded = json.loads(body)
        except (TypeError, ValueError):
            params.update(parse_qsl(str(body), keep_blank_values=True))
        else:
            if isinstance(decoded, dict):
                params.update(decoded)
                action = decoded.get("action")
                if isinstance(action, dict):
                    params.setdefault("action_type", action.get("type"))
    return parsed.path, params


def recorded_exchange(
    venue: str, *, asynchronous: bool = False, decimal_mode: bool = False, **config: Any
) -> tuple[Any, RecordedRoutes]:
    """ccxt's `venue` answering from its recorded directory; markets not loaded (the adapter loads them).

    `config` replaces the default credentials (an API key and secret the venue never sees). ccxt's
    rate limiter is off: nothing leaves the process, so there is nothing to pace.
    """
    sdk = importlib.import_module("ccxt.async_support" if asynchronous else "ccxt")
    credentials = config or {"apiKey": "recorded-key", "secret": "recorded-secret"}
    exchange = getattr(sdk, venue)({**credentials, "enableRateLimit": False})
    if decimal_mode:
        exchange.number = Decimal
    routes = RecordedRoutes(venue, exchange)
    exchange.fetch = routes.answer_async if asynchronous else routes.answer
    return exchange, routes


def fixture_path(venue: str, file: str) -> Path:
    return FIXTURES / venue / file
