"""Every supported ccxt venue, offline, through ccxt's own parsing of answers recorded from the venue.

For each venue of the table (tests/recorded_venues.py; the sources of its answers are in
tests/fixtures/brokers/README.md): a correct book is clean, in ccxt's default floats and
in its Decimal mode; a missed fill, a wrong sign and a missing position each give
exactly one break; a full read sends no write; a figure ccxt drops, and two of the
venue's figures that disagree, fail the run saying which.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import fakeredis
import pytest

pytest.importorskip("ccxt")

from adapter_fixtures import found, reconcile_once
from recorded_ccxt import recorded_exchange
from recorded_venues import VENUES, Venue, entry_of, scaled, venue_broker

from reconciliation import (
    AssetType,
    DiscrepancyType,
    Position,
    ReconciliationConfig,
    ReconciliationService,
)
from reconciliation._domain.values import FieldValueError
from reconciliation.adapters import BrokerDataError
from reconciliation.adapters.ccxt import CcxtBroker, Settings, WriteRefusedError
from reconciliation.adapters.venues import VENUES as PROFILES
from reconciliation.adapters.venues import unverified

QUANTITY, MISSING_LOCAL = DiscrepancyType.QUANTITY_MISMATCH, DiscrepancyType.MISSING_LOCAL

WITH_NOTIONAL = [venue for venue in VENUES if venue.notional_field is not None]


def test_every_venue_of_the_table_has_recorded_answers() -> None:
    assert sorted(venue.id for venue in VENUES) == sorted(PROFILES)


def test_docs_brokers_lists_every_venue_of_the_table_with_the_source_of_its_answers() -> None:
    text = (Path(__file__).parents[1] / "docs" / "brokers.md").read_text()
    sources = text[text.index("### Where each venue's recorded answers come from") :]

    assert [venue for venue in PROFILES if f"(`{venue}`" not in text] == []
    assert [venue for venue in PROFILES if f"| `{venue}` |" not in sources] == []


def run(venue: Venue, book: Any = None, **options: Any) -> Any:
    broker, _ = venue_broker(venue, **options)
    return reconcile_once(book or venue.book(broker.account_id), broker, **venue.config)


def ccxt_changing(broker: Any, field: str, change: Any) -> None:
    """Make ccxt's `fetch_positions` give `change(value)` for `field` of each position, as an SDK
    that drops or misreads a figure would."""
    exchange = broker._exchange
    fetch = exchange.fetch_positions

    def changed(positions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for position in positions:
            position[field] = change(position[field])
        return positions

    def fetch_changed(*args: Any) -> Any:
        return changed(fetch(*args))

    exchange.fetch_positions = fetch_changed


def first(venue: Venue) -> Position:
    return venue.positions[0]


def replacing(venue: Venue, position: Position, quantity: Decimal) -> Any:
    book = venue.book(f"{venue.id}-main")
    return book.replacing(position.symbol, Position(position.symbol, quantity, position.avg_cost, position.asset_type))


@pytest.mark.parametrize("venue", VENUES, ids=str)
class TestEachVenue:
    @pytest.mark.parametrize("decimal_mode", [False, True], ids=["ccxt floats", "exchange.number = Decimal"])
    def test_a_correct_book_is_clean(self, venue: Venue, decimal_mode: bool) -> None:
        result = run(venue, decimal_mode=decimal_mode)

        assert (result.error, result.discrepancies) == (None, ())
        assert result.positions_checked == len(venue.positions)

    def test_an_async_exchange_reads_the_same(self, venue: Venue) -> None:
        result = run(venue, asynchronous=True)

        assert (result.error, result.discrepancies) == (None, ())

    def test_a_missed_fill_is_one_quantity_mismatch(self, venue: Venue) -> None:
        held = first(venue)
        missed = held.quantity / 2

        result = run(venue, replacing(venue, held, missed))

        assert found(result) == [(QUANTITY, held.symbol, format(missed, "f"), format(held.quantity, "f"))]

    def test_a_wrong_sign_is_one_quantity_mismatch(self, venue: Venue) -> None:
        held = first(venue)

        result = run(venue, replacing(venue, held, -held.quantity))

        assert found(result) == [(QUANTITY, held.symbol, format(-held.quantity, "f"), format(held.quantity, "f"))]

    def test_a_missing_position_is_one_missing_local(self, venue: Venue) -> None:
        held = first(venue)

        result = run(venue, venue.book(f"{venue.id}-main").without(held.symbol))

        assert found(result) == [(MISSING_LOCAL, held.symbol, None, format(held.quantity, "f"))]

    def test_a_full_read_sends_no_write(self, venue: Venue) -> None:
        broker, routes = venue_broker(venue)

        asyncio.run(broker.get_positions(broker.account_id))
        asyncio.run(broker.get_account(broker.account_id))

        sent = [(method, path) for method, path, _ in routes.requests]
        writes = [(m, p) for m, p in sent if m != "GET" and not (venue.id == "hyperliquid" and (m, p) == ("POST", "/info"))]
        assert writes == []
        assert all(any(path.endswith(read) for _, path in sent) for read in venue.reads)

    def test_every_request_of_a_read_is_one_the_profile_declares(self, venue: Venue) -> None:
        broker, routes = venue_broker(venue)

        asyncio.run(broker.get_positions(broker.account_id))
        asyncio.run(broker.get_account(broker.account_id))

        reads = broker.profile.reads
        assert [(m, p) for m, p, _ in routes.requests if not any(r.allows(m, p) for r in reads)] == []

    def test_a_figure_ccxt_drops_fails_the_run_naming_the_venues_field(self, venue: Venue) -> None:
        broker, _ = venue_broker(venue)
        ccxt_changing(broker, "entryPrice", lambda _: None)

        result = reconcile_once(venue.book(broker.account_id), broker, **venue.config)

        assert result.discrepancies == ()
        assert "ccxt gave no entryPrice, but the venue sent" in (result.error or "")
        assert str(broker.profile.positions.entry) in (result.error or "")  # type: ignore[union-attr]

    def test_contracts_that_disagree_with_the_venues_size_fail_the_run_as_inconsistent(self, venue: Venue) -> None:
        broker, _ = venue_broker(venue)
        ccxt_changing(broker, "contracts", lambda contracts: contracts * 10)

        result = reconcile_once(venue.book(broker.account_id), broker, **venue.config)

        assert result.discrepancies == ()
        assert "inconsistent venue data" in (result.error or "")
        assert f"but the venue's {venue.size_field} is" in (result.error or "")


@pytest.mark.parametrize("venue", WITH_NOTIONAL, ids=str)
def test_a_notional_that_disagrees_with_the_quantity_fails_the_run_naming_both(venue: Venue) -> None:
    broker, routes = venue_broker(venue)
    field = venue.notional_field
    assert field is not None

    def tenfold_notional(answer: Any) -> Any:
        changed = copy.deepcopy(answer)
        entry = entry_of(changed, venue)
        entry[field] = scaled(entry[field], 10)
        return changed

    base = routes.replaced.get(venue.positions_file)
    routes.replace(venue.positions_file, lambda a: tenfold_notional(base(a) if base else a))

    result = reconcile_once(venue.book(broker.account_id), broker, **venue.config)

    assert result.discrepancies == ()
    assert result.error is not None
    assert "inconsistent venue data" in result.error
    assert f"but the venue's {field} is" in result.error


def venue(venue_id: str) -> Venue:
    (found_venue,) = [v for v in VENUES if v.id == venue_id]
    return found_venue


class TestDeribit:
    """Deribit's `size` is already the USD face value; ccxt still gives its contract size, 10."""

    def test_an_inverse_perpetual_is_its_usd_face_value_not_ten_times_it(self) -> None:
        broker, _ = venue_broker(venue("deribit"))

        (held,) = asyncio.run(broker.get_positions(broker.account_id))

        assert (held.symbol, held.quantity) == ("BTC/USD:BTC", Decimal(50))

    def test_multiplying_by_the_contract_size_would_fail_as_inconsistent_not_as_a_critical_break(self) -> None:
        deribit = venue("deribit")
        profile = attrs.evolve(PROFILES["deribit"], sizing="contracts_x_size")
        broker, _ = venue_broker(deribit, profile=profile)

        result = reconcile_once(deribit.book(broker.account_id), broker, **deribit.config)

        assert result.discrepancies == ()
        assert result.error is not None
        assert "inconsistent venue data: deribit position BTC/USD:BTC: a quantity of 500" in result.error
        assert "but the venue's size_currency is 0.006687487" in result.error

    def test_the_eth_balance_of_a_btc_account_is_compared_too(self) -> None:
        deribit = venue("deribit")
        broker, _ = venue_broker(deribit)
        book = deribit.book(broker.account_id)
        book.account = attrs.evolve(book.account, cash_by_currency={"BTC": "302.60065765", "ETH": "99"})

        result = reconcile_once(book, broker, **deribit.config)

        assert [(d.type, d.currency, d.local_value, d.broker_value) for d in result.discrepancies] == [
            (DiscrepancyType.CASH_MISMATCH, "ETH", Decimal(99), Decimal(100))
        ]


