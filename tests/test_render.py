"""How the command line names what a break is about."""

from __future__ import annotations

import pytest

from reconciliation._cli.render import discrepancy_line, subject


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        ({"symbol": "AAPL", "asset_type": "stock", "currency": None}, "AAPL"),
        (
            {"symbol": "AAPL  260116C00190000", "asset_type": "option", "currency": None},
            "AAPL  260116C00190000 (option)",
        ),
        ({"symbol": None, "asset_type": None, "currency": "EUR"}, "EUR"),
        ({"symbol": None, "asset_type": None, "currency": None}, "(account)"),
        ({"symbol": "AAPL"}, "AAPL"),
    ],
    ids=["a stock", "an option", "cash in one currency", "account cash", "a payload from before asset types"],
)
def test_a_break_is_named_by_symbol_asset_type_or_currency(payload: dict[str, str | None], text: str) -> None:
    assert subject(payload) == text


def test_a_discrepancy_line_names_the_asset_type_of_a_non_stock_position() -> None:
    line = discrepancy_line(
        {
            "severity": "critical",
            "type": "quantity_mismatch",
            "symbol": "ESH6",
            "asset_type": "future",
            "local_value": "-1",
            "broker_value": "-2",
        }
    )

    assert "ESH6 (future)" in line.plain
