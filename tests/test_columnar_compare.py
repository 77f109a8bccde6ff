"""When the columnar comparison runs, what it leaves to the exact path, and how it yields the GIL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

pa = pytest.importorskip("pyarrow")

from reconciliation._columnar import compare as columnar_compare  # noqa: E402 - after the extra's check
from reconciliation._columnar.input import columns_from_objects  # noqa: E402
from reconciliation._domain import compare  # noqa: E402
from reconciliation._domain.models import (  # noqa: E402
    AssetType,
    BrokerAccount,
    BrokerPosition,
    DiscrepancyType,
    LocalAccount,
    NettedSymbol,
    Position,
    ReconciliationConfig,
    Snapshot,
)

ACCOUNT = "ACC-1"
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
CONFIG = ReconciliationConfig(ACCOUNT)


def snapshot(local: Any, broker: Any) -> Snapshot:
    return Snapshot(
        ACCOUNT, local, LocalAccount(ACCOUNT, 0, 0), broker, BrokerAccount(ACCOUNT, 0, 0, 0, 0), NOW
    )


def held(symbol: str, quantity: Decimal | int | str, cost: Decimal | str | None = "10") -> Position:
    return Position(symbol, quantity, cost)


def reported(symbol: str, quantity: Decimal | int | str, cost: Decimal | str | None = "10") -> BrokerPosition:
    return BrokerPosition(symbol, quantity, cost, 0)


class ExactPathSpy:
    """Records the positions the columnar comparison hands to the pure comparator."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.given: list[tuple[list[str], list[str]]] = []
        pure = columnar_compare.compare_positions

        def spy(local: Any, broker: Any, **kwargs: Any) -> Any:
            self.given.append(([p.symbol for p in local], [p.symbol for p in broker]))
            return pure(local, broker, **kwargs)

        monkeypatch.setattr(columnar_compare, "compare_positions", spy)

    def symbols(self) -> set[str]:
        return {symbol for local, broker in self.given for symbol in local + broker}


def in_columns(
    local: list[Position], broker: list[BrokerPosition], config: ReconciliationConfig = CONFIG
) -> Any:
    return columnar_compare.compare_columns(
        columns_from_objects(local, "local"),
        columns_from_objects(broker, "broker"),
        account_id=ACCOUNT,
        timestamp=NOW,
        config=config,
    )


def test_positions_reported_once_with_values_that_fit_never_take_the_exact_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = ExactPathSpy(monkeypatch)

    found = in_columns([held("AAPL", 10), held("MSFT", 3)], [reported("AAPL", 11), reported("TSLA", 2)])

    assert [(d.type, d.symbol) for d in found.discrepancies] == [
        (DiscrepancyType.QUANTITY_MISMATCH, "AAPL"),
        (DiscrepancyType.MISSING_BROKER, "MSFT"),
        (DiscrepancyType.MISSING_LOCAL, "TSLA"),
    ]
    assert spy.symbols() == set()


def test_a_position_reported_twice_is_netted_by_the_exact_path_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = ExactPathSpy(monkeypatch)

    found = in_columns(
        [held("AAPL", 10, "100"), held("MSFT", 1)],
        [reported("AAPL", 4, "99"), reported("AAPL", 6, "101"), reported("MSFT", 1)],
    )

    assert spy.symbols() == {"AAPL"}
    assert found.netted == (NettedSymbol("broker", "AAPL", 2),)
    assert [(d.type, d.local_value, d.broker_value) for d in found.discrepancies] == [
        (DiscrepancyType.COST_MISMATCH, Decimal(100), Decimal("100.2"))
    ]


def test_values_beyond_62_bits_are_compared_exactly_never_rounded(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = ExactPathSpy(monkeypatch)
    large = Decimal(2**70)

    found = in_columns(
        [held("BTC", large + 1), held("ETH", "1")], [reported("BTC", large), reported("ETH", "1")]
    )

    assert spy.symbols() == {"BTC"}
    assert [(d.symbol, d.local_value, d.broker_value) for d in found.discrepancies] == [
        ("BTC", large + 1, large)
    ]


def test_a_fraction_finer_than_62_bits_hold_at_the_common_scale_is_compared_exactly() -> None:
    just_over_one = Decimal("1." + "0" * 29 + "1")

    found = in_columns([held("DUST", just_over_one)], [reported("DUST", 1)])

    assert [(d.local_value, d.broker_value) for d in found.discrepancies] == [(just_over_one, Decimal(1))]


def test_a_tolerance_too_fine_for_64_bits_is_applied_by_the_exact_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = ExactPathSpy(monkeypatch)
    config = ReconciliationConfig(ACCOUNT, cost_tolerance_pct=Decimal("1E-20"))

    found = in_columns([held("AAPL", 1, "100.01")], [reported("AAPL", 1, "100.00")], config)

    assert spy.symbols() == {"AAPL"}
    assert [d.type for d in found.discrepancies] == [DiscrepancyType.COST_MISMATCH]


def test_the_same_symbol_as_two_asset_types_is_two_positions() -> None:
    found = in_columns(
        [Position("ES", 2, None, AssetType.FUTURE), Position("ES", 2, None, AssetType.OPTION)],
        [BrokerPosition("ES", 2, None, 0, AssetType.FUTURE)],
    )

    assert found.positions_checked == 2
    assert [(d.type, d.asset_type) for d in found.discrepancies] == [
        (DiscrepancyType.MISSING_BROKER, AssetType.OPTION)
    ]


def test_a_snapshot_with_one_side_in_columns_compares_the_other_side_too() -> None:
    columns = columns_from_objects([reported("AAPL", 5)], "broker")

    found = compare.compare(snapshot([held("AAPL", 4)], columns), CONFIG)

    assert [(d.local_value, d.broker_value) for d in found.discrepancies] == [(Decimal(4), Decimal(5))]


def test_books_of_objects_are_compared_as_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = ExactPathSpy(monkeypatch)
    book = [held(f"S{i}", i) for i in range(1, 50)]

    compare.compare(snapshot(book, [reported(p.symbol, p.quantity) for p in book]), CONFIG)

    assert spy.given == []


def test_a_large_comparison_pauses_between_chunks_of_discrepancies() -> None:
    book = [held(f"S{i:05d}", 1) for i in range(3 * compare.CHUNK_SIZE)]
    pauses: list[None] = []

    found = columnar_compare.compare_columns(
        columns_from_objects(book, "local"),
        columns_from_objects([], "broker"),
        account_id=ACCOUNT,
        timestamp=NOW,
        config=CONFIG,
        pause=lambda: pauses.append(None),
    )

    assert len(found.discrepancies) == 3 * compare.CHUNK_SIZE
    assert len(pauses) >= 3