class TestHyperliquid:
    WALLET = "0x1111111111111111111111111111111111111111"
    KEY = "0x" + "ab" * 32

    def test_it_reads_with_the_wallet_address_alone(self) -> None:
        hyperliquid = venue("hyperliquid")

        result = run(hyperliquid)

        assert dict(hyperliquid.credentials) == {"walletAddress": self.WALLET}
        assert (result.error, result.discrepancies) == (None, ())

    def test_an_exchange_holding_a_private_key_is_refused_naming_what_ccxt_would_send(self) -> None:
        exchange, _ = recorded_exchange("hyperliquid", walletAddress=self.WALLET, privateKey=self.KEY)

        with pytest.raises(ValueError, match=r"reads with walletAddress alone, .* privateKey, .* approveBuilderFee"):
            CcxtBroker(exchange, "hl", currency="USDC")

    @pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async_support"])
    def test_the_writes_ccxt_sends_while_loading_markets_are_refused_and_fail_the_run(self, asynchronous: bool) -> None:
        hyperliquid = venue("hyperliquid")
        exchange, routes = recorded_exchange(
            "hyperliquid", asynchronous=asynchronous, walletAddress=self.WALLET, privateKey=self.KEY
        )
        trusting = attrs.evolve(PROFILES["hyperliquid"], credentials=None)
        broker = CcxtBroker(exchange, "hl", currency="USDC", profile=trusting)

        result = reconcile_once(hyperliquid.book("hl"), broker)

        assert result.discrepancies == ()
        assert "refused before it left the process" in (result.error or "")
        assert "POST /exchange (approveBuilderFee)" in (result.error or "")
        assert "POST /exchange (setReferrer)" in (result.error or "")
        assert [path for method, path, _ in routes.requests if method != "GET" and path != "/info"] == []

    def test_the_toml_settings_refuse_a_private_key(self) -> None:
        with pytest.raises(FieldValueError, match="hyperliquid reads with walletAddress alone: leave privateKey out"):
            Settings(
                venue="hyperliquid",
                currency="USDC",
                credentials={"walletAddress": "HL_WALLET", "privateKey": "HL_KEY"},
            )

    def test_the_toml_settings_need_only_the_wallet_address(self) -> None:
        settings = Settings(venue="hyperliquid", currency="USDC", credentials={"walletAddress": "HL_WALLET"})

        assert settings.profile() is PROFILES["hyperliquid"]


