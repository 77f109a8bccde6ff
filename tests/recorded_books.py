"""The engine's books that match the recorded broker accounts: portfolio factories for TOML files."""

from __future__ import annotations

from adapter_fixtures import Book

from reconciliation import AssetType, Position

__all__ = ["alpaca_book", "binance_book", "ib_book"]


def binance_book(account_id: str) -> Book:
    """tests/fixtures/brokers/binanceusdm.json, booked in base units."""
    return Book(
        account_id,
        [
            Position("BTC/USDT:USDT", "-0.01", "67012.3", AssetType.SWAP),
            Position("ETH/USDT:USDT", "0.125", "3120.45", AssetType.SWAP),
            Position("SOL/USDT:USDT", "3", "142.1", AssetType.SWAP),
        ],
        cash="10011.99567890",
        total_equity="10026.01142890",
    )


def alpaca_book(account_id: str) -> Book:
    """tests/fixtures/brokers/alpaca.json."""
    return Book(
        account_id,
        [
            Position("AAPL", "10", "187.12"),
            Position("SLM", "-2478", "8.36"),
            Position("TSLA", "0.523419", "240.1"),
            Position("BTC/USD", "0.0421", "97000.5", AssetType.CRYPTO),
            Position("AAPL260116C00190000", "2", "3.15", AssetType.OPTION),
        ],
        cash="114005.4860481",
        total_equity="98783.1607981",
    )


def ib_book(account_id: str) -> Book:
    """tests/fixtures/brokers/ib_wire.json, with cash per currency."""
    return Book(
        account_id,
        [
            Position("AAPL", "100", "187.1235"),
            Position("MSFT", "2.5", "410.14"),
            Position("TSLA", "-50", "245.3507"),
            Position("AAPL  260116C00190000", "2", "3.1565", AssetType.OPTION),
            Position("ESH6", "-1", "5975.153", AssetType.FUTURE),
        ],
        cash="92021.08",
        total_equity="100003.74",
        cash_by_currency={"USD": "78935.08", "EUR": "12000.00"},
    )
