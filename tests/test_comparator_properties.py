"""Properties the comparator keeps for any pair of books, checked with hypothesis."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from reconciliation._domain.compare import Comparison, compare_accounts, compare_positions
from reconciliation._domain.models import (
    BrokerAccount,
    BrokerPosition,
    Discrepancy,
    DiscrepancyType,
    LocalAccount,
    Position,
    ReconciliationConfig,
)

ACCOUNT = "ACC-1"
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
CONFIG = ReconciliationConfig(ACCOUNT)
POSITION_TYPES = {
    DiscrepancyType.MISSING_LOCAL,
    DiscrepancyType.MISSING_BROKER,
    DiscrepancyType.QUANTITY_MISMATCH,
    DiscrepancyType.COST_MISMATCH,
}
MIRRORED = {
    DiscrepancyType.MISSING_LOCAL: DiscrepancyType.MISSING_BROKER,
    DiscrepancyType.MISSING_BROKER: DiscrepancyType.MISSING_LOCAL,
    DiscrepancyType.QUANTITY_MISMATCH: DiscrepancyType.QUANTITY_MISMATCH,
    DiscrepancyType.COST_MISMATCH: DiscrepancyType.COST_MISMATCH,
}

symbols = st.sampled_from(["AAPL", "MSFT", "TSLA", "BTC", "ES", "SPY C450"])
quantities = st.one_of(
    st.just(Decimal(0)),
    st.integers(-50, 50).map(Decimal),
    st.decimals(min_value=-1000, max_value=1000, places=4, allow_nan=False, allow_infinity=False),
)
costs = st.one_of(
    st.sampled_from([Decimal(100), Decimal("100.00"), Decimal("100.01")]),
    st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False, allow_infinity=False),
)
money = st.decimals(min_value=-(10**15), max_value=10**15, places=2, allow_nan=False, allow_infinity=False)
gaps = st.one_of(
    st.sampled_from([Decimal(0), Decimal("1.00"), Decimal("-1.00"), Decimal("0.01")]),
    st.decimals(min_value=-2000, max_value=2000, places=2, allow_nan=False, allow_infinity=False),
)
"""How far the local figure is from the broker's: mostly near the tolerances."""
tolerances = st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False, allow_infinity=False)
percentages = st.decimals(min_value=0, max_value=5, places=3, allow_nan=False, allow_infinity=False)

local_positions = st.lists(st.builds(Position, symbols, quantities, costs), max_size=8)
broker_positions = st.lists(st.builds(BrokerPosition, symbols, quantities, costs, money), max_size=8)


def as_broker(position: Position) -> BrokerPosition:
    return BrokerPosition(
        position.symbol, position.quantity, position.avg_cost, Decimal(0), position.asset_type
    )


def as_local(position: BrokerPosition) -> Position:
    return Position(position.symbol, position.quantity, position.avg_cost, position.asset_type)


def join(
    local: list[Position], broker: list[BrokerPosition], config: ReconciliationConfig = CONFIG
) -> Comparison:
    return compare_positions(local, broker, account_id=ACCOUNT, timestamp=NOW, config=config)


def balances(
    local_cash: Decimal,
    broker_cash: Decimal,
    local_equity: Decimal,
    broker_equity: Decimal,
    config: ReconciliationConfig,
) -> tuple[Discrepancy, ...]:
    return compare_accounts(
        LocalAccount(ACCOUNT, local_cash, local_equity),
        BrokerAccount(ACCOUNT, broker_cash, Decimal(0), broker_equity, Decimal(0)),
        account_id=ACCOUNT,
        timestamp=NOW,
        config=config,
    )


@given(local_positions, money, money)
def test_identical_books_are_clean(held: list[Position], cash: Decimal, equity: Decimal) -> None:
    positions = join(held, [as_broker(p) for p in held])

    assert positions.discrepancies == ()
    assert balances(cash, cash, equity, equity, CONFIG) == ()


@given(local_positions, broker_positions)
def test_swapping_sides_mirrors_every_position_discrepancy(
    held: list[Position], reported: list[BrokerPosition]
) -> None:
    forward = join(held, reported).discrepancies
    backward = join([as_local(p) for p in reported], [as_broker(p) for p in held]).discrepancies

    assert [(MIRRORED[d.type], d.symbol, d.broker_value, d.local_value) for d in forward] == [
        (d.type, d.symbol, d.local_value, d.broker_value) for d in backward
    ]