class TestRecordedAsTheyAre:
    def test_okxs_recorded_mark_price_contradicts_its_notional_and_fails_the_run_naming_both(self) -> None:
        okx = venue("okx")
        exchange, _ = recorded_exchange("okx", **dict(okx.credentials))
        broker = CcxtBroker(exchange, "okx-main", currency="USDT")

        result = reconcile_once(okx.book("okx-main"), broker)

        assert result.discrepancies == ()
        assert result.error is not None
        assert "inconsistent venue data: okx position BTC/USDT:USDT" in result.error
        assert "at markPx 4786.459271773621" in result.error
        assert "but the venue's notionalUsd is 341.5130010779638" in result.error


class TestProductFamilies:
    def test_bybit_is_asked_for_linear_usdt_and_usdc_inverse_and_option_positions(self) -> None:
        broker, routes = venue_broker(venue("bybit"))

        asyncio.run(broker.get_positions(broker.account_id))

        asked = [(q.get("category"), q.get("settleCoin")) for _, p, q in routes.requests if p == "/v5/position/list"]
        assert asked == [("linear", "USDT"), ("linear", "USDC"), ("inverse", None), ("option", None)]

    def test_gate_is_asked_for_usdt_and_btc_settled_perpetuals_and_usdt_delivery(self) -> None:
        broker, routes = venue_broker(venue("gate"))

        asyncio.run(broker.get_positions(broker.account_id))

        assert [p for _, p, _ in routes.requests if p.endswith("/positions")] == [
            "/api/v4/futures/usdt/positions",
            "/api/v4/futures/btc/positions",
            "/api/v4/delivery/usdt/positions",
        ]

    def test_bitget_is_asked_for_usdt_and_usdc_futures_and_coin_futures_per_margin_coin(self) -> None:
        bitget = venue("bitget")
        broker, routes = venue_broker(bitget)
        exchange = broker._exchange
        asyncio.run(broker.get_positions(broker.account_id))
        for symbol, settle in (("BTC/USD:BTC", "BTC"), ("ETH/USD:ETH", "ETH")):
            exchange.markets[symbol] = {"symbol": symbol, "contract": True, "inverse": True, "settleId": settle}
        routes.requests.clear()

        asyncio.run(broker.get_positions(broker.account_id))

        assert [
            (q["productType"], q["marginCoin"]) for _, p, q in routes.requests if p.endswith("/all-position")
        ] == [("USDT-FUTURES", "USDT"), ("USDC-FUTURES", "USDC"), ("COIN-FUTURES", "BTC"), ("COIN-FUTURES", "ETH")]

    @pytest.mark.parametrize(
        ("venue_id", "spot"),
        [("bitget", "/api/v2/spot/account/assets"), ("gate", "/api/v4/spot/accounts"), ("coinbase", "/v2/accounts")],
    )
    def test_cash_and_equity_come_from_the_futures_account_never_the_spot_wallet(self, venue_id: str, spot: str) -> None:
        broker, routes = venue_broker(venue(venue_id))

        asyncio.run(broker.get_account(broker.account_id))

        assert spot not in routes.paths()

    def test_a_product_family_the_account_never_opened_holds_nothing(self) -> None:
        broker, routes = venue_broker(venue("gate"))

        account = asyncio.run(broker.get_account(broker.account_id))

        assert "/api/v4/futures/btc/accounts" in routes.paths()
        assert account.cash_by_currency == {"USDT": Decimal("12.51345151332")}


