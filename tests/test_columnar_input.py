"""A book's columnar answer is checked as strictly as a list of positions: every bad value is
refused with the call, the row (and its symbol) and the column named."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

pa = pytest.importorskip("pyarrow")
np = pytest.importorskip("numpy")

from reconciliation._columnar.columns import PositionColumns  # noqa: E402
from reconciliation._columnar.input import rows_as_objects  # noqa: E402 - after the extra's check
from reconciliation._domain.compare import compare  # noqa: E402
from reconciliation._domain.models import (  # noqa: E402
    AssetType,
    BrokerAccount,
    BrokerPosition,
    LocalAccount,
    Position,
    ReconciliationConfig,
    Snapshot,
)
from reconciliation._runtime.snapshot import SnapshotError, parse_positions  # noqa: E402

ACCOUNT = "ACC-1"
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
CALL = "broker.get_positions"


def batch(**columns: Any) -> Any:
    """A broker's batch: AAPL 10 @ 187.50 and MSFT -5 @ unknown, unless a column is replaced."""
    values: dict[str, Any] = {
        "symbol": pa.array(["AAPL", "MSFT"]),
        "quantity": pa.array([Decimal(10), Decimal(-5)], pa.decimal128(18, 0)),
        "avg_cost": pa.array([Decimal("187.50"), None], pa.decimal128(18, 2)),
        "market_value": pa.array([Decimal("1875.00"), Decimal("-2100.00")], pa.decimal128(18, 2)),
    }
    values.update(columns)
    return pa.table({name: column for name, column in values.items() if column is not None})


def parse(raw: Any, cls: type = BrokerPosition) -> Any:
    return parse_positions(cls, raw, call=CALL if cls is BrokerPosition else "local.get_positions")


def as_objects(columns: PositionColumns) -> list[Any]:
    return rows_as_objects(columns, np.arange(len(columns)))


def refusal(raw: Any) -> str:
    with pytest.raises(SnapshotError) as refused:
        parse(raw)
    return str(refused.value)


def test_an_arrow_table_becomes_the_positions_it_holds() -> None:
    assert as_objects(parse(batch())) == [
        BrokerPosition("AAPL", 10, Decimal("187.50"), Decimal("1875.00")),
        BrokerPosition("MSFT", -5, None, Decimal("-2100.00")),
    ]


def test_a_record_batch_is_read_like_a_table() -> None:
    record_batch = batch().to_batches()[0]

    assert len(parse(record_batch)) == 2


def test_a_polars_dataframe_is_read_with_its_string_view_and_decimal_columns() -> None:
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame(
        {
            "symbol": ["ES", "AAPL"],
            "quantity": pl.Series([Decimal(2), Decimal("0.5")], dtype=pl.Decimal(18, 1)),
            "avg_cost": pl.Series([Decimal(5000), None], dtype=pl.Decimal(18, 2)),
            "asset_type": ["future", "stock"],
        }
    )

    assert as_objects(parse(frame, Position)) == [
        Position("ES", Decimal("2.0"), Decimal("5000.00"), AssetType.FUTURE),
        Position("AAPL", Decimal("0.5"), None),
    ]


def test_integer_quantities_are_exact() -> None:
    huge = 2**63 - 1

    columns = parse(batch(quantity=pa.array([huge, -5], pa.int64())))

    assert [p.quantity for p in as_objects(columns)] == [Decimal(huge), Decimal(-5)]


def test_decimal_text_keeps_the_digits_it_was_written_with() -> None:
    columns = parse(batch(quantity=pa.array(["10", "-5.250"]), avg_cost=pa.array(["187.5", None])))

    assert [(str(p.quantity), str(p.avg_cost)) for p in as_objects(columns)] == [
        ("10", "187.5"),
        ("-5.250", "None"),
    ]


def test_an_asset_type_column_names_each_positions_type() -> None:
    columns = parse(batch(asset_type=pa.array(["option", "swap"]).dictionary_encode()))

    assert [p.asset_type for p in as_objects(columns)] == [AssetType.OPTION, AssetType.SWAP]


def test_a_batch_of_another_type_than_a_table_is_not_read_as_a_list() -> None:
    class Columns:
        def __arrow_c_stream__(self, requested_schema: object = None) -> object:
            msg = "the stream broke"
            raise RuntimeError(msg)

    with pytest.raises(RuntimeError, match="the stream broke"):
        parse(Columns())


def test_a_float_quantity_column_is_refused_naming_the_row_and_the_column() -> None:
    message = refusal(batch(quantity=pa.array([10.0, 0.1])))

    assert message.startswith(f"{CALL} row 0 (symbol 'AAPL'), column 'quantity': a double column:")
    assert "float" in message


def test_a_missing_quantity_is_refused_naming_the_row_and_its_symbol() -> None:
    message = refusal(batch(quantity=pa.array([Decimal(10), None], pa.decimal128(18, 0))))

    assert message == f"{CALL} row 1 (symbol 'MSFT'), column 'quantity': missing: every position needs one"


def test_a_blank_symbol_is_refused_naming_its_row() -> None:
    message = refusal(batch(symbol=pa.array(["AAPL", " \u3000"])))

    assert message == f"{CALL} row 1, column 'symbol': must not be empty, got ' \\u3000'"


def test_a_missing_symbol_is_refused_naming_its_row() -> None:
    assert refusal(batch(symbol=pa.array([None, "MSFT"]))) == (
        f"{CALL} row 0, column 'symbol': missing: every position needs a symbol"
    )


def test_symbols_of_other_scripts_are_not_blank() -> None:
    assert len(parse(batch(symbol=pa.array(["株式", "Äpfel"])))) == 2


