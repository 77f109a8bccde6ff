"""`reconciliation check`: two position files reconciled once, printed, and optionally published."""

from __future__ import annotations

import csv
import io
import json
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
    assert lines[1].split() == ["critical", "missing_local", "ES", "(future)", "-", "1"]
    assert lines[2].split() == ["critical", "quantity_mismatch", "MSFT", "5", "6"]
    assert lines[3].startswith("2 break(s) in 3 position(s)")


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
