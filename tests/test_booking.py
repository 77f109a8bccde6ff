"""Book-keeping: how fills move positions, average cost, cash and realised P&L."""

from __future__ import annotations

import sys
import threading
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from helpers import fill

from reconciliation._domain.models import AssetType, OrderFill
from reconciliation.paper._booking import Book, Holding, WrongAccountError, book_fill

if TYPE_CHECKING:
    from collections.abc import Iterator

ACCOUNT = "ACC-1"


def booked(*fills: OrderFill, cash: Decimal | int = 10_000) -> Book:
    book = Book(ACCOUNT, cash)
    for each in fills:
        book.apply_fill(each)
    return book


def holding(book: Book, symbol: str) -> Holding | None:
    return next((h for h in book.state().holdings if h.symbol == symbol), None)


class TestPositions:
    def test_buy_opens_a_long_at_the_fill_price(self) -> None:
        assert holding(booked(fill("AAPL", 10, "150.25")), "AAPL") == Holding("AAPL", 10, Decimal("150.25"))

    def test_sell_opens_a_short(self) -> None:
        assert holding(booked(fill("TSLA", -5, 200)), "TSLA") == Holding("TSLA", -5, 200)

    def test_adding_averages_the_cost_by_quantity(self) -> None:
        book = booked(fill("AAPL", 10, 100), fill("AAPL", 30, 120))

        assert holding(book, "AAPL") == Holding("AAPL", 40, Decimal(115))

    def test_an_average_that_is_a_binary_fraction_is_booked_rather_than_refused_as_a_float(self) -> None:
        book = booked(fill("AAPL", 1, 339738627), fill("AAPL", 1023, 339738624), cash=10**12)

        assert holding(book, "AAPL") == Holding("AAPL", 1024, Decimal("339738624.002929688"))

    def test_adding_to_a_short_averages_the_cost(self) -> None:
        book = booked(fill("TSLA", -10, 200), fill("TSLA", -10, 180))

        assert holding(book, "TSLA") == Holding("TSLA", -20, Decimal(190))

    def test_partial_close_keeps_the_average_cost(self) -> None:
        book = booked(fill("AAPL", 10, 100), fill("AAPL", 30, 120), fill("AAPL", -15, 130))

        assert holding(book, "AAPL") == Holding("AAPL", 25, Decimal(115))

    def test_closing_to_zero_removes_the_position(self) -> None:
        book = booked(fill("AAPL", 10, 100), fill("AAPL", -10, 105))

        assert book.state().holdings == ()

    def test_flip_through_zero_opens_the_rest_at_the_fill_price(self) -> None:
        book = booked(fill("AAPL", 10, 100), fill("AAPL", -25, 110))

        assert holding(book, "AAPL") == Holding("AAPL", -15, Decimal(110))

    def test_short_crossing_zero_becomes_long_at_the_fill_price(self) -> None:
        book = booked(fill("TSLA", -10, 200), fill("TSLA", 14, 190))

        assert holding(book, "TSLA") == Holding("TSLA", 4, Decimal(190))

    def test_fractional_quantities_stay_exact(self) -> None:
        book = booked(fill("BTC", "0.1", 30000), fill("BTC", "0.2", 30000), fill("BTC", "-0.3", 31000))

        assert book.state().holdings == ()
        assert book.realised_pnl == Decimal(300)

    def test_holdings_sorted_by_symbol(self) -> None:
        book = booked(fill("MSFT", 1, 1), fill("AAPL", 1, 1), fill("GOOG", 1, 1))

        assert [h.symbol for h in book.state().holdings] == ["AAPL", "GOOG", "MSFT"]

    def test_average_cost_rounded_to_34_significant_digits(self) -> None:
        book = booked(fill("AAPL", 1, 1), fill("AAPL", 2, 2))

        position = holding(book, "AAPL")
        assert position is not None
        assert position.avg_cost == Decimal("1.666666666666666666666666666666667")


class TestRealisedPnl:
    def test_closing_a_long_above_cost_realises_a_gain(self) -> None:
        assert booked(fill("AAPL", 10, 100), fill("AAPL", -4, 110)).realised_pnl == Decimal(40)

    def test_closing_a_short_above_cost_realises_a_loss(self) -> None:
        assert booked(fill("TSLA", -10, 200), fill("TSLA", 4, 210)).realised_pnl == Decimal(-40)

    def test_flip_realises_only_the_closed_part(self) -> None:
        assert booked(fill("AAPL", 10, 100), fill("AAPL", -25, 110)).realised_pnl == Decimal(100)

    def test_adding_realises_nothing(self) -> None:
        assert booked(fill("AAPL", 10, 100), fill("AAPL", 10, 90)).realised_pnl == 0

    def test_realised_pnl_is_before_commission(self) -> None:
        book = booked(fill("AAPL", 10, 100, commission=1), fill("AAPL", -10, 101, commission=1))

        assert book.realised_pnl == Decimal(10)

    def test_option_pnl_scaled_by_the_multiplier(self) -> None:
        book = booked(
            fill("AAPL C150", 2, "3.00", asset_type=AssetType.OPTION, multiplier=100),
            fill("AAPL C150", -2, "3.50", asset_type=AssetType.OPTION, multiplier=100),
        )

        assert book.realised_pnl == Decimal(100)


