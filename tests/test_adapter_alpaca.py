"""AlpacaBroker against alpaca-py's real TradingClient, its HTTP session answering recorded JSON."""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("alpaca")

from adapter_fixtures import FIXTURES, Book, found, reconcile_once, recorded
from recorded_alpaca import alpaca_client

from reconciliation import AssetType, BrokerPosition, DiscrepancyType, Position
from reconciliation.adapters import BrokerDataError
from reconciliation.adapters.alpaca import AlpacaBroker, crypto_symbol

ACCOUNT = "PA3T8N36NVJK"
STOCK, OPTION, CRYPTO = AssetType.STOCK, AssetType.OPTION, AssetType.CRYPTO
QUANTITY, MISSING_LOCAL, MISSING_BROKER = (
    DiscrepancyType.QUANTITY_MISMATCH,
    DiscrepancyType.MISSING_LOCAL,
    DiscrepancyType.MISSING_BROKER,
)


@pytest.fixture
def book() -> Book:
    return Book(
        ACCOUNT,
        [
            Position("AAPL", "10", "187.12"),
            Position("SLM", "-2478", "8.36"),
            Position("TSLA", "0.523419", "240.1"),
            Position("BTC/USD", "0.0421", "97000.5", CRYPTO),
            Position("AAPL260116C00190000", "2", "3.15", OPTION),
        ],
        cash="114005.4860481",
        total_equity="98783.1607981",
    )


@pytest.fixture(params=["models", "raw_data"])
def broker(request: pytest.FixtureRequest) -> AlpacaBroker:
    client, _ = alpaca_client(raw_data=request.param == "raw_data")
    return AlpacaBroker(client, ACCOUNT)


def positions_of(broker: AlpacaBroker) -> dict[str, BrokerPosition]:
    return {p.symbol: p for p in asyncio.run(broker.get_positions(ACCOUNT))}


def test_a_clean_book_gives_a_clean_run(broker: AlpacaBroker, book: Book) -> None:
    result = reconcile_once(book, broker)

    assert (result.error, result.discrepancies, result.positions_checked) == (None, (), 5)


def test_positions_are_exact_and_signed(broker: AlpacaBroker) -> None:
    held = positions_of(broker)

    assert [(s, str(p.quantity), str(p.avg_cost), p.asset_type) for s, p in held.items()] == [
        ("AAPL", "10", "187.12", STOCK),
        ("SLM", "-2478", "8.36", STOCK),
        ("TSLA", "0.523419", "240.1", STOCK),
        ("BTC/USD", "0.0421", "97000.5", CRYPTO),
        ("AAPL260116C00190000", "2", "3.15", OPTION),
    ]


def test_a_short_is_negative_by_its_side_whatever_the_sign_of_its_qty() -> None:
    payloads = recorded("alpaca")
    payloads["positions"][1]["qty"] = "2478"
    client, _ = alpaca_client(payloads)

    assert positions_of(AlpacaBroker(client, ACCOUNT))["SLM"].quantity == Decimal(-2478)


def test_a_crypto_position_is_named_as_orders_name_it() -> None:
    assert (
        crypto_symbol("BTCUSD"),
        crypto_symbol("ETHUSDT"),
        crypto_symbol("ETHBTC"),
        crypto_symbol("BTC/USD"),
    ) == (
        "BTC/USD",
        "ETH/USDT",
        "ETH/BTC",
        "BTC/USD",
    )


def test_an_option_keeps_its_per_share_cost_and_its_contracts(broker: AlpacaBroker) -> None:
    option = positions_of(broker)["AAPL260116C00190000"]

    assert (option.quantity, option.avg_cost, option.market_value) == (2, Decimal("3.15"), Decimal("700.0"))


def test_the_account_is_the_account_number_with_cash_and_equity(broker: AlpacaBroker) -> None:
    account = asyncio.run(broker.get_account(ACCOUNT))

    assert (
        account.account_id,
        account.cash,
        account.total_equity,
        account.buying_power,
        account.margin_used,
    ) == (
        ACCOUNT,
        Decimal("114005.4860481"),
        Decimal("98783.1607981"),
        Decimal("187421.96"),
        Decimal("13447.63"),
    )


def test_a_missed_fill_is_one_quantity_mismatch(broker: AlpacaBroker, book: Book) -> None:
    missed = book.replacing("AAPL", Position("AAPL", "5", "187.12"))

    assert found(reconcile_once(missed, broker)) == [(QUANTITY, "AAPL", "5", "10")]


def test_a_phantom_position_is_one_missing_broker(broker: AlpacaBroker, book: Book) -> None:
    phantom = book.adding(Position("MSFT", "3", "410.14"))

    assert found(reconcile_once(phantom, broker)) == [(MISSING_BROKER, "MSFT", "3", None)]


def test_a_short_the_book_missed_is_one_missing_local_with_its_sign(broker: AlpacaBroker, book: Book) -> None:
    assert found(reconcile_once(book.without("SLM"), broker)) == [(MISSING_LOCAL, "SLM", None, "-2478")]


def test_a_fractional_share_is_compared_exactly(broker: AlpacaBroker, book: Book) -> None:
    rounded = book.replacing("TSLA", Position("TSLA", "0.52", "240.1"))

    assert found(reconcile_once(rounded, broker)) == [(QUANTITY, "TSLA", "0.52", "0.523419")]