@given(money, money)
def test_swapping_sides_mirrors_a_cash_mismatch(local_cash: Decimal, broker_cash: Decimal) -> None:
    forward = balances(local_cash, broker_cash, Decimal(0), Decimal(0), CONFIG)
    backward = balances(broker_cash, local_cash, Decimal(0), Decimal(0), CONFIG)

    assert [(d.type, d.broker_value, d.local_value) for d in forward] == [
        (d.type, d.local_value, d.broker_value) for d in backward
    ]


@given(local_positions, broker_positions)
def test_at_most_one_position_discrepancy_per_symbol(
    held: list[Position], reported: list[BrokerPosition]
) -> None:
    per_symbol = Counter(d.symbol for d in join(held, reported).discrepancies)

    assert all(count == 1 for count in per_symbol.values())


@given(local_positions, broker_positions)
def test_position_discrepancies_only_of_position_types_sorted_by_symbol(
    held: list[Position], reported: list[BrokerPosition]
) -> None:
    found = join(held, reported).discrepancies

    assert {d.type for d in found} <= POSITION_TYPES
    assert [d.symbol for d in found] == sorted(d.symbol for d in found if d.symbol is not None)


@given(st.data(), local_positions, broker_positions)
def test_result_independent_of_input_order(
    data: st.DataObject, held: list[Position], reported: list[BrokerPosition]
) -> None:
    shuffled_held = data.draw(st.permutations(held))
    shuffled_reported = data.draw(st.permutations(reported))

    assert join(shuffled_held, shuffled_reported) == join(held, reported)


@given(local_positions, broker_positions)
def test_every_symbol_on_either_side_counted(held: list[Position], reported: list[BrokerPosition]) -> None:
    symbols_seen = {p.symbol for p in held} | {p.symbol for p in reported}

    assert join(held, reported).positions_checked == len(symbols_seen)


@given(local_positions, broker_positions)
def test_flat_entries_never_reported(held: list[Position], reported: list[BrokerPosition]) -> None:
    flat = [Position(f"FLAT{i}", 0, 1) for i in range(3)]
    flat_reported = [BrokerPosition(f"FLAT{i + 2}", 0, 2, 0) for i in range(3)]

    with_flat = join(held + flat, reported + flat_reported)

    assert with_flat.discrepancies == join(held, reported).discrepancies


@given(money, gaps, money, gaps, tolerances, tolerances, percentages, percentages)
def test_widening_a_tolerance_never_adds_a_discrepancy(
    broker_cash: Decimal,
    cash_gap: Decimal,
    broker_equity: Decimal,
    equity_gap: Decimal,
    cash_tolerance: Decimal,
    cash_widening: Decimal,
    equity_pct: Decimal,
    equity_widening: Decimal,
) -> None:
    narrow = ReconciliationConfig(ACCOUNT, cash_tolerance=cash_tolerance, equity_tolerance_pct=equity_pct)
    wide = ReconciliationConfig(
        ACCOUNT,
        cash_tolerance=cash_tolerance + cash_widening,
        equity_tolerance_pct=equity_pct + equity_widening,
    )
    figures = (broker_cash + cash_gap, broker_cash, broker_equity + equity_gap, broker_equity)

    flagged_narrow = {d.type for d in balances(*figures, narrow)}
    flagged_wide = {d.type for d in balances(*figures, wide)}

    assert flagged_wide <= flagged_narrow


@given(money, gaps, st.sampled_from([Decimal(0), Decimal("1.00"), Decimal("0.01")]) | tolerances)
def test_cash_flagged_exactly_when_the_gap_exceeds_the_tolerance(
    broker_cash: Decimal, gap: Decimal, tolerance: Decimal
) -> None:
    config = ReconciliationConfig(ACCOUNT, cash_tolerance=tolerance)
    flagged = bool(balances(broker_cash + gap, broker_cash, Decimal(0), Decimal(0), config))

    assert flagged == (abs(gap) > tolerance)
