"""`reconciliation check`: two position files reconciled once, printed, and optionally published."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

pytest.importorskip("pyarrow")

from reconciliation._cli.main import main

if TYPE_CHECKING:
    import redis
    from redis_server import RedisServer

BOOK = ("symbol,quantity,avg_cost", "AAPL,10,187.50", "MSFT,5,300")
STATEMENT = ("Symbol,Qty,AvgPx,SecType,MktVal", "AAPL,10,187.50,STK,1875", "MSFT,6,300,STK,1800", "ES,1,5000,FUT,5000")
MAPPING = """\
cost_tolerance_pct = "0.01"

[broker]
symbol = "Symbol"
quantity = "Qty"
avg_cost = "AvgPx"
asset_type = "SecType"
asset_types = { STK = "stock", FUT = "future" }
market_value = "MktVal"
"""


def write(directory: Path, name: str, *lines: str) -> Path:
    path = directory / name
    path.write_text("\n".join(lines) + "\n")
    return path


def check(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["check", *map(str, args)])


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "book": write(tmp_path, "book.csv", *BOOK),
        "statement": write(tmp_path, "eod.csv", *STATEMENT),
        "config": write(tmp_path, "eod.toml", MAPPING),
    }


def test_two_files_that_agree_exit_0_saying_so(files: dict[str, Path]) -> None:
    ran = check("--local", files["book"], "--broker", files["book"])

    assert ran.exit_code == 0, ran.output
    assert "Clean: 2 position(s) agree" in ran.output


def test_breaks_are_listed_and_exit_1(files: dict[str, Path]) -> None:
    ran = check("--local", files["book"], "--broker", files["statement"], "--config", files["config"])

    assert ran.exit_code == 1, ran.output
    lines = ran.output.splitlines()
    assert lines[0].split("\t") == ["severity", "type", "position", "local", "broker", "difference"]
    assert lines[1].split("\t") == ["critical", "missing_local", "ES (future)", "-", "1", "1"]
    assert lines[2].split("\t") == ["critical", "quantity_mismatch", "MSFT", "5", "6", "1"]
    assert lines[3] == "By severity: 2 critical · by type: 1 missing_local, 1 quantity_mismatch"
    assert lines[4].startswith("2 break(s) in 3 position(s)")


def test_json_prints_the_run_as_its_payloads(files: dict[str, Path]) -> None:
    ran = check("--local", files["book"], "--broker", files["statement"], "--config", files["config"], "--json")

    document = json.loads(ran.output)
    assert ran.exit_code == 1
    assert document["result"]["discrepancy_count"] == 2
    assert document["result"]["context"] == {"trigger": "on_demand", "requested_by": "check"}
    assert [(d["type"], d["symbol"], d["local_value"], d["broker_value"]) for d in document["discrepancies"]] == [
        ("missing_local", "ES", None, "1"),
        ("quantity_mismatch", "MSFT", "5", "6"),
    ]


def test_csv_prints_one_row_per_break(files: dict[str, Path]) -> None:
    ran = check("--local", files["book"], "--broker", files["statement"], "--config", files["config"], "--csv")

    assert list(csv.reader(io.StringIO(ran.output))) == [
        ["type", "severity", "symbol", "asset_type", "currency", "local_value", "broker_value"],
        ["missing_local", "critical", "ES", "future", "", "", "1"],
        ["quantity_mismatch", "critical", "MSFT", "stock", "", "5", "6"],
    ]


def test_balances_given_on_the_command_line_are_compared(files: dict[str, Path]) -> None:
    ran = check(
        "--local", files["book"], "--broker", files["book"], "--csv",
        "--local-cash", "1000.00", "--local-equity", "5000",
        "--broker-cash", "998.99", "--broker-equity", "5000",
    )  # fmt: skip

    assert ran.exit_code == 1
    assert ran.output.splitlines()[1] == '"cash_mismatch","warning","","","","1000.00","998.99"'


def test_balances_from_a_file_on_one_side_and_figures_on_the_other(files: dict[str, Path], tmp_path: Path) -> None:
    balances = write(tmp_path, "cash.csv", "cash,total_equity", "1000.00,5000")

    ran = check(
        "--local", files["book"], "--broker", files["book"],
        "--local-balances", balances, "--broker-cash", "1000", "--broker-equity", "5000.00",
    )  # fmt: skip

    assert ran.exit_code == 0, ran.output


def test_balances_of_one_side_only_are_a_usage_error(files: dict[str, Path]) -> None:
    ran = check("--local", files["book"], "--broker", files["book"], "--local-cash", "1", "--local-equity", "1")

    assert ran.exit_code == 2
    assert "the broker side has no balances" in ran.output


def test_a_bad_row_is_one_line_naming_it_exit_2_without_a_traceback(files: dict[str, Path], tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.csv", "symbol,quantity,avg_cost", "AAPL,10,187.50", "MSFT,5.0.0,300")

    ran = check("--local", files["book"], "--broker", bad)

    assert ran.exit_code == 2
    assert ran.output.strip().splitlines() == [
        (
            f"Error: {bad} row 2 (line 3) (symbol 'MSFT'), column 'quantity': '5.0.0' is not a plain decimal "
            "number (digits with an optional sign and decimal point: no exponent, separator or currency)"
        )
    ]
    assert "Traceback" not in ran.output


def test_a_missing_file_is_a_usage_error_naming_it(files: dict[str, Path], tmp_path: Path) -> None:
    ran = check("--local", tmp_path / "nowhere.csv", "--broker", files["book"])

    assert ran.exit_code == 2
    assert f"Error: {tmp_path / 'nowhere.csv'}: cannot be read: " in ran.output


def test_a_mistake_in_the_config_file_names_its_key(files: dict[str, Path], tmp_path: Path) -> None:
    config = write(tmp_path, "bad.toml", 'cash_tolerance = "-1"', "[broker]", 'quantiy = "Qty"')

    ran = check("--local", files["book"], "--broker", files["book"], "--config", config)

    assert ran.exit_code == 2
    assert f"Error: {config}: cash_tolerance: cash_tolerance must not be negative, got -1" in ran.output
    assert f"Error: {config}: broker.quantiy: unknown key" in ran.output


def test_json_and_csv_together_are_a_usage_error(files: dict[str, Path]) -> None:
    ran = check("--local", files["book"], "--broker", files["book"], "--json", "--csv")

    assert ran.exit_code == 2
    assert "--json and --csv: choose one output" in ran.output


def result_payloads(client: redis.Redis) -> list[dict[str, object]]:
    return [json.loads(fields["payload"]) for _, fields in client.xrange("reconciliation:stream:result")]


@pytest.mark.real_redis
def test_with_a_redis_url_the_run_is_published_like_any_other(
    files: dict[str, Path], redis_server: RedisServer, real_redis: redis.Redis
) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/0"

    ran = check("--local", files["book"], "--broker", files["statement"], "--config", files["config"], "--redis-url", url)

    assert ran.exit_code == 1, ran.output
    (published,) = result_payloads(real_redis)
    assert published["context"] == {"trigger": "on_demand", "requested_by": "check"}
    assert published["discrepancy_count"] == 2
    assert real_redis.xlen("reconciliation:stream:discrepancy") == 2


@pytest.mark.real_redis
def test_a_bad_file_publishes_nothing(
    files: dict[str, Path], tmp_path: Path, redis_server: RedisServer, real_redis: redis.Redis
) -> None:
    bad = write(tmp_path, "bad.csv", "symbol,quantity,avg_cost", "AAPL,10,187.50", ",5,300")
    url = f"redis://127.0.0.1:{redis_server.port}/0"

    ran = check("--local", files["book"], "--broker", bad, "--redis-url", url)

    assert ran.exit_code == 2
    assert result_payloads(real_redis) == []


def test_the_documented_example_config_reads_a_statement(tmp_path: Path) -> None:
    documented = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    section = documented.split("## `reconciliation check`", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    config = write(tmp_path, "eod.toml", example)
    write(tmp_path, "eod-balances.csv", "Cash,NetLiq", "1000.00,25000.00")
    statement = write(tmp_path, "eod.csv", "Symbol,Qty,AvgPx,SecType,MktVal", "AAPL,10,187.50,STK,1875")
    book = write(tmp_path, "book.csv", "symbol,quantity,avg_cost", "AAPL,10,187.50")

    ran = check("--local", book, "--broker", statement, "--config", config)

    assert ran.exit_code == 0, ran.output
    assert "Clean: 1 position(s) agree" in ran.output


# Columns read as written (issue 26)

STOCK_AND_OPTION = ("symbol,quantity,avg_cost,asset_type", "AAPL,1000,150,stock", "AAPL,10,5,option")


def test_the_documented_asset_type_column_is_read_without_a_mapping(tmp_path: Path) -> None:
    book = write(tmp_path, "book.csv", *STOCK_AND_OPTION)
    eod = write(tmp_path, "eod.csv", "symbol,quantity,avg_cost,asset_type", "AAPL,1000,150,stock", "AAPL,-10,5,option")

    ran = check("--local", book, "--broker", eod, "--csv")

    assert ran.exit_code == 1, ran.output
    assert list(csv.reader(io.StringIO(ran.output)))[1:] == [
        ["quantity_mismatch", "critical", "AAPL", "option", "", "10", "-10"]
    ]


def test_a_column_that_looks_like_the_asset_type_is_refused_naming_the_mapping(tmp_path: Path) -> None:
    book = write(tmp_path, "book.csv", *STOCK_AND_OPTION)
    eod = write(tmp_path, "eod.csv", "symbol,quantity,avg_cost,AssetType", "AAPL,1000,150,stock", "AAPL,-10,5,option")

    ran = check("--local", book, "--broker", eod)

    assert ran.exit_code == 2
    assert "column 'AssetType' looks like the asset type, which is not read" in ran.output
    assert 'asset_type = "AssetType" in [broker]' in ran.output


def test_mapped_the_asset_type_column_gives_the_options_break_only(tmp_path: Path) -> None:
    book = write(tmp_path, "book.csv", *STOCK_AND_OPTION)
    eod = write(tmp_path, "eod.csv", "symbol,quantity,avg_cost,AssetType", "AAPL,1000,150,stock", "AAPL,-10,5,option")
    config = write(tmp_path, "eod.toml", "[broker]", 'asset_type = "AssetType"')

    ran = check("--local", book, "--broker", eod, "--config", config, "--csv")

    assert ran.exit_code == 1, ran.output
    assert [row[:4] for row in csv.reader(io.StringIO(ran.output))][1:] == [
        ["quantity_mismatch", "critical", "AAPL", "option"]
    ]


def test_netted_positions_are_said_under_the_breaks(tmp_path: Path) -> None:
    book = write(tmp_path, "book.csv", "symbol,quantity,avg_cost", "AAPL,10,150")
    eod = write(tmp_path, "eod.csv", "symbol,quantity,avg_cost", "AAPL,6,150", "AAPL,5,150")

    ran = check("--local", book, "--broker", eod)

    assert ran.exit_code == 1, ran.output
    assert "Netted: the broker file lists AAPL (stock) 2 times; compared as one position, their sum" in ran.output


def test_an_info_break_alone_exits_0_unless_fail_on_info(tmp_path: Path) -> None:
    book = write(tmp_path, "book.csv", "symbol,quantity,avg_cost", "AAPL,10,150")
    eod = write(tmp_path, "eod.csv", "symbol,quantity,avg_cost", "AAPL,10,170")

    default = check("--local", book, "--broker", eod)
    strict = check("--local", book, "--broker", eod, "--fail-on", "info")

    assert "cost_mismatch" in default.output
    assert (default.exit_code, strict.exit_code) == (0, 1)


def test_fail_on_critical_lets_a_warning_pass(tmp_path: Path) -> None:
    book = write(tmp_path, "book.csv", "symbol,quantity,avg_cost", "AAPL,10,150")

    ran = check(
        "--local", book, "--broker", book, "--local-cash", "100", "--local-equity", "1000",
        "--broker-cash", "90", "--broker-equity", "1000", "--fail-on", "critical",
    )  # fmt: skip

    assert "cash_mismatch" in ran.output
    assert ran.exit_code == 0


def test_on_a_terminal_the_worst_breaks_are_a_table_then_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reconciliation._cli.commands.check._is_terminal", lambda: True)
    book = write(tmp_path, "book.csv", "symbol,quantity,avg_cost", *(f"S{i},{i},1" for i in range(1, 6)))
    eod = write(tmp_path, "eod.csv", "symbol,quantity,avg_cost", *(f"S{i},{i * 10},1" for i in range(1, 6)))

    ran = CliRunner(env={"COLUMNS": "120"}).invoke(main, ["check", "--local", str(book), "--broker", str(eod), "--top", "2"])

    assert ran.exit_code == 1, ran.output
    rows = [line.split() for line in ran.output.splitlines() if line.strip().startswith("critical")]
    assert rows == [
        ["critical", "quantity_mismatch", "S5", "5", "50", "45"],
        ["critical", "quantity_mismatch", "S4", "4", "40", "36"],
    ]
    assert "The worst 2 of 5 shown; every one with --csv or --json." in ran.output
    assert "By severity: 5 critical · by type: 5 quantity_mismatch" in ran.output


def test_off_a_terminal_every_break_is_a_plain_line(tmp_path: Path) -> None:
    book = write(tmp_path, "book.csv", "symbol,quantity,avg_cost", *(f"S{i},{i},1" for i in range(1, 201)))
    eod = write(tmp_path, "eod.csv", "symbol,quantity,avg_cost", *(f"S{i},{i + 1},1" for i in range(1, 201)))

    ran = check("--local", book, "--broker", eod)

    assert len([line for line in ran.output.splitlines() if line.startswith("critical\tquantity_mismatch\t")]) == 200


RUN_THEN_SAY_IF_PANDAS = """
import runpy, sys
try:
    runpy.run_module("reconciliation", run_name="__main__")
except SystemExit:
    pass
print("pandas imported:", "pandas" in sys.modules)
"""


def test_a_check_of_parquet_files_never_imports_pandas_which_pyarrow_imports_to_ask_about_a_value(
    tmp_path: Path,
) -> None:
    pytest.importorskip("pandas")
    import pyarrow as pa  # noqa: PLC0415 - skipped above without it
    import pyarrow.parquet as pq  # noqa: PLC0415

    book = tmp_path / "book.parquet"
    pq.write_table(pa.table({"symbol": ["AAPL", "MSFT"], "quantity": ["10", "5"], "avg_cost": ["187.5", "300"]}), book)
    command = [sys.executable, "-c", RUN_THEN_SAY_IF_PANDAS, "check", "--local", str(book), "--broker", str(book)]

    ran = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our own command line

    assert "Clean: 2 position(s) agree" in ran.stdout, ran.stderr
    assert ran.stdout.splitlines()[-1] == "pandas imported: False"
    finders = list(sys.meta_path)
    assert check("--local", book, "--broker", book).exit_code == 0
    assert sys.meta_path == finders
