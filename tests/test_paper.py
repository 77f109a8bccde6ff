"""The in-memory portfolio and the paper broker: each side's reports, and how they reconcile."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import sys
import threading
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from helpers import fill

from reconciliation._domain.compare import compare
from reconciliation._domain.models import (
    AssetType,
    BrokerAccount,
    BrokerPosition,
    DiscrepancyType,
    LocalAccount,
    Position,
    ReconciliationConfig,
    Snapshot,
)
from reconciliation._domain.protocols import BrokerQuery, PortfolioManager
from reconciliation.paper._booking import WrongAccountError
from reconciliation.paper._books import InMemoryPortfolio, PaperBroker

if TYPE_CHECKING:
    from collections.abc import Iterator

ACCOUNT = "ACC-1"
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
CONFIG = ReconciliationConfig(account_id=ACCOUNT)


def snapshot(portfolio: InMemoryPortfolio, broker: PaperBroker) -> Snapshot:
    return Snapshot(
        account_id=ACCOUNT,
        local_positions=portfolio.get_positions(ACCOUNT),
        local_account=portfolio.get_account(ACCOUNT),
        broker_positions=asyncio.run(broker.get_positions(ACCOUNT)),
        broker_account=asyncio.run(broker.get_account(ACCOUNT)),
        taken_at=NOW,
    )


def breaks(portfolio: InMemoryPortfolio, broker: PaperBroker) -> list[tuple[DiscrepancyType, str | None]]:
    return [(d.type, d.symbol) for d in compare(snapshot(portfolio, broker), CONFIG).discrepancies]


TRADING_DAY = (
    fill("AAPL", 100, "150.25", commission="1.00"),
    fill("AAPL", -40, "151.10", commission="1.00"),
    fill("TSLA", -20, "210.00", commission="1.00"),
    fill("TSLA", 35, "205.50", commission="1.00"),
    fill("BTC", "0.125", "30000", commission="0.10"),
    fill("AAPL C150", 3, "4.20", asset_type=AssetType.OPTION, multiplier=100, commission="1.95"),
    fill("ESZ6", 2, "5000.25", asset_type=AssetType.FUTURE, multiplier=50, commission="4.50"),
    fill("ESZ6", -1, "5010.00", asset_type=AssetType.FUTURE, multiplier=50, commission="2.25"),
)
MARKS = {"AAPL": "152.00", "TSLA": "200.00", "BTC": "31000", "AAPL C150": "5.00", "ESZ6": "4995.75"}


@pytest.fixture
def both_sides() -> tuple[InMemoryPortfolio, PaperBroker]:
    portfolio = InMemoryPortfolio(ACCOUNT, Decimal(100_000))
    broker = PaperBroker(ACCOUNT, Decimal(100_000))
    for each in TRADING_DAY:
        portfolio.apply_fill(each)
        broker.apply_fill(each)
    for symbol, price in MARKS.items():
        portfolio.set_price(symbol, Decimal(price))
        broker.set_price(symbol, Decimal(price))
    return portfolio, broker


class TestProtocols:
    def test_portfolio_is_a_portfolio_manager(self) -> None:
        assert isinstance(InMemoryPortfolio(ACCOUNT, 0), PortfolioManager)

    def test_paper_broker_is_a_broker_query(self) -> None:
        assert isinstance(PaperBroker(ACCOUNT, 0), BrokerQuery)


class TestInMemoryPortfolio:
    def test_reports_positions_sorted_by_symbol(self) -> None:
        portfolio = InMemoryPortfolio(ACCOUNT, 0)
        portfolio.apply_fill(fill("MSFT", 5, 400))
        portfolio.apply_fill(fill("AAPL C150", -1, 3, asset_type=AssetType.OPTION, multiplier=100))

        assert portfolio.get_positions(ACCOUNT) == [
            Position("AAPL C150", -1, 3, AssetType.OPTION),
            Position("MSFT", 5, 400),
        ]

    def test_reports_cash_and_equity(self) -> None:
        portfolio = InMemoryPortfolio(ACCOUNT, 10_000)
        portfolio.apply_fill(fill("MSFT", 5, 400, commission=1))
        portfolio.set_price("MSFT", 410)

        assert portfolio.get_account(ACCOUNT) == LocalAccount(ACCOUNT, cash=7_999, total_equity=10_049)

    def test_closed_position_is_not_reported(self) -> None:
        portfolio = InMemoryPortfolio(ACCOUNT, 0)
        portfolio.apply_fill(fill("MSFT", 5, 400))
        portfolio.apply_fill(fill("MSFT", -5, 400))

        assert portfolio.get_positions(ACCOUNT) == []

    def test_another_account_refused_naming_both(self) -> None:
        portfolio = InMemoryPortfolio(ACCOUNT, 0)

        with pytest.raises(WrongAccountError, match=r"'ACC-1', not 'ACC-2'"):
            portfolio.get_positions("ACC-2")
        with pytest.raises(LookupError, match="ACC-2"):
            portfolio.get_account("ACC-2")


class TestPaperBroker:
    def test_reports_market_value_at_the_mark(self) -> None:
        broker = PaperBroker(ACCOUNT, 0)
        broker.apply_fill(fill("MSFT", 5, 400))
        broker.set_price("MSFT", Decimal("410.50"))

        assert asyncio.run(broker.get_positions(ACCOUNT)) == [BrokerPosition("MSFT", 5, 400, Decimal("2052.50"))]

    def test_unmarked_position_valued_at_cost(self) -> None:
        broker = PaperBroker(ACCOUNT, 0)
        broker.apply_fill(fill("TSLA", -3, 200))

        assert asyncio.run(broker.get_positions(ACCOUNT))[0].market_value == Decimal(-600)

    def test_option_market_value_includes_the_multiplier(self) -> None:
        broker = PaperBroker(ACCOUNT, 0)
        broker.apply_fill(fill("AAPL C150", 2, 3, asset_type=AssetType.OPTION, multiplier=100))
        broker.set_price("AAPL C150", Decimal("3.25"))

        assert asyncio.run(broker.get_positions(ACCOUNT))[0].market_value == Decimal(650)

    def test_flat_positions_omitted(self) -> None:
        broker = PaperBroker(ACCOUNT, 0)
        broker.apply_fill(fill("MSFT", 5, 400))
        broker.apply_fill(fill("MSFT", -5, 401))

        assert asyncio.run(broker.get_positions(ACCOUNT)) == []

    def test_margin_model_for_a_stock(self) -> None:
        broker = PaperBroker(ACCOUNT, 10_000)
        broker.apply_fill(fill("MSFT", 10, 400))
        broker.set_price("MSFT", 500)

        assert asyncio.run(broker.get_account(ACCOUNT)) == BrokerAccount(
            ACCOUNT,
            cash=Decimal(6_000),
            total_equity=Decimal(11_000),
            margin_used=Decimal(2_500),
            buying_power=Decimal(17_000),
        )

    def test_short_counts_its_absolute_notional_as_margin(self) -> None:
        broker = PaperBroker(ACCOUNT, 10_000)
        broker.apply_fill(fill("TSLA", -10, 200))

        account = asyncio.run(broker.get_account(ACCOUNT))

        assert (account.cash, account.total_equity, account.margin_used) == (12_000, 10_000, 1_000)
        assert account.buying_power == Decimal(18_000)

    def test_future_equity_and_margin(self) -> None:
        broker = PaperBroker(ACCOUNT, 10_000, margin_rate=Decimal("0.1"))
        broker.apply_fill(fill("ESZ6", 1, 5000, asset_type=AssetType.FUTURE, multiplier=50))
        broker.set_price("ESZ6", 5010)

        account = asyncio.run(broker.get_account(ACCOUNT))

        assert account.cash == Decimal(10_000)
        assert account.total_equity == Decimal(10_500)
        assert account.margin_used == Decimal("25050.0")
        assert account.buying_power == 0

    def test_buying_power_with_nothing_held_is_equity_over_the_rate(self) -> None:
        assert asyncio.run(PaperBroker(ACCOUNT, 10_000).get_account(ACCOUNT)).buying_power == Decimal(20_000)

    def test_buying_power_never_negative(self) -> None:
        broker = PaperBroker(ACCOUNT, 0)
        broker.apply_fill(fill("MSFT", 10, 400))
        broker.set_price("MSFT", 100)

        assert asyncio.run(broker.get_account(ACCOUNT)).buying_power == 0

    @pytest.mark.parametrize("rate", [Decimal(0), Decimal("-0.5"), Decimal("1.01")])
    def test_margin_rate_outside_zero_to_one_refused(self, rate: Decimal) -> None:
        with pytest.raises(ValueError, match="margin_rate"):
            PaperBroker(ACCOUNT, 0, margin_rate=rate)

    def test_another_account_refused_naming_both(self) -> None:
        with pytest.raises(WrongAccountError, match=r"PaperBroker keeps account 'ACC-1', not 'ACC-9'"):
            asyncio.run(PaperBroker(ACCOUNT, 0).get_account("ACC-9"))


class TestReconcilingBothSides:
    def test_same_fills_on_both_sides_reconcile_clean(
        self, both_sides: tuple[InMemoryPortfolio, PaperBroker]
    ) -> None:
        portfolio, broker = both_sides

        result = compare(snapshot(portfolio, broker), CONFIG)

        assert result.discrepancies == ()
        assert result.positions_checked == 5

    def test_both_sides_report_the_same_balances(
        self, both_sides: tuple[InMemoryPortfolio, PaperBroker]
    ) -> None:
        portfolio, broker = both_sides
        local = portfolio.get_account(ACCOUNT)
        reported = asyncio.run(broker.get_account(ACCOUNT))

        assert (local.cash, local.total_equity) == (reported.cash, reported.total_equity)

    def test_buy_only_the_broker_saw_is_a_quantity_and_cash_mismatch(
        self, both_sides: tuple[InMemoryPortfolio, PaperBroker]
    ) -> None:
        portfolio, broker = both_sides
        local_cash = portfolio.get_account(ACCOUNT).cash
        broker.apply_fill(fill("AAPL", 50, "152.00"))

        quantity, cash = compare(snapshot(portfolio, broker), CONFIG).discrepancies

        assert (quantity.type, quantity.symbol, quantity.local_value, quantity.broker_value) == (
            DiscrepancyType.QUANTITY_MISMATCH,
            "AAPL",
            Decimal(60),
            Decimal(110),
        )
        assert (cash.type, cash.local_value, cash.broker_value) == (
            DiscrepancyType.CASH_MISMATCH,
            local_cash,
            local_cash - Decimal(7_600),
        )

    def test_buy_only_the_broker_saw_in_a_new_symbol_is_missing_local(
        self, both_sides: tuple[InMemoryPortfolio, PaperBroker]
    ) -> None:
        portfolio, broker = both_sides
        broker.apply_fill(fill("NVDA", 10, "140.00"))

        assert breaks(portfolio, broker) == [
            (DiscrepancyType.MISSING_LOCAL, "NVDA"),
            (DiscrepancyType.CASH_MISMATCH, None),
        ]

    def test_buy_the_broker_never_saw_is_missing_broker(
        self, both_sides: tuple[InMemoryPortfolio, PaperBroker]
    ) -> None:
        portfolio, broker = both_sides
        portfolio.apply_fill(fill("NVDA", 10, "140.00"))

        assert breaks(portfolio, broker) == [
            (DiscrepancyType.MISSING_BROKER, "NVDA"),
            (DiscrepancyType.CASH_MISMATCH, None),
        ]

    def test_missed_fill_small_enough_for_the_cash_tolerance_breaks_only_the_position(
        self, both_sides: tuple[InMemoryPortfolio, PaperBroker]
    ) -> None:
        portfolio, broker = both_sides
        broker.apply_fill(fill("PENNY", 10, "0.10"))

        assert breaks(portfolio, broker) == [(DiscrepancyType.MISSING_LOCAL, "PENNY")]

    def test_close_only_the_broker_saw_is_missing_broker(
        self, both_sides: tuple[InMemoryPortfolio, PaperBroker]
    ) -> None:
        portfolio, broker = both_sides
        broker.apply_fill(fill("BTC", "-0.125", "31000"))

        assert breaks(portfolio, broker) == [
            (DiscrepancyType.MISSING_BROKER, "BTC"),
            (DiscrepancyType.CASH_MISMATCH, None),
        ]

    def test_commission_the_local_book_did_not_charge_is_a_cash_mismatch(
        self, both_sides: tuple[InMemoryPortfolio, PaperBroker]
    ) -> None:
        portfolio, broker = both_sides
        portfolio.apply_fill(fill("AAPL", 10, "152.00"))
        broker.apply_fill(fill("AAPL", 10, "152.00", commission="1.50"))

        local_cash = portfolio.get_account(ACCOUNT).cash

        (found,) = compare(snapshot(portfolio, broker), CONFIG).discrepancies

        assert (found.type, found.local_value, found.broker_value) == (
            DiscrepancyType.CASH_MISMATCH,
            local_cash,
            local_cash - Decimal("1.50"),
        )

    def test_fee_within_the_cash_tolerance_is_not_a_break(
        self, both_sides: tuple[InMemoryPortfolio, PaperBroker]
    ) -> None:
        portfolio, broker = both_sides
        broker.adjust_cash(Decimal("-1.00"), "exchange fee")

        assert breaks(portfolio, broker) == []

    def test_dividend_the_local_book_never_saw_is_a_cash_mismatch(
        self, both_sides: tuple[InMemoryPortfolio, PaperBroker]
    ) -> None:
        portfolio, broker = both_sides
        broker.adjust_cash(Decimal("24.00"), "AAPL dividend")

        assert breaks(portfolio, broker) == [(DiscrepancyType.CASH_MISMATCH, None)]

    def test_mark_only_one_side_knows_moves_equity(
        self, both_sides: tuple[InMemoryPortfolio, PaperBroker]
    ) -> None:
        portfolio, broker = both_sides
        broker.set_price("AAPL", Decimal("200.00"))

        assert breaks(portfolio, broker) == [(DiscrepancyType.EQUITY_MISMATCH, None)]


class TestThreadSafety:
    @pytest.fixture(autouse=True)
    def _frequent_thread_switches(self) -> Iterator[None]:
        """Switch threads every microsecond so readers really land between a fill's updates."""
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        yield
        sys.setswitchinterval(interval)

    def test_service_reads_consistent_balances_while_the_engine_books_fills(self) -> None:
        portfolio = InMemoryPortfolio(ACCOUNT, 1_000_000)
        broker = PaperBroker(ACCOUNT, 1_000_000)
        seen: list[tuple[Decimal, Decimal]] = []
        start = threading.Barrier(2)

        def engine() -> None:
            start.wait()
            for _ in range(300):
                each = fill("AAPL", 1, "150.25", commission="0.01")
                portfolio.apply_fill(each)
                broker.apply_fill(each)

        def service() -> None:
            start.wait()
            seen.extend(
                (portfolio.get_account(ACCOUNT).total_equity, asyncio.run(broker.get_account(ACCOUNT)).total_equity)
                for _ in range(300)
            )

        threads = [threading.Thread(target=engine), threading.Thread(target=service)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        booked_only_commissions = {Decimal(1_000_000) - Decimal("0.01") * n for n in range(301)}
        assert len(seen) == 300
        assert all(
            local in booked_only_commissions and reported in booked_only_commissions
            for local, reported in seen
        )
        assert breaks(portfolio, broker) == []


def test_the_paper_brokers_queries_are_async_as_design_md_declares_a_broker() -> None:
    broker = PaperBroker(ACCOUNT, 1_000)
    assert inspect.iscoroutinefunction(broker.get_positions)
    assert inspect.iscoroutinefunction(broker.get_account)
    assert isinstance(broker, BrokerQuery)
