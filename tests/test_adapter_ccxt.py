"""CcxtBroker against ccxt's own parsers, fed Binance USDⓈ-M, OKX and Bybit answers hand-made from
the venues' documentation (several positions each: shorts, fractions, options, inverse contracts).
The answers recorded from each supported venue are in tests/test_venues.py."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

import attrs
import pytest

ccxt = pytest.importorskip("ccxt")

from adapter_fixtures import Book, found, reconcile_once, recorded  # noqa: E402 - after the SDK check
from recorded_ccxt import binanceusdm, bybit, okx  # noqa: E402

from reconciliation import AssetType, BrokerPosition, DiscrepancyType, Position  # noqa: E402
from reconciliation.adapters import BrokerDataError  # noqa: E402
from reconciliation.adapters.ccxt import CcxtBroker  # noqa: E402
from reconciliation.adapters.venues import VENUES, BalanceRows, unverified  # noqa: E402

SWAP, OPTION = AssetType.SWAP, AssetType.OPTION
QUANTITY, MISSING_LOCAL, MISSING_BROKER = (
    DiscrepancyType.QUANTITY_MISMATCH,
    DiscrepancyType.MISSING_LOCAL,
    DiscrepancyType.MISSING_BROKER,
)


def positions_of(broker: CcxtBroker) -> list[BrokerPosition]:
    return asyncio.run(broker.get_positions(broker.account_id))


def closing(exchange: Any) -> None:
    close = getattr(exchange, "close", None)
    if close is not None and asyncio.iscoroutinefunction(close):
        asyncio.run(close())


class TestBinance:
    """USDⓈ-M futures: a BTC short, 0.125 ETH, 3 SOL, a flat XRP entry; USDT wallet 10011.99567890."""

    @pytest.fixture(params=["sync", "async_support"])
    def broker(self, request: pytest.FixtureRequest) -> Any:
        exchange, _ = binanceusdm(asynchronous=request.param == "async_support")
        yield CcxtBroker(exchange, "binance-main", currency="USDT")
        closing(exchange)

    @pytest.fixture
    def book(self) -> Book:
        return Book(
            "binance-main",
            [
                Position("BTC/USDT:USDT", "-0.01", "67012.3", SWAP),
                Position("ETH/USDT:USDT", "0.125", "3120.45", SWAP),
                Position("SOL/USDT:USDT", "3", "142.1", SWAP),
            ],
            cash="10011.99567890",
            total_equity="10026.01142890",
        )

    def test_a_clean_book_gives_a_clean_run(self, broker: CcxtBroker, book: Book) -> None:
        result = reconcile_once(book, broker)

        assert (result.error, result.discrepancies, result.positions_checked) == (None, (), 3)

    def test_positions_are_signed_exact_base_units_of_unified_symbols(self, broker: CcxtBroker) -> None:
        assert [(p.symbol, str(p.quantity), str(p.avg_cost), p.asset_type) for p in positions_of(broker)] == [
            ("BTC/USDT:USDT", "-0.01", "67012.3", SWAP),
            ("ETH/USDT:USDT", "0.125", "3120.45", SWAP),
            ("SOL/USDT:USDT", "3", "142.1", SWAP),
        ]

    def test_the_flat_entry_is_left_out(self, broker: CcxtBroker) -> None:
        assert "XRP/USDT:USDT" not in {p.symbol for p in positions_of(broker)}

    def test_a_short_keeps_its_sign_in_the_market_value(self, broker: CcxtBroker) -> None:
        short = positions_of(broker)[0]

        assert (short.quantity, short.market_value) == (Decimal("-0.01"), Decimal("-668.501"))

    def test_cash_is_the_wallet_balance_not_the_unified_total_that_holds_unrealised_pnl(
        self, broker: CcxtBroker
    ) -> None:
        account = asyncio.run(broker.get_account("binance-main"))

        assert (account.cash, account.total_equity) == (Decimal("10011.99567890"), Decimal("10026.01142890"))
        assert (account.buying_power, account.margin_used) == (
            Decimal("9726.91122890"),
            Decimal("299.45020000"),
        )

    def test_cash_is_reported_per_currency(self, broker: CcxtBroker) -> None:
        account = asyncio.run(broker.get_account("binance-main"))

        assert dict(account.cash_by_currency or {}) == {
            "USDT": Decimal("10011.99567890"),
            "BNB": Decimal("0.01000000"),
            "BTC": Decimal("0E-8"),
        }

    def test_a_missed_fill_is_one_quantity_mismatch(self, broker: CcxtBroker, book: Book) -> None:
        missed = book.replacing("ETH/USDT:USDT", Position("ETH/USDT:USDT", "0.100", "3120.45", SWAP))

        assert found(reconcile_once(missed, broker)) == [(QUANTITY, "ETH/USDT:USDT", "0.100", "0.125")]

    def test_a_phantom_position_is_one_missing_broker(self, broker: CcxtBroker, book: Book) -> None:
        phantom = book.adding(Position("DOGE/USDT:USDT", "1000", "0.31", SWAP))

        assert found(reconcile_once(phantom, broker)) == [(MISSING_BROKER, "DOGE/USDT:USDT", "1000", None)]

    def test_a_short_the_book_missed_is_one_missing_local_with_its_sign(
        self, broker: CcxtBroker, book: Book
    ) -> None:
        assert found(reconcile_once(book.without("BTC/USDT:USDT"), broker)) == [
            (MISSING_LOCAL, "BTC/USDT:USDT", None, "-0.01")
        ]

    def test_a_fractional_quantity_is_compared_exactly(self, broker: CcxtBroker, book: Book) -> None:
        rounded = book.replacing("ETH/USDT:USDT", Position("ETH/USDT:USDT", "0.12", "3120.45", SWAP))

        assert found(reconcile_once(rounded, broker)) == [(QUANTITY, "ETH/USDT:USDT", "0.12", "0.125")]

    def test_a_perpetual_booked_as_a_future_is_missing_on_both_sides(
        self, broker: CcxtBroker, book: Book
    ) -> None:
        mislabelled = book.replacing(
            "SOL/USDT:USDT", Position("SOL/USDT:USDT", "3", "142.1", AssetType.FUTURE)
        )

        result = reconcile_once(mislabelled, broker)

        assert [(d.type, d.asset_type) for d in result.discrepancies] == [
            (MISSING_BROKER, AssetType.FUTURE),
            (MISSING_LOCAL, SWAP),
        ]


class TestOkx:
    """Net-mode OKX: 5 BTC contracts of 0.01 BTC, 3 ETH contracts of 0.1 ETH short, 2 BTC calls."""

    @pytest.fixture(params=["sync", "async_support"])
    def exchange(self, request: pytest.FixtureRequest) -> Any:
        exchange, _ = okx(asynchronous=request.param == "async_support")
        yield exchange
        closing(exchange)

    @pytest.fixture
    def book(self) -> Book:
        return Book(
            "okx-main",
            [
                Position("BTC/USDT:USDT", "0.05", "97012.3", SWAP),
                Position("ETH/USDT:USDT", "-0.3", "3120.45", SWAP),
                Position("BTC/USD:BTC-260327-100000-C", "2", "0.0215", OPTION),
            ],
            cash="24907.6461",
            total_equity="24890.6711",
        )

    def test_a_clean_book_gives_a_clean_run(self, exchange: Any, book: Book) -> None:
        result = reconcile_once(book, CcxtBroker(exchange, "okx-main", currency="USDT"))

        assert (result.error, result.discrepancies) == (None, ())

    def test_contracts_are_multiplied_by_the_contract_size_into_base_units(self, exchange: Any) -> None:
        held = {p.symbol: p.quantity for p in positions_of(CcxtBroker(exchange, "okx-main", currency="USDT"))}

        assert (held["BTC/USDT:USDT"], held["ETH/USDT:USDT"]) == (Decimal("0.05"), Decimal("-0.3"))

    def test_a_book_kept_in_contracts_is_one_quantity_mismatch_per_contract_sized_position(
        self, exchange: Any, book: Book
    ) -> None:
        in_contracts = book.replacing("BTC/USDT:USDT", Position("BTC/USDT:USDT", "5", "97012.3", SWAP))

        result = reconcile_once(in_contracts, CcxtBroker(exchange, "okx-main", currency="USDT"))

        assert found(result) == [(QUANTITY, "BTC/USDT:USDT", "5", "0.05")]

    def test_units_contracts_keeps_the_venues_contracts(self, exchange: Any, book: Book) -> None:
        in_contracts = book.replacing(
            "BTC/USDT:USDT", Position("BTC/USDT:USDT", "5", "97012.3", SWAP)
        ).replacing("ETH/USDT:USDT", Position("ETH/USDT:USDT", "-3", "3120.45", SWAP))

        result = reconcile_once(
            in_contracts, CcxtBroker(exchange, "okx-main", currency="USDT", units="contracts")
        )

        assert (result.error, result.discrepancies) == (None, ())

    def test_an_option_keeps_its_contracts(self, exchange: Any) -> None:
        (option,) = [
            p
            for p in positions_of(CcxtBroker(exchange, "okx-main", currency="USDT"))
            if p.asset_type is OPTION
        ]

        assert (option.symbol, option.quantity, option.avg_cost) == (
            "BTC/USD:BTC-260327-100000-C",
            2,
            Decimal("0.0215"),
        )

    def test_the_flat_net_mode_entry_without_a_side_is_left_out(self, exchange: Any) -> None:
        assert "SOL/USDT:USDT" not in {
            p.symbol for p in positions_of(CcxtBroker(exchange, "okx-main", currency="USDT"))
        }

    def test_cash_is_cash_balance_and_equity_is_eq(self, exchange: Any) -> None:
        account = asyncio.run(CcxtBroker(exchange, "okx-main", currency="USDT").get_account("okx-main"))

        assert (account.cash, account.total_equity) == (Decimal("24907.6461"), Decimal("24890.6711"))

    def test_a_phantom_position_is_one_missing_broker(self, exchange: Any, book: Book) -> None:
        phantom = book.adding(Position("SOL/USDT:USDT", "10", "145", SWAP))

        result = reconcile_once(phantom, CcxtBroker(exchange, "okx-main", currency="USDT"))

        assert found(result) == [(MISSING_BROKER, "SOL/USDT:USDT", "10", None)]

    def test_a_short_the_book_missed_is_one_missing_local_in_base_units(
        self, exchange: Any, book: Book
    ) -> None:
        result = reconcile_once(
            book.without("ETH/USDT:USDT"), CcxtBroker(exchange, "okx-main", currency="USDT")
        )

        assert found(result) == [(MISSING_LOCAL, "ETH/USDT:USDT", None, "-0.3")]

    def test_a_fractional_quantity_is_compared_exactly(self, exchange: Any, book: Book) -> None:
        rounded = book.replacing("BTC/USDT:USDT", Position("BTC/USDT:USDT", "0.049", "97012.3", SWAP))

        result = reconcile_once(rounded, CcxtBroker(exchange, "okx-main", currency="USDT"))

        assert found(result) == [(QUANTITY, "BTC/USDT:USDT", "0.049", "0.05")]

    def test_a_missed_fill_on_a_contract_sized_short_is_one_quantity_mismatch(
        self, exchange: Any, book: Book
    ) -> None:
        missed = book.replacing("ETH/USDT:USDT", Position("ETH/USDT:USDT", "-0.2", "3120.45", SWAP))

        result = reconcile_once(missed, CcxtBroker(exchange, "okx-main", currency="USDT"))

        assert found(result) == [(QUANTITY, "ETH/USDT:USDT", "-0.2", "-0.3")]


class TestBybit:
    """Bybit's unified account: one category per position query, walletBalance vs equity."""

    @pytest.fixture(params=["sync", "async_support"])
    def exchange(self, request: pytest.FixtureRequest) -> Any:
        exchange, _ = bybit(asynchronous=request.param == "async_support")
        yield exchange
        closing(exchange)

    @pytest.fixture
    def book(self) -> Book:
        return Book(
            "bybit-main",
            [
                Position("BTC/USDT:USDT", "-0.01", "67012.3", SWAP),
                Position("ETH/USDT:USDT", "0.12", "3120.45", SWAP),
                Position("BTC/USD:BTC", "100", "96000.5", SWAP),
            ],
            cash="10117.512",
            total_equity="10122.68",
        )

    def test_a_clean_book_gives_a_clean_run(self, exchange: Any, book: Book) -> None:
        result = reconcile_once(book, CcxtBroker(exchange, "bybit-main", currency="USDT"))

        assert (result.error, result.discrepancies) == (None, ())

    def test_every_category_is_asked_for_its_positions(self) -> None:
        exchange, venue = bybit()

        positions_of(CcxtBroker(exchange, "bybit-main", currency="USDT"))

        assert [
            (q.get("category"), q.get("settleCoin"))
            for _, path, q in venue.requests
            if path == "/v5/position/list"
        ] == [
            ("linear", "USDT"),
            ("linear", "USDC"),
            ("inverse", None),
            ("option", None),
        ]

    def test_cash_is_the_wallet_balance_and_equity_the_coins_equity(self, exchange: Any) -> None:
        account = asyncio.run(CcxtBroker(exchange, "bybit-main", currency="USDT").get_account("bybit-main"))

        assert (account.cash, account.total_equity) == (Decimal("10117.512"), Decimal("10122.68"))

    def test_a_phantom_position_is_one_missing_broker(self, exchange: Any, book: Book) -> None:
        phantom = book.adding(Position("SOL/USDT:USDT", "12.5", "145", SWAP))

        result = reconcile_once(phantom, CcxtBroker(exchange, "bybit-main", currency="USDT"))

        assert found(result) == [(MISSING_BROKER, "SOL/USDT:USDT", "12.5", None)]

    def test_a_missed_fill_is_one_quantity_mismatch(self, exchange: Any, book: Book) -> None:
        missed = book.replacing("ETH/USDT:USDT", Position("ETH/USDT:USDT", "0.1", "3120.45", SWAP))

        result = reconcile_once(missed, CcxtBroker(exchange, "bybit-main", currency="USDT"))

        assert found(result) == [(QUANTITY, "ETH/USDT:USDT", "0.1", "0.12")]

    def test_a_short_the_book_missed_is_one_missing_local_with_its_sign(
        self, exchange: Any, book: Book
    ) -> None:
        result = reconcile_once(
            book.without("BTC/USDT:USDT"), CcxtBroker(exchange, "bybit-main", currency="USDT")
        )

        assert found(result) == [(MISSING_LOCAL, "BTC/USDT:USDT", None, "-0.01")]

    def test_a_fractional_quantity_is_compared_exactly(self, exchange: Any, book: Book) -> None:
        rounded = book.replacing("ETH/USDT:USDT", Position("ETH/USDT:USDT", "0.125", "3120.45", SWAP))

        result = reconcile_once(rounded, CcxtBroker(exchange, "bybit-main", currency="USDT"))

        assert found(result) == [(QUANTITY, "ETH/USDT:USDT", "0.125", "0.12")]

    def test_inverse_contracts_count_their_usd_face_value(self, exchange: Any) -> None:
        (inverse,) = [
            p
            for p in positions_of(CcxtBroker(exchange, "bybit-main", currency="USDT"))
            if p.symbol == "BTC/USD:BTC"
        ]

        assert (inverse.quantity, inverse.market_value) == (100, 100)

    def test_inverse_contracts_booked_in_btc_are_one_quantity_mismatch(
        self, exchange: Any, book: Book
    ) -> None:
        in_btc = book.replacing("BTC/USD:BTC", Position("BTC/USD:BTC", "0.00104166", "96000.5", SWAP))

        result = reconcile_once(in_btc, CcxtBroker(exchange, "bybit-main", currency="USDT"))

        assert found(result) == [(QUANTITY, "BTC/USD:BTC", "0.00104166", "100")]

    def test_an_entry_without_a_side_fails_the_run_naming_it_instead_of_guessing(self, book: Book) -> None:
        payloads = recorded("bybit")
        payloads["positions_linear_usdt"]["result"]["list"][2]["size"] = "0.5"
        exchange, _ = bybit(payloads)

        result = reconcile_once(book, CcxtBroker(exchange, "bybit-main", currency="USDT"))

        assert result.discrepancies == ()
        assert result.error is not None
        assert "bybit position SOL/USDT:USDT holds 0.5 contracts but has no side" in result.error


