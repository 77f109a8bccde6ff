"""Text from outside (symbols, account ids, currencies, error texts) that no sink could carry.

A name holding a control character (a NUL, which PostgreSQL refuses; an ESC, which rewrites
a terminal; a line break, which splits a log line), a lone surrogate or a bidirectional
override is refused where the model is built, and a broker answering one fails its run,
naming the entry: the failed run then reaches every sink, instead of one sink refusing every
run of the account. An error text is kept, its control characters written as escapes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import eventually

from reconciliation import BrokerPosition, LocalAccount, OrderFill, Position, ReconcileRequest
from reconciliation._cli.main import main
from reconciliation._domain.values import FieldValueError
from reconciliation.audit import open_store

UNCARRIABLE = {
    "NUL": "BTC\x00USDT",
    "ESC": "AAPL\x1b[2J",
    "line feed": "AAPL\nERROR forged log line",
    "carriage return": "AAPL\r",
    "tab": "AAPL\tX",
    "DEL": "AAPL\x7f",
    "C1 control": "AAPL\x85",
    "bidirectional override": "\u202eLPAA",
    "line separator": "AAPL\u2028",
    "lone surrogate": "AAPL\udc80",
}
NOW = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize("symbol", UNCARRIABLE.values(), ids=UNCARRIABLE.keys())
def test_a_symbol_with_a_character_no_sink_carries_is_refused_naming_it(symbol: str) -> None:
    with pytest.raises(FieldValueError, match=r"symbol holds U\+[0-9A-F]{4}, .* at position \d+") as refused:
        Position(symbol, 1, None)

    assert refused.value.field == "symbol"


@pytest.mark.parametrize("symbol", ["Äpfel", "株式", "BRK B", "BTC/USDT:USDT", "A\xa0B", "👍"])
def test_names_in_any_script_are_accepted(symbol: str) -> None:
    assert BrokerPosition(symbol, 1, None, 0).symbol == symbol


def test_an_account_id_holding_a_nul_is_refused() -> None:
    with pytest.raises(FieldValueError, match="account_id holds U\\+0000"):
        LocalAccount("ACC\x00-1", 0, 0)


def test_a_fill_id_holding_an_escape_is_refused() -> None:
    with pytest.raises(FieldValueError, match="fill_id holds U\\+001B"):
        OrderFill("ORD-1", "F\x1b]0;x\x07", "ACC-1", "AAPL", 1, Decimal(1), NOW)


def test_a_currency_holding_a_nul_is_refused() -> None:
    with pytest.raises(FieldValueError, match=r"cash_by_currency\['US\\x00D'\] holds U\+0000"):
        LocalAccount("ACC-1", 0, 0, cash_by_currency={"US\x00D": Decimal(1)})


def test_who_asked_for_a_run_may_not_hold_a_nul() -> None:
    with pytest.raises(FieldValueError, match="requested_by holds U\\+0000"):
        ReconcileRequest("ACC-1", requested_by="risk\x00")


def test_a_broker_symbol_holding_a_nul_fails_the_run_in_every_sink(harness_factory: Any, audit_target: str) -> None:
    harness = harness_factory(audit_store=audit_target)
    harness.start()
    harness.broker.then_return([{"symbol": "BTC\x00USDT", "quantity": "1", "avg_cost": None, "market_value": "0"}])

    failed = harness.reconcile()
    healthy = harness.reconcile()

    assert failed.error is not None
    assert "broker.get_positions entry 0" in failed.error
    assert "symbol holds U+0000" in failed.error
    assert healthy.error is None
    eventually(lambda: harness.service.audit_health().delivered_runs == 3, what="every run recorded")
    store = open_store(audit_target)
    try:
        recorded = {run.run_id: run for run in store.list_runs("ACC-1")}
    finally:
        store.close()
    assert recorded[failed.run_id].error == failed.error
    assert healthy.run_id in recorded
    published = [payload for payload in harness.capture.results if payload["run_id"] == str(failed.run_id)]
    assert [payload["status"] for payload in published] == ["failed"]


def test_an_error_text_with_control_characters_reaches_every_sink_escaped(
    harness_factory: Any, audit_target: str
) -> None:
    harness = harness_factory(audit_store=audit_target)
    harness.start()
    harness.broker.then_raise(ConnectionError("gate\x00way \x1b[31mdown\u202e"))

    failed = harness.reconcile()

    assert failed.error is not None
    assert "gate\\x00way \\x1b[31mdown\\u202e" in failed.error
    eventually(lambda: harness.service.audit_health().delivered_runs == 2, what="both runs recorded")
    store = open_store(audit_target)
    try:
        (recorded,) = [run for run in store.list_runs("ACC-1") if run.run_id == failed.run_id]
    finally:
        store.close()
    assert recorded.error == failed.error


def test_check_refuses_a_statement_row_whose_symbol_holds_a_nul(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    book = tmp_path / "book.csv"
    book.write_text("symbol,quantity,avg_cost\nAAPL,1,\n")
    statement = tmp_path / "eod.csv"
    statement.write_bytes(b"symbol,quantity,avg_cost\nAAPL,1,\nBTC\x00USDT,2,\n")

    ran = CliRunner().invoke(main, ["check", "--local", str(book), "--broker", str(statement)])

    assert ran.exit_code == 2, ran.output
    assert f"{statement} row 2 (line 3), column 'symbol': holds U+0000, a control character" in ran.output


def test_check_refuses_a_parquet_symbol_holding_an_escape(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    book = tmp_path / "book.csv"
    book.write_text("symbol,quantity,avg_cost\nAAPL,1,\n")
    statement = tmp_path / "eod.parquet"
    pq.write_table(pa.table({"symbol": ["AAPL", "\x1b]8;;http://x\x1b\\"], "quantity": [1, 2], "avg_cost": [None, None]}), statement)

    ran = CliRunner().invoke(main, ["check", "--local", str(book), "--broker", str(statement)])

    assert ran.exit_code == 2, ran.output
    assert "row 2, column 'symbol': holds U+001B" in ran.output
