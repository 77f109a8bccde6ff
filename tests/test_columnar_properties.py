"""The columnar comparison returns what the pure comparator returns, for any pair of books."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pa = pytest.importorskip("pyarrow")
np = pytest.importorskip("numpy")

from reconciliation._columnar.compare import compare_columns  # noqa: E402 - after the extra's check
from reconciliation._columnar.input import (  # noqa: E402
    columns_from_objects,
    columns_from_table,
    rows_as_objects,
)
from reconciliation._domain.compare import Comparison, compare, compare_positions  # noqa: E402
from reconciliation._domain.models import (  # noqa: E402
    AssetType,
    BrokerAccount,
    BrokerPosition,
    LocalAccount,
    Position,
    ReconciliationConfig,
    Snapshot,
)

ACCOUNT = "ACC-1"
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

symbols = st.sampled_from(["AAPL", "AAPL ", "MSFT", "ES", "SPY C450", "Äpfel", "株式", "a", "B"])
asset_types = st.sampled_from(list(AssetType))
small = st.one_of(
    st.just(Decimal(0)),
    st.sampled_from([Decimal("0.000"), Decimal("-0"), Decimal(1), Decimal("1.0"), Decimal("1.00")]),
    st.integers(-50, 50).map(Decimal),
    st.decimals(min_value=-1000, max_value=1000, places=4, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=-1, max_value=1, places=8, allow_nan=False, allow_infinity=False),
)
huge = st.sampled_from(
    [
        Decimal(9223372036854775807),
        Decimal(-4611686018427387905),
        Decimal("9E+28"),
        Decimal("1.000000000000000000001"),
    ]
)
"""Values that do not fit in 62 bits at the common scale: compared by the exact path (and
small enough that the ten a book may net stay within the service's limit of 10**30)."""
quantities = st.one_of(small, huge)
known_costs = st.one_of(
    st.sampled_from([Decimal(100), Decimal("100.00"), Decimal("100.01"), Decimal("99.99"), Decimal(-5)]),
    st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False, allow_infinity=False),
    huge,
)
costs = st.none() | known_costs
"""An average cost, or None: unknown."""
cost_percentages = st.one_of(
    st.sampled_from([Decimal(0), Decimal("0.01"), Decimal(1), Decimal("1E-20"), Decimal("0.0125")]),
    st.decimals(min_value=0, max_value=5, places=4, allow_nan=False, allow_infinity=False),
)
money = st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False, allow_infinity=False)
cash_books = st.none() | st.dictionaries(st.sampled_from(["USD", "EUR", "JPY"]), money, max_size=3)

local_books = st.lists(st.builds(Position, symbols, quantities, costs, asset_types), max_size=10)
broker_books = st.lists(
    st.builds(BrokerPosition, symbols, quantities, costs, money, asset_types), max_size=10
)


@st.composite
def tolerance_boundaries(
    draw: st.DrawFn,
) -> tuple[list[Position], list[BrokerPosition], ReconciliationConfig]:
    """Costs exactly at the tolerance, or one unit of their last digit inside or outside it."""
    tolerance = draw(st.sampled_from([Decimal("0.01"), Decimal("0.5"), Decimal(1), Decimal("0.0125")]))
    books: tuple[list[Position], list[BrokerPosition]] = ([], [])
    for index in range(draw(st.integers(1, 6))):
        reported = draw(
            st.decimals(min_value=1, max_value=10_000, places=2, allow_nan=False, allow_infinity=False)
        )
        edge = reported + reported * tolerance / 100
        nudge = draw(st.sampled_from([Decimal(0), Decimal("1E-8"), Decimal("-1E-8")]))
        quantity = draw(st.integers(1, 100).map(Decimal))
        books[0].append(Position(f"S{index}", quantity, edge + nudge))
        books[1].append(BrokerPosition(f"S{index}", quantity, reported, Decimal(0)))
    return books[0], books[1], ReconciliationConfig(ACCOUNT, cost_tolerance_pct=tolerance)


def as_compared(comparison: Comparison) -> tuple[object, ...]:
    """Everything a comparison says, values as their exact text (digits and exponent)."""
    return (
        tuple(
            (d.type, d.severity, d.symbol, d.asset_type, d.currency, str(d.local_value), str(d.broker_value))
            for d in comparison.discrepancies
        ),
        comparison.netted,
        comparison.positions_checked,
        comparison.discrepancies,
    )


def in_columns(
    local: list[Position], broker: list[BrokerPosition], config: ReconciliationConfig
) -> Comparison:
    return compare_columns(
        columns_from_objects(local, "local"),
        columns_from_objects(broker, "broker"),
        account_id=ACCOUNT,
        timestamp=NOW,
        config=config,
    )


