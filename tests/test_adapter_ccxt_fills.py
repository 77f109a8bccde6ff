"""CcxtBroker.get_fills: ccxt's `fetch_my_trades` through ccxt's own parsers, on venue answers
recorded by others (tests/fixtures/brokers/README.md names each), and the explanation it gives a
position break end to end through the service."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import time
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("ccxt")

from adapter_fixtures import FillBook, reconcile_once
from recorded_ccxt import RecordedRoutes, okx
from recorded_venues import VENUES, Venue, venue_broker

from reconciliation import AssetType, ExplanationPolicy, Fill, Position
from reconciliation.adapters import BrokerDataError, InconsistentVenueDataError, WriteRefusedError
from reconciliation.adapters.ccxt import CcxtBroker
from reconciliation.testing import ManualClock, capture_published

SWAP = AssetType.SWAP
BYBIT_EXECUTIONS = "execution_list_linear.json"
SOLD_AT = dt.datetime(2022, 12, 29, 3, 0, 22, 529_000, tzinfo=dt.UTC)
"""When Bybit's recorded ETHUSDT execution (a sell of 0.5 at 3000) was made."""
SINCE = SOLD_AT - dt.timedelta(hours=1)


def venue(venue_id: str) -> Venue:
    (found,) = [v for v in VENUES if v.id == venue_id]
    return found


def fills_of(broker: CcxtBroker, symbol: str, since: dt.datetime = SINCE) -> list[Fill]:
    return asyncio.run(broker.get_fills(broker.account_id, symbol, since))


def bybit_changing(change: Any, **options: Any) -> tuple[CcxtBroker, RecordedRoutes]:
    """Bybit's broker, its recorded executions answer served as `change(answer)`."""
    broker, routes = venue_broker(venue("bybit"), **options)
    routes.replace(BYBIT_EXECUTIONS, change)
    return broker, routes


def eth_row(answer: Any) -> dict[str, Any]:
    (row,) = [row for row in answer["result"]["list"] if row["symbol"] == "ETHUSDT"]
    return row  # type: ignore[no-any-return]


def eth_book(broker: CcxtBroker, quantity: str) -> FillBook:
    """The book that agrees with Bybit's recording but for its ETH, and says its fills (none)."""
    book = venue("bybit").book(broker.account_id)
    return book.replacing("ETH/USDT:USDT", Position("ETH/USDT:USDT", quantity, "1073.85", SWAP)).booking()


def published_breaks(book: Any, broker: CcxtBroker, **config: Any) -> list[dict[str, Any]]:
    """The position breaks one run publishes, made ten minutes after Bybit's recorded sell."""
    with capture_published() as capture:
        result = reconcile_once(book, broker, clock=ManualClock(start=SOLD_AT + dt.timedelta(minutes=10)), **config)
    assert result.error is None, result.error
    return [d for d in capture.discrepancies if d["symbol"] is not None]


