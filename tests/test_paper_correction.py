"""`InMemoryPortfolio.apply_correction`: the paper book as a `CorrectableBook`, by the booking rules."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from helpers import fill

from reconciliation import CorrectableBook, InMemoryPortfolio, PaperBroker, Position
from reconciliation._domain.correction import Correction
from reconciliation._domain.models import AssetType, DiscrepancyType
from reconciliation.paper import StaleCorrectionError, WrongAccountError

ACCOUNT = "ACC-1"
AT = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)


def correction(kind: DiscrepancyType, local: Any, broker: Any, **change: Any) -> Correction:
    position = kind is not DiscrepancyType.CASH_MISMATCH
    return Correction(
        break_id=uuid.uuid4(),
        run_id=uuid.uuid4(),
        account_id=change.pop("account_id", ACCOUNT),
        type=kind,
        symbol=change.pop("symbol", "MSFT") if position else None,
        asset_type=change.pop("asset_type", AssetType.STOCK) if position else None,
        currency=change.pop("currency", None),
        local_value=local,
        broker_value=broker,
        observed_at=AT,
        consecutive_runs=2,
        **change,
    )


@pytest.fixture
def book() -> InMemoryPortfolio:
    held = InMemoryPortfolio(ACCOUNT, Decimal(10_000))
    held.apply_fill(fill("MSFT", 50, "400"))
    return held


def test_the_in_memory_book_can_be_corrected_and_the_paper_broker_cannot() -> None:
    assert isinstance(InMemoryPortfolio(ACCOUNT, Decimal(0)), CorrectableBook)
    assert not isinstance(PaperBroker(ACCOUNT, Decimal(0)), CorrectableBook)


def test_a_missing_position_is_opened_by_its_fill_without_moving_cash(book: InMemoryPortfolio) -> None:
    cash = book.cash

    book.apply_correction(
        correction(
            DiscrepancyType.MISSING_LOCAL,
            None,
            40,
            symbol="NVDA",
            quantity=40,
            price="120.00",
            avg_cost="120.00",
        )
    )

    assert Position("NVDA", 40, Decimal("120.00")) in book.get_positions(ACCOUNT)
    assert book.cash == cash


def test_a_position_the_broker_lacks_is_closed_realising_nothing(book: InMemoryPortfolio) -> None:
    book.apply_correction(correction(DiscrepancyType.MISSING_BROKER, 50, None, quantity=-50, price="400"))

    assert book.get_positions(ACCOUNT) == []
    assert book.realised_pnl == 0


def test_a_quantity_correction_adds_the_difference_and_takes_the_brokers_average_cost(
    book: InMemoryPortfolio,
) -> None:
    book.apply_correction(
        correction(DiscrepancyType.QUANTITY_MISMATCH, 50, 60, quantity=10, price="415.30", avg_cost="402.55")
    )

    assert book.get_positions(ACCOUNT) == [Position("MSFT", 60, Decimal("402.55"))]


def test_a_quantity_correction_without_a_broker_cost_keeps_the_booked_average(
    book: InMemoryPortfolio,
) -> None:
    book.apply_correction(correction(DiscrepancyType.QUANTITY_MISMATCH, 50, 100, quantity=50, price="500"))

    assert book.get_positions(ACCOUNT) == [Position("MSFT", 100, Decimal(450))]


def test_a_cost_correction_sets_the_brokers_average_cost(book: InMemoryPortfolio) -> None:
    book.apply_correction(correction(DiscrepancyType.COST_MISMATCH, 400, "400.01", avg_cost="400.01"))

    assert book.get_positions(ACCOUNT) == [Position("MSFT", 50, Decimal("400.01"))]


def test_a_cash_correction_adds_the_difference_exactly(book: InMemoryPortfolio) -> None:
    book.apply_correction(correction(DiscrepancyType.CASH_MISMATCH, book.cash, "-10000.05", cash="-0.05"))

    assert book.cash == Decimal("-10000.05")


def test_a_correction_derived_before_the_book_moved_is_refused_and_changes_nothing(
    book: InMemoryPortfolio,
) -> None:
    book.apply_fill(fill("MSFT", 5, "410"))
    before = book.state()

    with pytest.raises(StaleCorrectionError, match="the quantity of MSFT is 55, not the 50"):
        book.apply_correction(correction(DiscrepancyType.QUANTITY_MISMATCH, 50, 60, quantity=10, price="415"))

    assert book.state() == before


def test_a_cash_correction_derived_before_cash_moved_is_refused(book: InMemoryPortfolio) -> None:
    with pytest.raises(StaleCorrectionError, match="cash is"):
        book.apply_correction(correction(DiscrepancyType.CASH_MISMATCH, 1, 2, cash=1))


def test_cash_in_a_currency_cannot_be_corrected_in_a_single_balance_book(book: InMemoryPortfolio) -> None:
    with pytest.raises(ValueError, match="keeps one cash balance"):
        book.apply_correction(correction(DiscrepancyType.CASH_MISMATCH, book.cash, 2, cash=1, currency="EUR"))


def test_a_correction_of_another_account_is_refused(book: InMemoryPortfolio) -> None:
    with pytest.raises(WrongAccountError):
        book.apply_correction(
            correction(DiscrepancyType.CASH_MISMATCH, book.cash, 2, cash=1, account_id="ACC-2")
        )


def test_a_position_held_as_another_asset_type_is_not_corrected(book: InMemoryPortfolio) -> None:
    with pytest.raises(ValueError, match="held as a stock"):
        book.apply_correction(
            correction(
                DiscrepancyType.MISSING_LOCAL, None, 1, asset_type=AssetType.OPTION, quantity=1, price=5
            )
        )