def test_an_unknown_asset_type_is_refused_listing_the_known_ones() -> None:
    message = refusal(batch(asset_type=pa.array(["stock", "bond"])))

    assert message == (
        f"{CALL} row 1 (symbol 'MSFT'), column 'asset_type': unknown asset type 'bond'; "
        "known: crypto, future, option, other, stock, swap"
    )


def test_a_column_given_twice_is_refused() -> None:
    table = pa.Table.from_arrays(
        [pa.array(["AAPL"]), pa.array([1]), pa.array([1]), pa.array([2])],
        names=["symbol", "quantity", "avg_cost", "quantity"],
    )

    assert refusal(table) == f"{CALL}: column 'quantity' appears 2 times; each column once"


def test_a_missing_column_is_refused_naming_the_columns_there_are() -> None:
    message = refusal(batch(avg_cost=None))

    assert message == (
        f"{CALL}: no column 'avg_cost' (the columns are 'symbol', 'quantity', 'market_value'; "
        "see docs/configuration.md)"
    )


def test_text_that_is_not_a_plain_decimal_is_refused_naming_it() -> None:
    message = refusal(batch(quantity=pa.array(["10", "1,000"])))

    assert message.startswith(
        f"{CALL} row 1 (symbol 'MSFT'), column 'quantity': '1,000' is not a plain decimal number"
    )


def test_a_decimal_made_from_a_float_is_refused_as_a_field_would_be() -> None:
    made_from_float = Decimal(0.1)  # noqa: RUF032 - the point: a float's binary error, kept

    message = refusal(batch(avg_cost=pa.array([made_from_float, None], pa.decimal256(76, 60))))

    assert message.startswith(f"{CALL} row 0 (symbol 'AAPL'), column 'avg_cost': avg_cost is ")
    assert "a Decimal made from the float" in message


def test_float_looking_text_with_too_many_digits_is_refused_naming_the_row() -> None:
    message = refusal(batch(quantity=pa.array(["10", "0." + "1" * 80])))

    assert message.startswith(f"{CALL} row 1 (symbol 'MSFT'), column 'quantity': '0.1111")
    assert message.endswith("has too many digits: a value may have at most 76")


def test_a_long_fraction_and_a_large_number_that_no_column_holds_together_are_refused_naming_both() -> None:
    message = refusal(batch(quantity=pa.array(["1" * 40, "0." + "1" * 40])))

    assert message.startswith(f"{CALL} row 1 (symbol 'MSFT'), column 'quantity': '0.1111")
    assert message.endswith(
        "has 40 digits after the point and row 0 ('" + "1" * 40 + "') 40 before it: "
        "together more than the 76 digits a column holds"
    )


def test_text_of_a_float_written_out_in_full_is_refused_as_a_decimal_made_from_it() -> None:
    written_out = format(Decimal(1.1), "f")  # noqa: RUF032 - the text a float gives when written out in full
    message = refusal(batch(quantity=pa.array([written_out, "2"])))

    assert message.startswith(
        f"{CALL} row 0 (symbol 'AAPL'), column 'quantity': quantity is 1.1000000000000000888"
    )
    assert "a Decimal made from the float 1.1" in message


def test_a_boolean_column_is_refused_naming_its_type() -> None:
    assert refusal(batch(quantity=pa.array([True, False]))) == (
        f"{CALL}, column 'quantity': expected decimals, integers or decimal text, got a bool column"
    )


def test_a_local_book_may_leave_market_values_out() -> None:
    columns = parse(batch(market_value=None), Position)

    assert as_objects(columns)[0] == Position("AAPL", 10, Decimal("187.50"))


def test_a_broker_batch_may_leave_market_values_out() -> None:
    assert parse(batch(market_value=None)).market_values is None


def test_a_snapshot_of_a_checked_batch_compares_with_the_values_as_given() -> None:
    reported = parse(batch(quantity=pa.array(["10.0", "-5"])))
    held = [Position("AAPL", 12, Decimal("187.50"))]
    snapshot = Snapshot(
        ACCOUNT,
        held,
        LocalAccount(ACCOUNT, 0, 0),
        reported,
        BrokerAccount(ACCOUNT, 0, 0, 0, 0),
        NOW,
    )

    found = compare(snapshot, ReconciliationConfig(ACCOUNT)).discrepancies

    assert [(d.type.value, d.symbol, str(d.local_value), str(d.broker_value)) for d in found] == [
        ("quantity_mismatch", "AAPL", "12", "10.0"),
        ("missing_local", "MSFT", "None", "-5"),
    ]


def test_columns_checked_for_one_side_are_taken_by_the_other_as_its_own_kind_of_position() -> None:
    reported = parse(batch())

    held = parse(reported, Position)

    assert as_objects(held) == [Position("AAPL", 10, Decimal("187.50")), Position("MSFT", -5, None)]


@pytest.mark.parametrize(
    "quantity",
    [
        pa.array([Decimal(10), Decimal("1E+30")], pa.decimal256(40, 0)),
        pa.array(["10", "1" + "0" * 30]),
        pa.array(["10", "0." + "0" * 60 + "1"]),
    ],
    ids=["decimal-of-31-digits", "text-of-31-digits", "text-of-61-places"],
)
def test_a_figure_past_the_services_limits_is_refused_as_an_objects_would_be(quantity: Any) -> None:
    message = refusal(batch(quantity=quantity))

    assert message.startswith(f"{CALL} row 1 (symbol 'MSFT'), column 'quantity': quantity is ")
    assert "less than 10**30 in magnitude and at most 60 decimal places" in message


def test_a_symbol_longer_than_the_services_limit_is_refused_naming_its_row() -> None:
    message = refusal(batch(symbol=pa.array(["AAPL", "M" * 257])))

    assert message.startswith(f"{CALL} row 1, column 'symbol': is 257 characters long")
