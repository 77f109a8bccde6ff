"""Statements are bounded: rows, distinct symbols, rows of one symbol and the size of a cell,
each refused (exit 2, naming the limit) before it costs the memory it would.

bench/statement_attacks.py measures the files of issue 25 (a million rows of one symbol in
11 kB of Parquet, every position a break, four million rows, a symbol that expands to
gigabytes): docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from reconciliation import BrokerPosition, Position, ReconciliationConfig  # noqa: E402 - after the extra's check
from reconciliation._cli.main import main  # noqa: E402 - after the extra's check
from reconciliation._columnar.input import columns_from_objects  # noqa: E402 - after the extra's check
from reconciliation._domain.compare import compare_positions  # noqa: E402 - after the extra's check
from reconciliation.files import MAX_CELL_BYTES, StatementError, StatementLimits, read_positions  # noqa: E402 - after the extra's check

NOW = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


def csv_file(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("symbol,quantity,avg_cost\n" + "".join(f"{symbol},{quantity},\n" for symbol, quantity in rows))
    return path


def check(tmp_path: Path, broker: Path, limits: str = "") -> Result:
    book = csv_file(tmp_path / "book.csv", [("AAPL", "1")])
    arguments = ["check", "--local", str(book), "--broker", str(broker)]
    if limits:
        config = tmp_path / "check.toml"
        config.write_text(f"[limits]\n{limits}")
        arguments += ["--config", str(config)]
    return CliRunner().invoke(main, arguments)


def test_the_limits_have_documented_defaults() -> None:
    assert StatementLimits() == StatementLimits(max_rows=2_000_000, max_symbols=1_000_000, max_entries_per_symbol=1_000)
    assert MAX_CELL_BYTES == 1_024


def test_a_parquet_file_of_more_rows_than_allowed_is_refused_from_its_metadata(tmp_path: Path) -> None:
    statement = tmp_path / "eod.parquet"
    pq.write_table(pa.table({"symbol": [f"S{i}" for i in range(5)], "quantity": [1] * 5, "avg_cost": [None] * 5}), statement)

    ran = check(tmp_path, statement, "max_rows = 4\n")

    assert ran.exit_code == 2, ran.output
    assert f"{statement}: 5 rows: a statement may have at most 4 (limits.max_rows;" in ran.output


def test_a_csv_file_is_refused_at_its_first_row_past_the_limit(tmp_path: Path) -> None:
    statement = csv_file(tmp_path / "eod.csv", [(f"S{i}", "1") for i in range(5)])

    ran = check(tmp_path, statement, "max_rows = 4\n")

    assert ran.exit_code == 2, ran.output
    assert f"{statement}: more than 4 rows: a statement may have at most 4 (limits.max_rows;" in ran.output


def test_more_distinct_symbols_than_allowed_are_refused(tmp_path: Path) -> None:
    statement = csv_file(tmp_path / "eod.csv", [(f"S{i}", "1") for i in range(4)])

    ran = check(tmp_path, statement, "max_symbols = 3\n")

    assert ran.exit_code == 2, ran.output
    assert f"{statement}: 4 distinct symbols: a statement may have at most 3 (limits.max_symbols;" in ran.output


def test_one_symbol_listed_more_often_than_allowed_is_refused_naming_it(tmp_path: Path) -> None:
    statement = csv_file(tmp_path / "eod.csv", [("MSFT", "1"), *[("AAPL", "1")] * 4])

    ran = check(tmp_path, statement, "max_entries_per_symbol = 3\n")

    assert ran.exit_code == 2, ran.output
    assert f"{statement}: symbol 'AAPL' has 4 rows: a statement may list one symbol at most 3 times" in ran.output


def test_a_symbol_listed_as_often_as_allowed_is_netted_and_compared(tmp_path: Path) -> None:
    statement = csv_file(tmp_path / "eod.csv", [("AAPL", "1")] * 3)

    ran = check(tmp_path, statement, "max_entries_per_symbol = 3\n")

    assert ran.exit_code == 1, ran.output
    assert "quantity_mismatch" in ran.output


def test_a_csv_cell_longer_than_allowed_is_refused_naming_its_line(tmp_path: Path) -> None:
    statement = csv_file(tmp_path / "eod.csv", [("AAPL", "1"), ("X" * (MAX_CELL_BYTES + 1), "1")])

    ran = check(tmp_path, statement)

    assert ran.exit_code == 2, ran.output
    assert f"{statement} row 2 (line 3), column 'symbol': a value of 1,025 bytes" in ran.output


def test_a_short_parquet_file_that_would_expand_into_gigabytes_is_refused(tmp_path: Path) -> None:
    statement = tmp_path / "eod.parquet"
    rows = 100_000
    symbols = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["X" * 100_000]))
    pq.write_table(pa.table({"symbol": symbols, "quantity": [1] * rows, "avg_cost": pa.nulls(rows, pa.string())}), statement)
    assert statement.stat().st_size < 100_000

    ran = check(tmp_path, statement)

    assert ran.exit_code == 2, ran.output
    assert f"{statement} row 1, column 'symbol': a value of 100,000 bytes" in ran.output


def test_columns_the_mapping_does_not_name_are_not_read(tmp_path: Path) -> None:
    statement = tmp_path / "eod.csv"
    statement.write_text("symbol,quantity,avg_cost,comment\nAAPL,1,," + "x" * (MAX_CELL_BYTES + 1) + "\n")

    read = read_positions(statement, "broker")

    assert read.table is not None
    assert "comment" not in read.table.column_names


def test_a_mistake_in_the_limits_table_names_its_key(tmp_path: Path) -> None:
    statement = csv_file(tmp_path / "eod.csv", [("AAPL", "1")])

    ran = check(tmp_path, statement, "max_row = 4\nmax_symbols = 0\n")

    assert ran.exit_code == 2, ran.output
    assert "limits.max_row: unknown key (did you mean 'max_rows'?)" in ran.output


def test_limits_are_given_to_a_statement_book_in_python(tmp_path: Path) -> None:
    statement = csv_file(tmp_path / "eod.csv", [("AAPL", "1"), ("AAPL", "2")])

    with pytest.raises(StatementError, match=r"limits\.max_entries_per_symbol"):
        read_positions(statement, limits=StatementLimits(max_entries_per_symbol=1))


def test_a_position_reported_more_often_than_a_batch_holds_nets_as_the_pure_comparator_does() -> None:
    entries = [BrokerPosition("AAPL", (-1) ** i * (i % 7 + 1), Decimal(f"{100 + i % 13}.25"), Decimal(i)) for i in range(25_001)]
    book = [Position("AAPL", 3, Decimal("101.5")), Position("MSFT", 1, None)]
    config = ReconciliationConfig("ACC-1")

    columnar = columns_from_objects(entries, "broker").compare_sides(
        book, columns_from_objects(entries, "broker"), account_id="ACC-1", timestamp=NOW, config=config, pause=None
    )
    pure = compare_positions(book, entries, account_id="ACC-1", timestamp=NOW, config=config)

    assert columnar == pure
    assert [(n.side, n.symbol, n.entries) for n in columnar.netted] == [("broker", "AAPL", 25_001)]