class TestExactNumbers:
    @pytest.mark.parametrize("venue", [binanceusdm, okx, bybit])
    def test_ccxts_floats_give_the_same_exact_figures_as_its_decimal_mode(self, venue: Any) -> None:
        exact_exchange, _ = venue()
        float_exchange, _ = venue(number=float)

        brokers = [CcxtBroker(e, "a", currency="USDT") for e in (exact_exchange, float_exchange)]
        positions = [
            [(p.symbol, p.quantity, p.avg_cost, p.asset_type) for p in positions_of(broker)] for broker in brokers
        ]
        accounts = [asyncio.run(broker.get_account("a")) for broker in brokers]

        assert positions[0] == positions[1]
        assert accounts[0] == accounts[1]


class TestBalanceFields:
    def test_a_profile_given_replaces_the_venues(self) -> None:
        exchange, _ = binanceusdm()
        profile = attrs.evolve(
            VENUES["binanceusdm"],
            balances=(BalanceRows(path="assets", currency="asset", cash="crossWalletBalance", equity="marginBalance"),),
        )

        account = asyncio.run(CcxtBroker(exchange, "b", currency="USDT", profile=profile).get_account("b"))

        assert account.cash == Decimal("10011.99567890")

    def test_a_venue_without_a_profile_falls_back_to_the_unified_total_with_a_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        exchange, _ = binanceusdm()

        with caplog.at_level(logging.WARNING, logger="reconciliation.adapters.ccxt"):
            broker = CcxtBroker(exchange, "b", currency="USDT", profile=unverified("binanceusdm"))
        account = asyncio.run(broker.get_account("b"))

        assert "not in the venue table" in caplog.text
        assert broker.health_warning is not None
        assert (account.cash, account.total_equity, account.cash_by_currency) == (
            Decimal("10026.01142890"),
            Decimal("10026.01142890"),
            None,
        )

    def test_a_currency_the_balance_does_not_list_is_named_with_those_it_lists(self) -> None:
        exchange, _ = binanceusdm()

        with pytest.raises(
            BrokerDataError, match=r"binanceusdm balance has no USDC row \(it lists BNB, BTC, USDT\)"
        ):
            asyncio.run(CcxtBroker(exchange, "b", currency="USDC").get_account("b"))


def test_a_call_for_another_account_is_refused() -> None:
    exchange, _ = binanceusdm()

    with pytest.raises(BrokerDataError, match="reads account 'binance-main', not 'other'"):
        asyncio.run(CcxtBroker(exchange, "binance-main", currency="USDT").get_positions("other"))


def test_markets_are_loaded_through_the_venue_when_none_are() -> None:
    exchange, venue = binanceusdm()
    exchange.markets = None

    positions_of(CcxtBroker(exchange, "binance-main", currency="USDT"))

    assert "/fapi/v1/exchangeInfo" in venue.paths()