def as_objects(
    local: list[Position], broker: list[BrokerPosition], config: ReconciliationConfig
) -> Comparison:
    return compare_positions(local, broker, account_id=ACCOUNT, timestamp=NOW, config=config)


def arrow_table(
    entries: list[Position] | list[BrokerPosition], *, scale: int | None, rows_per_chunk: int
) -> object:
    """The book as an Arrow batch: decimal columns of that scale, or decimal text (scale None),
    in chunks of `rows_per_chunk` rows (as a Parquet file is read).

    At scale 25 most values do not fit in 62 bits and take the exact path."""

    def column(values: list[Decimal | None]) -> object:
        if scale is None:
            return pa.array([None if v is None else format(v, "f") for v in values], pa.string())
        return pa.array(values, pa.decimal128(38, scale) if scale <= 18 else pa.decimal256(76, scale))

    columns = {
        "symbol": pa.array([e.symbol for e in entries], pa.string()),
        "quantity": column([e.quantity for e in entries]),
        "avg_cost": column([e.avg_cost for e in entries]),
        "asset_type": pa.array([e.asset_type.value for e in entries], pa.string()).dictionary_encode(),
    }
    if entries and isinstance(entries[0], BrokerPosition):
        columns["market_value"] = column([e.market_value for e in entries])
    table = pa.table(columns)
    return pa.Table.from_batches(table.to_batches(max_chunksize=rows_per_chunk), schema=table.schema)


fits_arrow = st.builds(
    Position,
    symbols,
    small,
    st.none() | st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False, allow_infinity=False),
    asset_types,
)


@PROPERTY
@given(local_books, broker_books, cost_percentages)
def test_columns_made_from_objects_compare_exactly_as_the_objects(
    local: list[Position], broker: list[BrokerPosition], tolerance: Decimal
) -> None:
    config = ReconciliationConfig(ACCOUNT, cost_tolerance_pct=tolerance)

    assert as_compared(in_columns(local, broker, config)) == as_compared(as_objects(local, broker, config))


@PROPERTY
@given(
    st.lists(fits_arrow, max_size=10),
    st.lists(fits_arrow, max_size=10),
    cost_percentages,
    st.sampled_from([None, 8, 25]),
    st.integers(1, 4),
)
def test_an_arrow_batch_compares_exactly_as_the_positions_it_holds(
    local: list[Position],
    broker_like: list[Position],
    tolerance: Decimal,
    scale: int | None,
    rows_per_chunk: int,
) -> None:
    broker = [BrokerPosition(p.symbol, p.quantity, p.avg_cost, Decimal(0), p.asset_type) for p in broker_like]
    config = ReconciliationConfig(ACCOUNT, cost_tolerance_pct=tolerance)
    local_columns = columns_from_table(
        arrow_table(local, scale=scale, rows_per_chunk=rows_per_chunk), "local", call="local"
    )
    broker_columns = columns_from_table(
        arrow_table(broker, scale=scale, rows_per_chunk=rows_per_chunk), "broker", call="broker"
    )
    held = rows_as_objects(local_columns, np.arange(len(local_columns)))
    reported = rows_as_objects(broker_columns, np.arange(len(broker_columns)))

    found = compare_columns(local_columns, broker_columns, account_id=ACCOUNT, timestamp=NOW, config=config)

    assert as_compared(found) == as_compared(as_objects(held, reported, config))


@PROPERTY
@given(tolerance_boundaries())
def test_costs_at_the_tolerance_boundary_are_judged_alike(
    books: tuple[list[Position], list[BrokerPosition], ReconciliationConfig],
) -> None:
    local, broker, config = books

    assert as_compared(in_columns(local, broker, config)) == as_compared(as_objects(local, broker, config))


accounts = st.tuples(
    st.builds(LocalAccount, st.just(ACCOUNT), money, money, cash_by_currency=cash_books),
    st.builds(
        BrokerAccount, st.just(ACCOUNT), money, st.just(0), money, st.just(0), cash_by_currency=cash_books
    ),
)


@PROPERTY
@given(local_books, broker_books, accounts, cost_percentages)
def test_a_snapshot_in_columns_compares_exactly_as_in_objects(
    local: list[Position],
    broker: list[BrokerPosition],
    balances: tuple[LocalAccount, BrokerAccount],
    tolerance: Decimal,
) -> None:
    config = ReconciliationConfig(
        ACCOUNT, cost_tolerance_pct=tolerance, cash_tolerance_by_currency={"JPY": 100}
    )
    objects = Snapshot(ACCOUNT, local, balances[0], broker, balances[1], NOW)
    columns = Snapshot(
        ACCOUNT,
        columns_from_objects(local, "local"),
        balances[0],
        columns_from_objects(broker, "broker"),
        balances[1],
        NOW,
    )

    assert as_compared(compare(columns, config)) == as_compared(compare(objects, config))