class TestBybitRecorded:
    """Bybit's recorded ETHUSDT long of 0.5 and its recorded executions: a sell of 0.5 ETHUSDT, a buy of BTCUSDT."""

    @pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async_support"])
    def test_a_sell_the_engine_missed_is_published_explained_with_the_venues_fill(self, asynchronous: bool) -> None:
        bybit = venue("bybit")
        broker, _ = venue_broker(bybit, asynchronous=asynchronous)
        book = eth_book(broker, "1.0")

        (found,) = published_breaks(book, broker, **bybit.config)

        explanation = found["explanation"]
        assert (found["type"], found["local_value"], found["broker_value"]) == ("quantity_mismatch", "1.0", "0.5")
        assert explanation["verdict"] == "explained"
        assert [(f["fill_id"], f["quantity"], f["price"]) for f in explanation["missing_locally"]] == [
            ("f1dce92e-1g29-6977-a526-dg420c6ecb4c", "-0.5", "3000")
        ]
        assert explanation["summary"] == (
            "explained: broker fill f1dce92e-1g29-6977-a526-dg420c6ecb4c SELL 0.5 @ 3000 03:00:22 not booked"
        )

    def test_a_fill_the_engine_booked_with_the_venues_execution_id_is_matched_not_reported(self) -> None:
        bybit = venue("bybit")
        broker, _ = venue_broker(bybit)
        booked = Fill(
            "L-7", "O-7", "ETH/USDT:USDT", "-0.5", "3000", SOLD_AT, SWAP, venue_fill_id="f1dce92e-1g29-6977-a526-dg420c6ecb4c"
        )
        book = eth_book(broker, "0.4")

        (found,) = published_breaks(book.booking(booked), broker, **bybit.config)

        assert (found["type"], found["explanation"]["verdict"]) == ("quantity_mismatch", "unexplained")
        assert found["explanation"]["missing_locally"] == []

    @pytest.mark.parametrize("decimal_mode", [False, True], ids=["ccxt floats", "exchange.number = Decimal"])
    def test_an_execution_is_signed_by_its_side_with_its_ids_fee_and_time_in_utc(self, decimal_mode: bool) -> None:
        broker, _ = venue_broker(venue("bybit"), decimal_mode=decimal_mode)

        assert fills_of(broker, "ETH/USDT:USDT") == [
            Fill(
                "f1dce92e-1g29-6977-a526-dg420c6ecb4c",
                "7b954230-6a41-3ba8-bc20-26d20ab44b83",
                "ETH/USDT:USDT",
                "-0.5",
                "3000",
                SOLD_AT,
                SWAP,
                fee="0.9",
            )
        ]

    def test_the_execution_of_another_symbol_in_the_answer_is_left_out(self) -> None:
        broker, _ = venue_broker(venue("bybit"))

        assert {fill.symbol for fill in fills_of(broker, "ETH/USDT:USDT")} == {"ETH/USDT:USDT"}

    def test_a_row_of_another_instrument_that_ccxt_labels_with_the_asked_symbol_is_left_out(self) -> None:
        broker, _ = venue_broker(venue("bybit"))
        exchange = broker._exchange
        fetch_my_trades = exchange.fetch_my_trades
        answer = RecordedRoutes("bybit", exchange)
        raw = exchange.parse_json(answer.directory.joinpath(BYBIT_EXECUTIONS).read_text())["result"]["list"]

        def labelling_every_row_as_asked(symbol: str, *args: Any) -> Any:
            (trade,) = fetch_my_trades(symbol, *args) or [{}]
            return [{**trade, "info": row, "id": row["execId"]} for row in raw]

        exchange.fetch_my_trades = labelling_every_row_as_asked

        assert [fill.fill_id for fill in fills_of(broker, "ETH/USDT:USDT")] == ["f1dce92e-1g29-6977-a526-dg420c6ecb4c"]

    def test_the_venue_is_asked_for_the_symbols_executions_from_since(self) -> None:
        broker, routes = venue_broker(venue("bybit"))

        fills_of(broker, "ETH/USDT:USDT")

        asked = [q for _, path, q in routes.requests if path == "/v5/execution/list"]
        assert (asked[0]["symbol"], asked[0]["category"], asked[0]["startTime"]) == (
            "ETHUSDT",
            "linear",
            str(int(SINCE.timestamp() * 1000)),
        )

    def test_every_request_of_a_fills_read_is_a_read_the_profile_declares(self) -> None:
        broker, routes = venue_broker(venue("bybit"))

        fills_of(broker, "ETH/USDT:USDT")

        reads = broker.profile.reads
        assert [(m, p) for m, p, _ in routes.requests if not any(r.allows(m, p) for r in reads)] == []
        assert "/v5/execution/list" in routes.paths()

    def test_a_write_attempted_while_reading_fills_is_refused_before_it_leaves(self) -> None:
        broker, routes = venue_broker(venue("bybit"))
        exchange = broker._exchange
        fetch_my_trades = exchange.fetch_my_trades

        def cancelling_orders_too(*args: Any) -> Any:
            exchange.privatePostV5OrderCancelAll({"category": "linear"})
            return fetch_my_trades(*args)

        exchange.fetch_my_trades = cancelling_orders_too

        with pytest.raises(WriteRefusedError, match="POST /v5/order/cancel-all"):
            fills_of(broker, "ETH/USDT:USDT")
        assert [m for m, _, _ in routes.requests if m != "GET"] == []

    def test_an_execution_listed_twice_is_one_fill(self) -> None:
        def twice(answer: Any) -> Any:
            answer["result"]["list"].append(copy.deepcopy(eth_row(answer)))
            return answer

        broker, _ = bybit_changing(twice)

        assert [fill.fill_id for fill in fills_of(broker, "ETH/USDT:USDT")] == ["f1dce92e-1g29-6977-a526-dg420c6ecb4c"]

    def test_one_execution_id_with_two_sizes_is_refused_as_inconsistent_naming_both(self) -> None:
        def twice_differing(answer: Any) -> Any:
            other = copy.deepcopy(eth_row(answer))
            other["execQty"] = "0.400"
            answer["result"]["list"].append(other)
            return answer

        broker, _ = bybit_changing(twice_differing)

        with pytest.raises(InconsistentVenueDataError, match=r"given twice, as .*SELL 0\.5 @ 3000.* and as .*SELL 0\.4 @"):
            fills_of(broker, "ETH/USDT:USDT")

    @pytest.mark.parametrize("field", ["execQty", "execPrice"])
    def test_nan_like_text_is_refused_naming_the_execution(self, field: str) -> None:
        def nan(answer: Any) -> Any:
            eth_row(answer)[field] = "NaN"
            return answer

        broker, _ = bybit_changing(nan)

        with pytest.raises(BrokerDataError, match=r"bybit fills of ETH/USDT:USDT: execution 'f1dce92e-1g29-6977-a526-dg420c6ecb4c'"):
            fills_of(broker, "ETH/USDT:USDT")

    def test_a_row_without_its_order_is_refused_naming_it(self) -> None:
        def without(answer: Any) -> Any:
            eth_row(answer)["orderId"] = ""
            return answer

        broker, _ = bybit_changing(without)

        with pytest.raises(BrokerDataError, match="execution 'f1dce92e-1g29-6977-a526-dg420c6ecb4c' has no order id"):
            fills_of(broker, "ETH/USDT:USDT")

    def test_a_row_without_its_time_that_ccxt_cannot_sort_is_refused_as_the_venues_not_a_crash(self) -> None:
        def without(answer: Any) -> Any:
            eth_row(answer)["execTime"] = ""
            return answer

        broker, _ = bybit_changing(without)

        with pytest.raises(BrokerDataError, match=r"bybit fills of ETH/USDT:USDT: ccxt could not read the venue's trades \(TypeError"):
            fills_of(broker, "ETH/USDT:USDT")

    def test_a_trade_without_its_time_is_refused_naming_it(self) -> None:
        broker, _ = venue_broker(venue("bybit"))
        exchange = broker._exchange
        fetch_my_trades = exchange.fetch_my_trades
        exchange.fetch_my_trades = lambda *args: [{**trade, "timestamp": None} for trade in fetch_my_trades(*args)]

        with pytest.raises(BrokerDataError, match="execution 'f1dce92e-1g29-6977-a526-dg420c6ecb4c' has the time None"):
            fills_of(broker, "ETH/USDT:USDT")

    def test_a_bad_row_leaves_the_break_published_unexplained_saying_why(self) -> None:
        def nan(answer: Any) -> Any:
            eth_row(answer)["execQty"] = "NaN"
            return answer

        bybit = venue("bybit")
        broker, _ = bybit_changing(nan)
        book = eth_book(broker, "1.0")

        (found,) = published_breaks(book, broker, **bybit.config)

        assert (found["type"], found["explanation"]["verdict"]) == ("quantity_mismatch", "unexplained")
        assert "execution 'f1dce92e-1g29-6977-a526-dg420c6ecb4c'" in found["explanation"]["note"]

    def test_an_unknown_side_is_refused_naming_it(self) -> None:
        def sideways(answer: Any) -> Any:
            eth_row(answer)["side"] = "Hold"
            return answer

        broker, _ = bybit_changing(sideways)

        with pytest.raises(BrokerDataError, match="neither a buy nor a sell"):
            fills_of(broker, "ETH/USDT:USDT")

    def test_pages_are_read_from_the_last_fill_on_and_no_further_than_the_cap(self) -> None:
        pages: list[int] = []

        def a_fresh_page(answer: Any) -> Any:
            template = eth_row(answer)
            first = len(pages) * 100
            pages.append(first)
            answer["result"]["list"] = [
                {**template, "execId": f"E-{n}", "execTime": str(int(SOLD_AT.timestamp() * 1000) + n)}
                for n in range(first, first + 100)
            ]
            return answer

        broker, routes = bybit_changing(a_fresh_page, max_fills=250)

        fills = fills_of(broker, "ETH/USDT:USDT")

        assert [fill.fill_id for fill in fills] == [f"E-{n}" for n in range(250)]
        starts = [q["startTime"] for _, path, q in routes.requests if path == "/v5/execution/list"]
        assert starts[1:] == [str(int(SOLD_AT.timestamp() * 1000) + n) for n in (99, 199)]

    def test_a_short_page_is_the_whole_window(self) -> None:
        broker, routes = venue_broker(venue("bybit"))

        fills_of(broker, "ETH/USDT:USDT")

        assert routes.paths().count("/v5/execution/list") == 1

    def test_a_venue_that_answers_the_newest_trades_first_is_read_whole(self) -> None:
        first = int(SOLD_AT.timestamp() * 1000)
        held = [first + 1000 * n for n in range(250)]
        broker, routes = venue_broker(venue("bybit"))

        def the_newest_hundred_of_the_window(answer: Any) -> Any:
            query = routes.requests[-1][2]
            low, high = int(query["startTime"]), int(query.get("endTime", 2**62))
            template = eth_row(answer)
            inside = [stamp for stamp in held if low <= stamp <= high]
            answer["result"]["list"] = [
                {**template, "execId": f"E-{stamp}", "execTime": str(stamp)} for stamp in sorted(inside)[-100:][::-1]
            ]
            return answer

        routes.replace(BYBIT_EXECUTIONS, the_newest_hundred_of_the_window)

        fills = fills_of(broker, "ETH/USDT:USDT", SOLD_AT)

        assert [fill.fill_id for fill in fills] == [f"E-{stamp}" for stamp in held]

    def test_a_symbol_with_no_market_is_refused_naming_it(self) -> None:
        broker, _ = venue_broker(venue("bybit"))

        with pytest.raises(BrokerDataError, match="bybit fills of DOGE/USDT:USDT: no such market"):
            fills_of(broker, "DOGE/USDT:USDT")