class TestReadOnly:
    def test_a_write_attempted_during_a_read_is_refused_before_it_leaves_and_fails_the_run(self) -> None:
        binance = venue("binanceusdm")
        broker, routes = venue_broker(binance)
        exchange = broker._exchange
        fetch_positions = exchange.fetch_positions

        def placing_an_order_too(*args: Any) -> Any:
            exchange.fapiPrivatePostOrder({"symbol": "WLDUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"})
            return fetch_positions(*args)

        exchange.fetch_positions = placing_an_order_too

        result = reconcile_once(binance.book(broker.account_id), broker)

        assert result.discrepancies == ()
        assert "binanceusdm: a read tried to send POST /fapi/v1/order" in (result.error or "")
        assert [m for m, _, _ in routes.requests if m != "GET"] == []

    def test_the_hosts_own_requests_outside_a_read_are_not_touched(self) -> None:
        broker, routes = venue_broker(venue("binanceusdm"))
        asyncio.run(broker.get_positions(broker.account_id))

        with pytest.raises(AssertionError, match="no recorded answer for POST /fapi/v1/order"):
            broker._exchange.fetch("https://fapi.binance.com/fapi/v1/order", "POST")

        assert routes.requests[-1][:2] == ("POST", "/fapi/v1/order")

    def test_a_fetch_the_host_replaces_later_is_guarded_again(self) -> None:
        broker, routes = venue_broker(venue("binanceusdm"))
        exchange = broker._exchange
        exchange.fetch = routes.answer
        fetch_positions = exchange.fetch_positions

        def placing_an_order_too(*args: Any) -> Any:
            exchange.fapiPrivatePostOrder({"symbol": "WLDUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"})
            return fetch_positions(*args)

        exchange.fetch_positions = placing_an_order_too

        with pytest.raises(WriteRefusedError, match="POST /fapi/v1/order"):
            asyncio.run(broker.get_positions(broker.account_id))


class TestTolerances:
    def test_an_account_in_btc_with_the_default_usd_tolerance_is_refused_at_start_naming_the_options(self) -> None:
        broker, _ = venue_broker(venue("deribit"))

        with pytest.raises(ValueError, match=r"reconciled in BTC .* set cash_tolerance .* cash_tolerance_by_currency\.BTC"):
            ReconciliationService(
                venue("deribit").book(broker.account_id),
                broker,
                fakeredis.FakeRedis(),
                ReconciliationConfig(broker.account_id),
            )

    def test_a_tolerance_named_for_the_accounts_currency_is_accepted(self) -> None:
        deribit = venue("deribit")
        broker, _ = venue_broker(deribit)

        result = reconcile_once(deribit.book(broker.account_id), broker, cash_tolerance_by_currency={"BTC": "0.001"})

        assert (result.error, result.discrepancies) == (None, ())

    def test_an_account_in_a_stablecoin_keeps_the_default(self) -> None:
        result = run(venue("gate"))

        assert result.error is None


