"""Properties the comparator keeps for any pair of books, checked with hypothesis."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

import attrs
from hypothesis import given
from hypothesis import strategies as st

from reconciliation._domain.compare import Comparison, compare_accounts, compare_positions, net_in_chunks
from reconciliation._domain.models import (
    AssetType,
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
asset_types = st.sampled_from([AssetType.STOCK, AssetType.OPTION, AssetType.FUTURE])
quantities = st.one_of(
    st.just(Decimal(0)),
    st.integers(-50, 50).map(Decimal),
    st.decimals(min_value=-1000, max_value=1000, places=4, allow_nan=False, allow_infinity=False),
)
known_costs = st.one_of(
    st.sampled_from([Decimal(100), Decimal("100.00"), Decimal("100.01")]),
    st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False, allow_infinity=False),
)
costs = st.none() | known_costs
"""An average cost, or None: unknown."""
money = st.decimals(min_value=-(10**15), max_value=10**15, places=2, allow_nan=False, allow_infinity=False)
gaps = st.one_of(
    st.sampled_from([Decimal(0), Decimal("1.00"), Decimal("-1.00"), Decimal("0.01")]),
    st.decimals(min_value=-2000, max_value=2000, places=2, allow_nan=False, allow_infinity=False),
)
"""How far the local figure is from the broker's: mostly near the tolerances."""
tolerances = st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False, allow_infinity=False)
percentages = st.decimals(min_value=0, max_value=5, places=3, allow_nan=False, allow_infinity=False)

local_positions = st.lists(st.builds(Position, symbols, quantities, costs, asset_types), max_size=8)
broker_positions = st.lists(
    st.builds(BrokerPosition, symbols, quantities, costs, money, asset_types), max_size=8
)
cost_percentages = st.one_of(
    st.sampled_from([Decimal(0), Decimal("0.01"), Decimal(1)]),
    st.decimals(min_value=0, max_value=5, places=4, allow_nan=False, allow_infinity=False),
)
currencies = st.sampled_from(["USD", "EUR", "JPY", "BTC"])
cash_books = st.dictionaries(currencies, money, max_size=4)


def key(entry: Position | BrokerPosition | Discrepancy) -> tuple[str | None, AssetType | None]:
    return (entry.symbol, entry.asset_type)


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
def test_at_most_one_position_discrepancy_per_symbol_and_asset_type(
    held: list[Position], reported: list[BrokerPosition]
) -> None:
    per_position = Counter(key(d) for d in join(held, reported).discrepancies)

    assert all(count == 1 for count in per_position.values())


@given(local_positions, broker_positions)
def test_position_discrepancies_only_of_position_types_sorted_by_symbol(
    held: list[Position], reported: list[BrokerPosition]
) -> None:
    found = join(held, reported).discrepancies

    assert {d.type for d in found} <= POSITION_TYPES
    assert [d.symbol for d in found] == sorted(d.symbol for d in found if d.symbol is not None)
    assert all(d.asset_type is not None for d in found)


@given(st.data(), local_positions, broker_positions)
def test_result_independent_of_input_order(
    data: st.DataObject, held: list[Position], reported: list[BrokerPosition]
) -> None:
    shuffled_held = data.draw(st.permutations(held))
    shuffled_reported = data.draw(st.permutations(reported))

    assert join(shuffled_held, shuffled_reported) == join(held, reported)


@given(local_positions, broker_positions)
def test_every_position_on_either_side_counted(held: list[Position], reported: list[BrokerPosition]) -> None:
    positions_seen = {key(p) for p in held} | {key(p) for p in reported}

    assert join(held, reported).positions_checked == len(positions_seen)


@given(local_positions, broker_positions)
def test_each_discrepancy_names_a_position_of_its_side(
    held: list[Position], reported: list[BrokerPosition]
) -> None:
    for found in join(held, reported).discrepancies:
        if found.type is DiscrepancyType.MISSING_LOCAL:
            assert key(found) in {key(p) for p in reported if p.quantity}
        else:
            assert key(found) in {key(p) for p in held if p.quantity}


@given(local_positions, asset_types)
def test_a_book_reported_under_another_asset_type_is_missing_on_both_sides(
    held: list[Position], other: AssetType
) -> None:
    kept = [p for p in held if p.asset_type is not other]
    relabelled = [as_broker(attrs.evolve(p, asset_type=other)) for p in kept]

    found = {(d.type, key(d)) for d in join(kept, relabelled).discrepancies}

    held_here = {k for k, quantity in net_quantities(kept).items() if quantity}
    held_there = {k for k, quantity in net_quantities(relabelled).items() if quantity}
    assert found == {(DiscrepancyType.MISSING_BROKER, k) for k in held_here} | {
        (DiscrepancyType.MISSING_LOCAL, k) for k in held_there
    }


def net_quantities(
    entries: list[Position] | list[BrokerPosition],
) -> dict[tuple[str | None, AssetType | None], Decimal]:
    net: dict[tuple[str | None, AssetType | None], Decimal] = {}
    for entry in entries:
        net[key(entry)] = net.get(key(entry), Decimal(0)) + entry.quantity
    return net


@given(local_positions, broker_positions, st.data())
def test_forgetting_a_cost_never_adds_a_discrepancy(
    held: list[Position], reported: list[BrokerPosition], data: st.DataObject
) -> None:
    forgotten = data.draw(st.lists(st.booleans(), min_size=len(held), max_size=len(held)))
    vaguer = [
        attrs.evolve(p, avg_cost=None) if forget else p for p, forget in zip(held, forgotten, strict=True)
    ]

    before = {(d.type, key(d)) for d in join(held, reported).discrepancies}
    after = {(d.type, key(d)) for d in join(vaguer, reported).discrepancies}

    assert after <= before


