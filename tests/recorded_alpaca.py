"""alpaca-py's real `TradingClient`, its HTTP session answering recorded Alpaca JSON offline.

A requests transport adapter is mounted on the client's own session, so every request
goes through alpaca-py's URL building, headers, error handling and model parsing; only
the network is replaced. The SDK is imported when a client is built.
"""

from __future__ import annotations

import importlib
import json
from typing import Any
from urllib.parse import parse_qsl, urlparse

import requests
import requests.adapters
from adapter_fixtures import recorded

__all__ = ["RecordedAlpaca", "alpaca_client"]


class RecordedAlpaca(requests.adapters.BaseAdapter):
    """Answers `GET /v2/<path>` with `answers[path]`: a JSON value, (status, JSON), or a function of
    the request's query giving either."""

    def __init__(self, answers: dict[str, Any]) -> None:
        super().__init__()
        self.answers = answers
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        path = urlparse(request.url or "").path
        self.requests.append((request.method or "", path, dict(request.headers)))
        found = self.answers.get(path.removeprefix("/v2"), (404, {"code": 40410000, "message": "not found"}))
        if callable(found):
            found = found(dict(parse_qsl(urlparse(request.url or "").query)))
        status, body = found if isinstance(found, tuple) else (200, found)
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        """Nothing to release: no connection was opened."""


def alpaca_client(payloads: dict[str, Any] | None = None, **options: Any) -> tuple[Any, RecordedAlpaca]:
    """A paper `TradingClient` answering the recorded positions and account."""
    payloads = payloads or recorded("alpaca")
    trading = importlib.import_module("alpaca.trading.client")
    client = trading.TradingClient("recorded-key", "recorded-secret", paper=True, **options)
    transport = RecordedAlpaca({"/positions": payloads["positions"], "/account": payloads["account"]})
    client._session.mount("https://", transport)
    return client, transport