class TestUnknownMarketTypes:
    def test_a_position_in_a_market_of_an_unknown_type_is_compared_as_other_and_logged_once(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        broker, _ = venue_broker(venue("hyperliquid"))
        asyncio.run(broker.get_positions(broker.account_id))
        broker._exchange.markets["ETH/USDC:USDC"]["type"] = "prediction"

        with caplog.at_level(logging.WARNING, logger="reconciliation.adapters.ccxt"):
            held = asyncio.run(broker.get_positions(broker.account_id))
            again = asyncio.run(broker.get_positions(broker.account_id))

        assert [(p.symbol, p.quantity, p.asset_type) for p in held] == [
            ("ETH/USDC:USDC", Decimal("0.2259"), AssetType.OTHER)
        ]
        assert held == again
        assert sum("market of type 'prediction'" in r.getMessage() for r in caplog.records) == 1


class TestUnverifiedVenues:
    def test_another_ccxt_venue_works_but_starts_with_a_warning_and_a_health_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        binance = venue("binanceusdm")
        with caplog.at_level(logging.WARNING, logger="reconciliation.adapters.ccxt"):
            broker, _ = venue_broker(binance, profile=unverified("binanceusdm"))
        service = ReconciliationService(
            binance.book(broker.account_id), broker, fakeredis.FakeRedis(), ReconciliationConfig(broker.account_id)
        )

        assert "is not in the venue table" in caplog.text
        assert service.health().warnings == (f"account {broker.account_id}: {broker.health_warning}",)
        assert service.health().healthy

    def test_its_balance_params_select_the_account_read(self) -> None:
        broker, routes = venue_broker(
            venue("bitget"), profile=unverified("bitget", balance_params={"type": "swap", "productType": "USDT-FUTURES"})
        )

        account = asyncio.run(broker.get_account(broker.account_id))

        assert routes.paths()[-1] == "/api/v2/mix/account/accounts"
        assert account.cash == 0

    def test_a_balance_without_the_accounts_currency_fails_instead_of_reading_zero(self) -> None:
        broker, _ = venue_broker(
            venue("bitget"), profile=unverified("bitget", balance_params={"type": "swap", "productType": "USDT-FUTURES"})
        )
        broker._currency = "BTC"

        with pytest.raises(BrokerDataError, match="bitget balance has no total in BTC"):
            asyncio.run(broker.get_account(broker.account_id))

    def test_the_toml_settings_give_its_calls(self) -> None:
        settings = Settings(
            venue="mexc",
            currency="USDT",
            credentials={"apiKey": "MEXC_KEY", "secret": "MEXC_SECRET"},
            position_queries=[{"type": "swap"}],
            balance_params={"type": "swap"},
        )

        profile = settings.profile()

        assert (profile.verified, [dict(q.params) for q in profile.position_queries], dict(profile.balance_params)) == (
            False,
            [{"type": "swap"}],
            {"type": "swap"},
        )

    def test_the_toml_settings_refuse_calls_for_a_venue_of_the_table(self) -> None:
        with pytest.raises(FieldValueError, match="the venue table names bybit's calls"):
            Settings(
                venue="bybit",
                currency="USDT",
                credentials={"apiKey": "BYBIT_KEY", "secret": "BYBIT_SECRET"},
                position_queries=[{"category": "linear"}],
            )


class TestWhatIsNotComparedNeverFailsARun:
    def test_a_coinbase_future_without_a_mark_price_reports_its_cost_value(self) -> None:
        coinbase = venue("coinbase")
        broker, routes = venue_broker(coinbase)

        def without_mark(answer: Any) -> Any:
            del answer["positions"][0]["current_price"]
            return answer

        routes.replace("brokerage_cfm_positions.json", without_mark)

        result = reconcile_once(coinbase.book(broker.account_id), broker)
        (held,) = asyncio.run(broker.get_positions(broker.account_id))

        assert (result.error, result.discrepancies) == (None, ())
        assert held.market_value == Decimal("0.02") * Decimal(70980)