def test_a_venue_that_hangs_on_the_trade_endpoint_does_not_delay_the_break() -> None:
    """An async exchange whose trade history never answers: the break goes out unexplained, on time."""
    bybit = venue("bybit")
    broker, routes = venue_broker(bybit, asynchronous=True)
    answer = routes.answer_async

    async def hanging_on_executions(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        if "/v5/execution/list" in url:
            await asyncio.Event().wait()
        return await answer(url, method, headers, body)

    broker._exchange.fetch = hanging_on_executions
    book = eth_book(broker, "1.0")
    policy = ExplanationPolicy(timeout_seconds=0.5, lookback_seconds=10 * 365 * 86_400)

    with capture_published() as capture:
        started = time.monotonic()
        result = reconcile_once(book, broker, explanations=policy, **bybit.config)
        took = time.monotonic() - started

    (found,) = [d for d in capture.discrepancies if d["symbol"] == "ETH/USDT:USDT"]
    assert result.error is None
    assert (found["type"], found["explanation"]["verdict"]) == ("quantity_mismatch", "unexplained")
    assert "did not answer within" in found["explanation"]["note"]
    assert took < 5


class TestBinanceRecorded:
    """ccxt's recorded USDⓈ-M trade: a SELL of 0.002 BTCUSDT at 7819.01 with a negative commission (a rebate)."""

    SOLD = dt.datetime(2019, 9, 26, 16, 22, 58, 20_000, tzinfo=dt.UTC)

    @pytest.mark.parametrize("decimal_mode", [False, True], ids=["ccxt floats", "exchange.number = Decimal"])
    def test_the_sell_is_negative_in_base_units_with_its_rebate_as_a_negative_fee(self, decimal_mode: bool) -> None:
        broker, _ = venue_broker(venue("binanceusdm"), decimal_mode=decimal_mode)

        assert fills_of(broker, "BTC/USDT:USDT", self.SOLD - dt.timedelta(hours=1)) == [
            Fill("698759", "25851813", "BTC/USDT:USDT", "-0.002", "7819.01", self.SOLD, SWAP, fee="-0.0781901")
        ]

    def test_a_position_the_broker_closed_and_the_engine_did_not_is_explained_by_the_sell(self) -> None:
        binance = venue("binanceusdm")
        broker, _ = venue_broker(binance)
        book = binance.book(broker.account_id).adding(Position("BTC/USDT:USDT", "0.002", "7500", SWAP)).booking()

        with capture_published() as capture:
            result = reconcile_once(book, broker, clock=ManualClock(start=self.SOLD + dt.timedelta(minutes=5)))

        assert result.error is None
        (found,) = [d for d in capture.discrepancies if d["symbol"] == "BTC/USDT:USDT"]
        assert (found["type"], found["explanation"]["verdict"]) == ("missing_broker", "explained")
        assert [f["fill_id"] for f in found["explanation"]["missing_locally"]] == ["698759"]


class TestOkxContracts:
    """OKX's fills are in contracts (hand-made in the documented shape: tests/fixtures/brokers/okx.json)."""

    SINCE = dt.datetime(2025, 12, 7, tzinfo=dt.UTC)

    @pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async_support"])
    def test_contracts_are_sized_in_base_units_like_the_positions(self, asynchronous: bool) -> None:
        exchange, _ = okx(asynchronous=asynchronous)
        broker = CcxtBroker(exchange, "okx-main", currency="USDT")

        (sold,) = fills_of(broker, "ETH/USDT:USDT", self.SINCE)
        (bought,) = fills_of(broker, "BTC/USDT:USDT", self.SINCE)

        assert (sold.quantity, sold.asset_type, bought.quantity) == (Decimal("-0.3"), SWAP, Decimal("0.05"))

    def test_units_contracts_keeps_the_venues_contracts(self) -> None:
        exchange, _ = okx()
        broker = CcxtBroker(exchange, "okx-main", currency="USDT", units="contracts")

        (sold,) = fills_of(broker, "ETH/USDT:USDT", self.SINCE)

        assert sold.quantity == Decimal(-3)

    @pytest.mark.parametrize("number", [float, Decimal], ids=["ccxt floats", "exchange.number = Decimal"])
    def test_the_fee_is_what_the_account_paid_as_ccxt_signs_it(self, number: type) -> None:
        exchange, _ = okx(number=number)
        broker = CcxtBroker(exchange, "okx-main", currency="USDT")

        (sold,) = fills_of(broker, "ETH/USDT:USDT", self.SINCE)

        assert (sold.fee, sold.fill_id, sold.order_id) == (Decimal("0.561681"), "1191374023", "680800019749904384")


def test_a_call_for_another_account_is_refused() -> None:
    broker, _ = venue_broker(venue("bybit"))

    with pytest.raises(BrokerDataError, match="reads account 'bybit-main', not 'other'"):
        asyncio.run(broker.get_fills("other", "ETH/USDT:USDT", SINCE))


def test_max_fills_must_be_a_positive_whole_number() -> None:
    exchange, _ = okx()

    with pytest.raises(ValueError, match="max_fills must be a whole number of at least 1, not 0"):
        CcxtBroker(exchange, "okx-main", currency="USDT", max_fills=0)