@given(local_positions, broker_positions)
def test_no_cost_mismatch_where_a_side_does_not_know_the_cost(
    held: list[Position], reported: list[BrokerPosition]
) -> None:
    unknown = {key(p) for p in [*held, *reported] if p.avg_cost is None}

    found = join(held, reported).discrepancies

    assert not [d for d in found if d.type is DiscrepancyType.COST_MISMATCH and key(d) in unknown]


@given(symbols, quantities.filter(bool), known_costs, known_costs, cost_percentages)
def test_cost_flagged_exactly_when_the_gap_exceeds_the_tolerance(
    symbol: str, quantity: Decimal, local_cost: Decimal, broker_cost: Decimal, pct: Decimal
) -> None:
    config = ReconciliationConfig(ACCOUNT, cost_tolerance_pct=pct)

    found = join(
        [Position(symbol, quantity, local_cost)], [BrokerPosition(symbol, quantity, broker_cost, 0)], config
    )

    assert bool(found.discrepancies) == (abs(local_cost - broker_cost) * 100 > abs(broker_cost) * pct)


@given(local_positions, broker_positions, cost_percentages, cost_percentages)
def test_widening_the_cost_tolerance_never_adds_a_discrepancy(
    held: list[Position], reported: list[BrokerPosition], pct: Decimal, widening: Decimal
) -> None:
    narrow = join(held, reported, ReconciliationConfig(ACCOUNT, cost_tolerance_pct=pct))
    wide = join(held, reported, ReconciliationConfig(ACCOUNT, cost_tolerance_pct=pct + widening))

    assert set(wide.discrepancies) <= set(narrow.discrepancies)


def cash_breaks(
    local_cash: dict[str, Decimal], broker_cash: dict[str, Decimal], config: ReconciliationConfig = CONFIG
) -> tuple[Discrepancy, ...]:
    return compare_accounts(
        LocalAccount(ACCOUNT, 0, 0, cash_by_currency=local_cash),
        BrokerAccount(ACCOUNT, 0, 0, 0, 0, cash_by_currency=broker_cash),
        account_id=ACCOUNT,
        timestamp=NOW,
        config=config,
    )


@given(cash_books, cash_books, tolerances, st.dictionaries(currencies, tolerances, max_size=2))
def test_cash_by_currency_flagged_exactly_where_a_currency_differs_beyond_its_tolerance(
    local_cash: dict[str, Decimal],
    broker_cash: dict[str, Decimal],
    tolerance: Decimal,
    by_currency: dict[str, Decimal],
) -> None:
    config = ReconciliationConfig(ACCOUNT, cash_tolerance=tolerance, cash_tolerance_by_currency=by_currency)
    expected = sorted(
        currency
        for currency in set(local_cash) | set(broker_cash)
        if abs(local_cash.get(currency, 0) - broker_cash.get(currency, 0))
        > by_currency.get(currency, tolerance)
    )

    found = cash_breaks(local_cash, broker_cash, config)

    assert [d.currency for d in found] == expected
    assert {d.type for d in found} <= {DiscrepancyType.CASH_MISMATCH}


@given(cash_books, money, money)
def test_cash_by_currency_ignores_the_single_cash_figures(
    held: dict[str, Decimal], local_cash: Decimal, broker_cash: Decimal
) -> None:
    found = compare_accounts(
        LocalAccount(ACCOUNT, local_cash, 0, cash_by_currency=held),
        BrokerAccount(ACCOUNT, broker_cash, 0, 0, 0, cash_by_currency=held),
        account_id=ACCOUNT,
        timestamp=NOW,
        config=CONFIG,
    )

    assert found == ()


@given(cash_books, cash_books)
def test_swapping_sides_mirrors_every_per_currency_cash_mismatch(
    local_cash: dict[str, Decimal], broker_cash: dict[str, Decimal]
) -> None:
    forward = cash_breaks(local_cash, broker_cash)
    backward = cash_breaks(broker_cash, local_cash)

    assert [(d.currency, d.broker_value, d.local_value) for d in forward] == [
        (d.currency, d.local_value, d.broker_value) for d in backward
    ]


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


def netted_whole(side: list[Position] | list[BrokerPosition]) -> list[Position] | list[BrokerPosition]:
    """Every entry of a side netted in one pass, repeated or not: what the comparison did
    before it netted only the repeated keys."""
    by_key, _ = net_in_chunks((side,), "local")
    return list(by_key.values())


@given(local_positions, broker_positions, st.lists(st.integers(0, 7), max_size=6), st.booleans())
def test_netting_only_the_repeated_keys_finds_what_netting_every_entry_finds(
    held: list[Position], reported: list[BrokerPosition], listed_twice: list[int], pausing: bool
) -> None:
    """Entries whose position is listed once are taken as they are, the others netted; the
    same object listed twice is netted as two entries."""
    held = held + [held[i] for i in listed_twice if i < len(held)]
    reported = reported + [reported[i] for i in listed_twice if i < len(reported)]
    pause = (lambda: None) if pausing else None

    found = compare_positions(held, reported, account_id=ACCOUNT, timestamp=NOW, config=CONFIG, pause=pause)

    expected = join(netted_whole(held), netted_whole(reported))  # type: ignore[arg-type]
    assert found.discrepancies == expected.discrepancies
    assert found.positions_checked == expected.positions_checked