def test_an_option_booked_in_shares_is_one_quantity_mismatch(broker: AlpacaBroker, book: Book) -> None:
    in_shares = book.replacing("AAPL260116C00190000", Position("AAPL260116C00190000", "200", "3.15", OPTION))

    assert found(reconcile_once(in_shares, broker)) == [(QUANTITY, "AAPL260116C00190000", "200", "2")]


def test_crypto_booked_under_alpacas_position_symbol_is_missing_on_both_sides(
    broker: AlpacaBroker, book: Book
) -> None:
    under_position_symbol = book.replacing("BTC/USD", Position("BTCUSD", "0.0421", "97000.5", CRYPTO))

    assert found(reconcile_once(under_position_symbol, broker)) == [
        (MISSING_LOCAL, "BTC/USD", None, "0.0421"),
        (MISSING_BROKER, "BTCUSD", "0.0421", None),
    ]


def test_a_client_logged_in_to_another_account_fails_the_run_naming_both(book: Book) -> None:
    client, _ = alpaca_client()
    by_uuid = Book("e6fe16f3-64a4-4921-8928-cadf02f92f98", book.positions, cash="0", total_equity="0")

    result = reconcile_once(by_uuid, AlpacaBroker(client, "e6fe16f3-64a4-4921-8928-cadf02f92f98"))

    assert result.discrepancies == ()
    assert "logged in to account number 'PA3T8N36NVJK'" in (result.error or "")


def test_a_server_error_fails_the_run_instead_of_reporting_an_empty_book(book: Book) -> None:
    client, transport = alpaca_client()
    transport.answers["/positions"] = (500, {"code": 50010000, "message": "internal server error"})

    result = reconcile_once(book, AlpacaBroker(client, ACCOUNT))

    assert result.discrepancies == ()
    assert "internal server error" in (result.error or "")


def test_an_unknown_asset_class_is_compared_by_its_symbol_as_other_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    payloads = recorded("alpaca")
    payloads["positions"][0]["asset_class"] = "us_bond"
    client, _ = alpaca_client(payloads, raw_data=True)
    broker = AlpacaBroker(client, ACCOUNT)

    with caplog.at_level(logging.WARNING, logger="reconciliation.adapters.alpaca"):
        first, second = positions_of(broker), positions_of(broker)

    assert (first["AAPL"].asset_type, first["AAPL"].quantity) == (AssetType.OTHER, Decimal(10))
    assert first == second
    assert [r.getMessage() for r in caplog.records].count(
        "Alpaca position AAPL is of asset class 'us_bond', which the adapter does not know: it is compared "
        "by its symbol as asset type 'other' (this is logged once per class)"
    ) == 1


def test_requests_carry_the_clients_credentials(broker: AlpacaBroker) -> None:
    client, transport = alpaca_client()

    asyncio.run(AlpacaBroker(client, ACCOUNT).get_positions(ACCOUNT))

    ((method, path, headers),) = transport.requests
    assert (method, path, headers["APCA-API-KEY-ID"]) == ("GET", "/v2/positions", "recorded-key")


def test_a_call_for_another_account_is_refused(broker: Any) -> None:
    with pytest.raises(BrokerDataError, match="reads account 'PA3T8N36NVJK', not 'other'"):
        asyncio.run(broker.get_positions("other"))


class TestAnswersRecordedByAlpacaPy:
    """alpaca-py's own test data (tests/fixtures/brokers/alpaca/): one AAPL long, a margin account."""

    RECORDED_ACCOUNT = "010203ABCD"

    @pytest.fixture
    def recorded_client(self) -> Any:
        answers = {
            "positions": json.loads((FIXTURES / "alpaca" / "v2_positions.json").read_text()),
            "account": json.loads((FIXTURES / "alpaca" / "v2_account.json").read_text()),
        }
        return alpaca_client(answers)

    @pytest.fixture
    def recorded_book(self) -> Book:
        return Book(self.RECORDED_ACCOUNT, [Position("AAPL", "5", "100.0")], cash="-23140.2", total_equity="103820.56")

    def test_a_correct_book_is_clean(self, recorded_client: Any, recorded_book: Book) -> None:
        client, _ = recorded_client

        result = reconcile_once(recorded_book, AlpacaBroker(client, self.RECORDED_ACCOUNT))

        assert (result.error, result.discrepancies) == (None, ())

    @pytest.mark.parametrize(
        ("held", "expected"),
        [
            ("3", [(QUANTITY, "AAPL", "3", "5")]),
            ("-5", [(QUANTITY, "AAPL", "-5", "5")]),
            (None, [(MISSING_LOCAL, "AAPL", None, "5")]),
        ],
        ids=["a missed fill", "a wrong sign", "a missing position"],
    )
    def test_a_broken_book_gives_exactly_the_expected_break(
        self, recorded_client: Any, recorded_book: Book, held: str | None, expected: list[Any]
    ) -> None:
        client, _ = recorded_client
        book = recorded_book.replacing("AAPL", *([Position("AAPL", held, "100.0")] if held else []))

        assert found(reconcile_once(book, AlpacaBroker(client, self.RECORDED_ACCOUNT))) == expected

    def test_a_full_read_sends_no_write(self, recorded_client: Any) -> None:
        client, transport = recorded_client
        broker = AlpacaBroker(client, self.RECORDED_ACCOUNT)

        asyncio.run(broker.get_positions(self.RECORDED_ACCOUNT))
        asyncio.run(broker.get_account(self.RECORDED_ACCOUNT))

        assert [(method, path) for method, path, _ in transport.requests] == [
            ("GET", "/v2/positions"),
            ("GET", "/v2/account"),
        ]