class TestCash:
    def test_stock_buy_pays_notional_and_commission(self) -> None:
        assert booked(fill("AAPL", 10, "150.25", commission="1.00")).cash == Decimal("8496.50")

    def test_stock_sell_receives_notional_less_commission(self) -> None:
        assert booked(fill("AAPL", -10, "150.25", commission="1.00")).cash == Decimal("11501.50")

    def test_round_trip_moves_cash_by_realised_pnl_less_commissions(self) -> None:
        book = booked(fill("AAPL", 10, 100, commission=1), fill("AAPL", -10, 105, commission=1))

        assert book.cash == Decimal(10_000 + 50 - 2)

    def test_option_notional_scaled_by_the_multiplier(self) -> None:
        book = booked(fill("AAPL C150", 2, "3.10", asset_type=AssetType.OPTION, multiplier=100))

        assert book.cash == Decimal(10_000) - Decimal(620)

    def test_future_fill_exchanges_no_notional(self) -> None:
        book = booked(fill("ESZ6", 2, 5000, asset_type=AssetType.FUTURE, multiplier=50, commission="4.50"))

        assert book.cash == Decimal("9995.50")

    def test_future_close_moves_cash_by_realised_pnl(self) -> None:
        book = booked(
            fill("ESZ6", 2, 5000, asset_type=AssetType.FUTURE, multiplier=50),
            fill("ESZ6", -1, 5010, asset_type=AssetType.FUTURE, multiplier=50),
        )

        assert book.cash == Decimal(10_000 + 500)
        assert book.realised_pnl == Decimal(500)

    def test_adjust_cash_moves_cash_without_a_fill(self) -> None:
        book = booked()

        adjustment = book.adjust_cash(Decimal("-2.50"), "wire fee")

        assert book.cash == Decimal("9997.50")
        assert (adjustment.amount, adjustment.reason) == (Decimal("-2.50"), "wire fee")

    def test_huge_notional_stays_exact_to_the_cent(self) -> None:
        book = booked(fill("X", 10**28, "0.01"), cash=Decimal("100000000000000000000000000.01"))

        assert book.cash == Decimal("0.01")


class TestValuation:
    def test_unmarked_symbol_valued_at_its_average_cost(self) -> None:
        assert booked(fill("AAPL", 10, 100)).state().total_equity == Decimal(10_000)

    def test_marked_stock_adds_its_market_value(self) -> None:
        book = booked(fill("AAPL", 10, 100))
        book.set_price("AAPL", 110)

        assert book.state().total_equity == Decimal(10_100)

    def test_short_loses_equity_when_the_price_rises(self) -> None:
        book = booked(fill("TSLA", -10, 200))
        book.set_price("TSLA", 210)

        assert book.state().total_equity == Decimal(9_900)

    def test_future_adds_only_its_unrealised_pnl(self) -> None:
        book = booked(fill("ESZ6", 2, 5000, asset_type=AssetType.FUTURE, multiplier=50))
        book.set_price("ESZ6", 4990)

        assert book.state().total_equity == Decimal(10_000 - 1_000)

    def test_price_set_before_the_position_is_used(self) -> None:
        book = booked()
        book.set_price("AAPL", 120)
        book.apply_fill(fill("AAPL", 10, 100))

        assert book.state().total_equity == Decimal(10_200)

    def test_float_price_refused_naming_the_field(self) -> None:
        with pytest.raises(TypeError, match="price"):
            booked().set_price("AAPL", 1.5)  # type: ignore[arg-type]

    def test_empty_symbol_mark_refused(self) -> None:
        with pytest.raises(ValueError, match="symbol"):
            booked().set_price(" ", 1)


class TestRefusals:
    def test_fill_for_another_account_refused_naming_both(self) -> None:
        book = booked()

        with pytest.raises(WrongAccountError, match=r"'ACC-1'.*'ACC-2'"):
            book.apply_fill(fill("AAPL", 1, 1, account_id="ACC-2"))
        assert book.state().holdings == ()

    def test_wrong_account_error_is_a_lookup_error(self) -> None:
        assert issubclass(WrongAccountError, LookupError)

    def test_fill_with_another_multiplier_refused(self) -> None:
        book = booked(fill("ESZ6", 1, 5000, asset_type=AssetType.FUTURE, multiplier=50))

        with pytest.raises(ValueError, match="multiplier 5"):
            book.apply_fill(fill("ESZ6", 1, 5000, asset_type=AssetType.FUTURE, multiplier=5))

    def test_float_opening_cash_refused(self) -> None:
        with pytest.raises(TypeError, match="cash"):
            Book(ACCOUNT, 100.0)  # type: ignore[arg-type]

    def test_empty_account_refused(self) -> None:
        with pytest.raises(ValueError, match="account_id"):
            Book("", 0)

    def test_adjustment_without_reason_refused(self) -> None:
        with pytest.raises(ValueError, match="reason"):
            booked().adjust_cash(1, "")


class TestBookFill:
    def test_pure_function_leaves_the_holding_unchanged(self) -> None:
        before = Holding("AAPL", 10, 100)

        after = book_fill(before, fill("AAPL", -10, 100))

        assert before == Holding("AAPL", 10, 100)
        assert after.holding is None


class TestThreadSafety:
    @pytest.fixture(autouse=True)
    def _frequent_thread_switches(self) -> Iterator[None]:
        """Switch threads every microsecond so readers really land between a fill's updates."""
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        yield
        sys.setswitchinterval(interval)

    def test_concurrent_fills_and_reads_lose_nothing(self) -> None:
        book = booked(cash=0)
        per_thread = 500
        errors: list[BaseException] = []

        def buy() -> None:
            for _ in range(per_thread):
                book.apply_fill(fill("AAPL", 1, 2))

        def read() -> None:
            try:
                for _ in range(per_thread):
                    state = book.state()
                    assert state.total_equity == 0
            except BaseException as error:  # noqa: BLE001 - reported to the test thread
                errors.append(error)

        threads = [threading.Thread(target=buy) for _ in range(4)] + [threading.Thread(target=read)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        assert errors == []
        assert holding(book, "AAPL") == Holding("AAPL", 4 * per_thread, 2)
        assert book.cash == Decimal(-2 * 4 * per_thread)
