"""Position statements read from CSV and Parquet: exact, mapped, and refused whole when a row is bad."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
np = pytest.importorskip("numpy")

from reconciliation import AssetType, BrokerAccount, BrokerPosition, LocalAccount, Position  # noqa: E402
from reconciliation._columnar.input import rows_as_objects  # noqa: E402 - after the extra's check
from reconciliation.files import (  # noqa: E402
    BalanceColumns,
    Balances,
    ColumnMap,
    StatementBook,
    StatementBroker,
    StatementError,
    read_balances,
    read_positions,
)

PRIME_BROKER = ColumnMap(
    symbol="Symbol",
    quantity="Qty",
    avg_cost="AvgPx",
    asset_type="SecType",
    asset_types={"STK": "stock", "FUT": "future", "OPT": "option"},
    market_value="MktVal",
)
HEADER = "Symbol,Qty,AvgPx,SecType,MktVal,Account"


def write(directory: Path, name: str, *lines: str) -> Path:
    path = directory / name
    path.write_text("\n".join(lines) + "\n")
    return path


def statement(directory: Path, *rows: str, header: str = HEADER) -> Path:
    return write(directory, "positions.csv", header, *rows)


def entries(path: Path, side: str = "broker", columns: ColumnMap = PRIME_BROKER) -> list[Any]:
    read = read_positions(path, side, columns=columns)  # type: ignore[arg-type]
    return rows_as_objects(read, np.arange(len(read)))


def refusal(path: Path, columns: ColumnMap = PRIME_BROKER) -> str:
    with pytest.raises(StatementError) as refused:
        read_positions(path, "broker", columns=columns)
    return str(refused.value)


def test_a_csv_statement_is_read_through_its_column_map_with_the_digits_as_written(tmp_path: Path) -> None:
    path = statement(
        tmp_path, "AAPL,10,187.50,STK,1875.00,U1", "ES,-2,5000,FUT,-500000,U1", "MSFT,0.5,,STK,200,U1"
    )

    assert entries(path) == [
        BrokerPosition("AAPL", 10, Decimal("187.50"), Decimal("1875.00")),
        BrokerPosition("ES", -2, Decimal(5000), Decimal(-500000), AssetType.FUTURE),
        BrokerPosition("MSFT", Decimal("0.5"), None, Decimal(200)),
    ]
    assert [str(p.avg_cost) for p in entries(path)] == ["187.50", "5000", "None"]


def test_a_parquet_statement_with_decimal_columns_is_read(tmp_path: Path) -> None:
    path = tmp_path / "book.parquet"
    pq.write_table(
        pa.table(
            {
                "symbol": ["AAPL", "SPY C450"],
                "quantity": pa.array([Decimal(10), Decimal(-3)], pa.decimal128(18, 0)),
                "avg_cost": pa.array([Decimal("187.5000"), Decimal("2.1500")], pa.decimal128(18, 4)),
                "asset_type": ["stock", "option"],
            }
        ),
        path,
    )

    assert entries(path, "local", ColumnMap(asset_type="asset_type")) == [
        Position("AAPL", 10, Decimal("187.5000")),
        Position("SPY C450", -3, Decimal("2.1500"), AssetType.OPTION),
    ]


def test_a_statement_without_costs_compares_no_cost(tmp_path: Path) -> None:
    path = write(tmp_path, "holdings.csv", "ticker,units", "BTC,0.25")

    assert entries(path, "local", ColumnMap(symbol="ticker", quantity="units", avg_cost=None)) == [
        Position("BTC", Decimal("0.25"), None)
    ]


def test_every_position_may_be_of_one_asset_type(tmp_path: Path) -> None:
    path = write(tmp_path, "futures.csv", "symbol,quantity,avg_cost", "ESZ6,2,5000")

    read = entries(path, "local", ColumnMap(default_asset_type="future"))

    assert [p.asset_type for p in read] == [AssetType.FUTURE]


def test_a_float_looking_quantity_with_too_many_digits_is_refused_naming_row_line_and_column(
    tmp_path: Path,
) -> None:
    float_text = format(Decimal(0.1), "f")  # noqa: RUF032 - the text a float's binary value gives
    path = statement(tmp_path, "AAPL,10,187.50,STK,1875,U1", f"MSFT,{float_text},300,STK,30,U1")

    message = refusal(path)

    assert message.startswith(
        f"{path} row 2 (line 3) (symbol 'MSFT'), column 'Qty': quantity is 0.1000000000"
    )
    assert "a Decimal made from the float 0.1" in message


def test_a_quantity_beyond_any_decimal_column_is_refused_naming_the_row(tmp_path: Path) -> None:
    path = statement(tmp_path, "AAPL," + "9" * 80 + ",1,STK,1,U1")

    assert refusal(path) == (
        f"{path} row 1 (line 2) (symbol 'AAPL'), column 'Qty': '{'9' * 80}' has too many digits: "
        "a value may have at most 76"
    )


def test_a_missing_column_is_refused_naming_it_and_the_columns_there_are(tmp_path: Path) -> None:
    path = statement(tmp_path, "AAPL,10,1,STK,U1", header="Symbol,Quantity,AvgPx,SecType,Account")

    assert refusal(path) == (
        f"{path}: no column 'Qty' (quantity), 'MktVal' (market_value) in this position file; "
        "its columns are 'Symbol', 'Quantity', 'AvgPx', 'SecType', 'Account'"
    )


def test_an_empty_symbol_is_refused_naming_its_row(tmp_path: Path) -> None:
    path = statement(tmp_path, "AAPL,10,1,STK,10,U1", '" ",5,1,STK,5,U1')

    assert refusal(path) == f"{path} row 2 (line 3), column 'Symbol': must not be empty, got ' '"


def test_a_blank_line_is_a_row_without_a_symbol(tmp_path: Path) -> None:
    path = statement(tmp_path, "AAPL,10,1,STK,10,U1", "", "MSFT,5,1,STK,5,U1")

    assert refusal(path) == f"{path} row 2 (line 3), column 'Symbol': missing: every position needs a symbol"


def test_a_duplicate_header_is_refused(tmp_path: Path) -> None:
    path = statement(tmp_path, "AAPL,10,1,STK,10,10", header="Symbol,Qty,AvgPx,SecType,MktVal,Qty")

    assert refusal(path) == f"{path}: the header names column 'Qty' 2 times; each column once"


def test_text_where_a_number_belongs_is_refused_naming_it(tmp_path: Path) -> None:
    path = statement(tmp_path, "AAPL,10,1,STK,10,U1", "MSFT,1 000,1,STK,10,U1")

    assert refusal(path).startswith(
        f"{path} row 2 (line 3) (symbol 'MSFT'), column 'Qty': '1 000' is not a plain decimal number"
    )


def test_a_float_column_of_a_parquet_file_is_refused_naming_the_column(tmp_path: Path) -> None:
    path = tmp_path / "floats.parquet"
    pq.write_table(pa.table({"symbol": ["AAPL"], "quantity": [10.0], "avg_cost": [1.5]}), path)

    with pytest.raises(
        StatementError, match=r"row 1 \(symbol 'AAPL'\), column 'quantity': a double column: "
    ):
        read_positions(path)


def test_an_unknown_asset_type_code_is_refused_listing_the_codes(tmp_path: Path) -> None:
    path = statement(tmp_path, "AAPL,10,1,STK,10,U1", "XAU,1,1,CMDTY,1,U1")

    assert (
        refusal(path)
        == f"{path} row 2 (line 3), column 'SecType': unknown code 'CMDTY'; the codes are 'STK', 'FUT', 'OPT'"
    )


def test_a_row_with_more_fields_than_the_header_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = statement(tmp_path, "AAPL,10,1,STK,10,U1", "MSFT,5,1,STK,5,U1,extra")

    assert refusal(path) == f"{path}: line 3 has 7 fields, the header 6: 'MSFT,5,1,STK,5,U1,extra'"


def test_a_file_that_is_not_there_is_refused_naming_it(tmp_path: Path) -> None:
    assert refusal(tmp_path / "missing.csv").startswith(f"{tmp_path / 'missing.csv'}: cannot be read: ")


def test_a_file_of_unknown_format_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "positions.xlsx", "x")

    assert (
        refusal(path) == f"{path}: cannot tell the format from the suffix '.xlsx'; name it .csv or .parquet"
    )


def test_balances_are_read_from_a_file_of_one_row(tmp_path: Path) -> None:
    path = write(tmp_path, "balances.csv", "Cash,NetLiq,Margin", "1000.50,25000.00,12.5")

    balances = read_balances(
        path, columns=BalanceColumns(cash="Cash", total_equity="NetLiq", margin_used="Margin")
    )

    assert balances == Balances(Decimal("1000.50"), Decimal("25000.00"), margin_used=Decimal("12.5"))


def test_a_balances_file_of_two_rows_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "balances.csv", "cash,total_equity", "1,2", "3,4")

    with pytest.raises(StatementError, match="a balances file has exactly one data row, this one has 2"):
        read_balances(path)


def test_a_bad_balance_is_refused_naming_its_column(tmp_path: Path) -> None:
    path = write(tmp_path, "balances.csv", "cash,total_equity", "1e3,2")

    with pytest.raises(StatementError, match=r"column 'cash': '1e3' is not a plain decimal number"):
        read_balances(path)


def test_a_statement_broker_answers_with_its_positions_and_balances(tmp_path: Path) -> None:
    path = statement(tmp_path, "AAPL,10,187.50,STK,1875.00,U1")

    broker = StatementBroker("U1", path, Balances("1000", "2875"), columns=PRIME_BROKER)

    assert len(broker.get_positions("U1")) == 1
    assert broker.get_account("U1") == BrokerAccount("U1", 1000, 0, 2875, 0)


def test_a_statement_book_answers_for_its_own_account_only(tmp_path: Path) -> None:
    path = write(tmp_path, "book.csv", "symbol,quantity,avg_cost", "AAPL,10,187.50")
    book = StatementBook("ACC-1", path, Balances("1000", "2875"))

    assert book.get_account("ACC-1") == LocalAccount("ACC-1", 1000, 2875)
    with pytest.raises(ValueError, match="StatementBook holds the statement of account 'ACC-1', not 'ACC-2'"):
        book.get_positions("ACC-2")


def test_a_bad_row_refuses_the_whole_statement_before_any_answer(tmp_path: Path) -> None:
    path = statement(tmp_path, "AAPL,10,187.50,STK,1875.00,U1", "MSFT,ten,1,STK,1,U1")

    with pytest.raises(StatementError, match=r"row 2 \(line 3\)"):
        StatementBroker("U1", path, Balances(0, 0), columns=PRIME_BROKER)
