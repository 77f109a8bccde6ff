"""`reconciliation history`: what the audit store recorded, for people and for scripts."""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from adapter_fixtures import Book
from click.testing import CliRunner

from reconciliation import (
    AssetType,
    BrokerAccount,
    BrokerPosition,
    InMemoryPortfolio,
    Position,
    ReconciliationConfig,
    ReconciliationService,
)
from reconciliation._cli.main import main
from reconciliation.testing import ScriptedBroker


@pytest.fixture
def recorded(audit_target: str) -> dict[str, Any]:
    """Four runs: a cash break seen twice, a failed run, then the break resolved."""
    broker = ScriptedBroker("ACC-1", cash=Decimal(950), total_equity=Decimal(1000))
    config = ReconciliationConfig("ACC-1", audit_store=audit_target)
    service = ReconciliationService(
        InMemoryPortfolio("ACC-1", cash=Decimal(1000)), broker, fakeredis.FakeRedis(), config
    )

    async def session() -> list[Any]:
        results = [await service.start(), await service.reconcile()]
        broker.then_raise(ConnectionError("gateway down"))
        results.append(await service.reconcile())
        broker.cash = Decimal(1000)
        results.append(await service.reconcile(requested_by="ops"))
        await service.stop()
        return results

    return {"store": audit_target, "results": asyncio.run(session())}


def history(*args: str) -> Any:
    return CliRunner().invoke(main, ["history", *args])


def test_history_lists_every_run_newest_first(recorded: dict[str, Any]) -> None:
    shown = history("--store", recorded["store"], "--account", "ACC-1", "--json")
    assert shown.exit_code == 0, shown.output
    runs = json.loads(shown.output)["runs"]
    assert [r["run_id"] for r in runs] == [str(r.run_id) for r in reversed(recorded["results"])]
    assert [r["status"] for r in runs] == ["ok", "failed", "ok", "ok"]
    assert runs[1]["error"] == "broker.get_positions failed: ConnectionError: gateway down"


def test_history_shows_only_open_breaks_unless_asked_for_all(recorded: dict[str, Any]) -> None:
    open_only = json.loads(history("--store", recorded["store"], "--account", "ACC-1", "--json").output)
    every = json.loads(
        history("--store", recorded["store"], "--account", "ACC-1", "--all-breaks", "--json").output
    )
    assert open_only["breaks"] == []
    (resolved,) = every["breaks"]
    assert (resolved["type"], resolved["status"], resolved["consecutive_runs"]) == (
        "cash_mismatch",
        "resolved",
        2,
    )
    assert resolved["resolved_run_id"] == str(recorded["results"][3].run_id)


def test_history_filters_breaks_by_type(recorded: dict[str, Any]) -> None:
    shown = history(
        "--store",
        recorded["store"],
        "--account",
        "ACC-1",
        "--all-breaks",
        "--type",
        "quantity_mismatch",
        "--json",
    )
    assert json.loads(shown.output)["breaks"] == []


def test_history_limits_the_runs_shown(recorded: dict[str, Any]) -> None:
    shown = history("--store", recorded["store"], "--account", "ACC-1", "--limit", "1", "--json")
    assert [r["run_id"] for r in json.loads(shown.output)["runs"]] == [str(recorded["results"][3].run_id)]


def test_history_for_people_is_a_table_with_the_failure_spelled_out(recorded: dict[str, Any]) -> None:
    shown = history("--store", recorded["store"], "--account", "ACC-1", "--all-breaks")
    assert shown.exit_code == 0
    assert "Runs of ACC-1" in shown.output
    assert "gateway down" in shown.output
    assert "cash_mismatch" in shown.output


def test_a_store_that_does_not_exist_is_a_usage_error_naming_the_option(tmp_path: Any) -> None:
    shown = history("--store", str(tmp_path / "nope.db"), "--account", "ACC-1")
    assert shown.exit_code == 2
    assert "--store: no audit store at" in shown.output


def test_an_unreadable_time_is_a_usage_error_saying_what_is_expected(recorded: dict[str, Any]) -> None:
    shown = history("--store", recorded["store"], "--account", "ACC-1", "--since", "yesterday")
    assert shown.exit_code == 2
    assert "neither a duration like 30m, 2h, 7d nor an ISO-8601 time" in shown.output


def test_since_leaves_out_older_runs(recorded: dict[str, Any]) -> None:
    shown = history(
        "--store", recorded["store"], "--account", "ACC-1", "--since", "2099-01-01T00:00", "--json"
    )
    assert json.loads(shown.output)["runs"] == []


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--since", "99999999d"),
        ("--since", "1" + "0" * 400 + "d"),
        ("--until", "9999-12-31T23:59:59-01:00"),
        ("--limit", str(10**20)),
        ("--limit", "0"),
    ],
)
def test_a_value_out_of_range_is_a_usage_error_naming_the_option(
    recorded: dict[str, Any], option: str, value: str
) -> None:
    shown = history("--store", recorded["store"], "--account", "ACC-1", option, value)

    assert shown.exit_code == 2, shown.output
    assert option in shown.output
    assert "Traceback" not in shown.output
    assert shown.exception is None or isinstance(shown.exception, SystemExit)


@pytest.fixture
def large_break(audit_target: str) -> str:
    """A cash break whose figures are wider than an 80-column table leaves them."""
    broker = ScriptedBroker(
        "ACC-1", cash=Decimal("98765432109876.5432101"), total_equity=Decimal("98765432109876.5432101")
    )
    config = ReconciliationConfig("ACC-1", audit_store=audit_target)
    service = ReconciliationService(
        InMemoryPortfolio("ACC-1", cash=Decimal("123456789012345.123456789")), broker, fakeredis.FakeRedis(), config
    )

    async def session() -> None:
        await service.start()
        await service.stop()

    asyncio.run(session())
    return audit_target


def test_history_never_cuts_the_money_columns_when_not_a_terminal(large_break: str) -> None:
    shown = history("--store", large_break, "--account", "ACC-1")

    assert shown.exit_code == 0, shown.output
    assert "123456789012345.123456789" in shown.output
    assert "98765432109876.5432101" in shown.output
    assert "…" not in shown.output


def test_history_shows_control_characters_from_the_store_as_visible_escapes(audit_target: str) -> None:
    broker = ScriptedBroker("ACC-1", cash=Decimal(1000), total_equity=Decimal(1000))
    broker.then_raise(ConnectionError("gateway \x1b]0;owned\x07 down \x1b[2J"))
    config = ReconciliationConfig("ACC-1", audit_store=audit_target)
    service = ReconciliationService(
        InMemoryPortfolio("ACC-1", cash=Decimal(1000)), broker, fakeredis.FakeRedis(), config
    )

    async def session() -> None:
        await service.start()
        await service.stop()

    asyncio.run(session())

    shown = history("--store", audit_target, "--account", "ACC-1")

    assert "gateway \\x1b]0;owned\\x07 down \\x1b[2J" in shown.output
    assert "\x1b" not in shown.output
    assert "\x07" not in shown.output


def test_a_store_without_audit_tables_gives_the_same_friendly_message_on_both_backends(
    audit_target: str, tmp_path: Any
) -> None:
    if "://" not in audit_target:
        Path(audit_target).touch()

    shown = history("--store", audit_target, "--account", "ACC-1")

    assert shown.exit_code == 5, shown.output
    assert shown.output.rstrip().endswith(
        "has no audit tables: no service with audit_store set has recorded to it yet, or it is not an audit store"
    )
    assert shown.output.strip().count("\n") == 0


@pytest.fixture
def option_and_currency_breaks(audit_target: str) -> str:
    return record_option_and_currency_breaks(audit_target)


def record_option_and_currency_breaks(audit_target: str) -> str:
    """A run whose book misses an AAPL option (the stock matches) and differs in EUR cash."""
    broker = ScriptedBroker(
        "ACC-1",
        [
            BrokerPosition("AAPL", 100, 187, 19000),
            BrokerPosition("AAPL  260116C00190000", 2, "3.15", 700, AssetType.OPTION),
        ],
        cash=Decimal(1000),
        total_equity=Decimal(1000),
    )
    broker.then_return(
        BrokerAccount("ACC-1", 1000, 0, 1000, 0, cash_by_currency={"USD": "1000", "EUR": "12000.00"}),
        call="get_account",
    )
    book = Book(
        "ACC-1",
        [Position("AAPL", 100, 187)],
        cash="1000",
        total_equity="1000",
        cash_by_currency={"USD": "1000", "EUR": "11990.00"},
    )
    config = ReconciliationConfig("ACC-1", audit_store=audit_target, equity_tolerance_pct=100)
    service = ReconciliationService(book, broker, fakeredis.FakeRedis(), config)

    async def session() -> None:
        await service.start()
        await service.stop()

    asyncio.run(session())
    return audit_target


def test_history_names_the_asset_type_of_a_break_and_the_currency_of_cash(
    option_and_currency_breaks: str,
) -> None:
    shown = CliRunner(env={"COLUMNS": "160"}).invoke(
        main, ["history", "--store", option_and_currency_breaks, "--account", "ACC-1"]
    )

    assert shown.exit_code == 0, shown.output
    assert "AAPL  260116C00190000 (option)" in shown.output
    assert "│ EUR " in shown.output


def test_history_json_carries_asset_type_and_currency(option_and_currency_breaks: str) -> None:
    shown = json.loads(history("--store", option_and_currency_breaks, "--account", "ACC-1", "--json").output)

    assert sorted((b["type"], b["symbol"], b["asset_type"], b["currency"]) for b in shown["breaks"]) == [
        ("cash_mismatch", None, None, "EUR"),
        ("missing_local", "AAPL  260116C00190000", "option", None),
    ]
    assert {(d["asset_type"], d["currency"]) for d in shown["runs"][0]["discrepancies"]} == {
        (None, "EUR"),
        ("option", None),
    }


def test_the_run_log_names_the_currency_of_a_cash_break_and_the_asset_type_of_a_position(
    audit_target: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="reconciliation._runtime.results"):
        record_option_and_currency_breaks(audit_target)

    assert "missing_local on ACC-1 AAPL  260116C00190000 (option): local none, broker 2" in caplog.text
    assert "cash_mismatch on ACC-1 EUR: local 11990.00, broker 12000.00" in caplog.text


def test_history_of_an_unknown_account_is_refused_suggesting_the_closest(recorded: dict[str, Any]) -> None:
    shown = history("--store", recorded["store"], "--account", "ACC-l")

    assert shown.exit_code == 2
    assert "the audit store has no account 'ACC-l'; did you mean 'ACC-1'? (it knows ACC-1)" in shown.output


def test_a_break_the_kill_switch_fired_on_says_halt(audit_target: str) -> None:
    from reconciliation import AgeingPolicy  # noqa: PLC0415

    broker = ScriptedBroker("ACC-H", cash=Decimal(1000), total_equity=Decimal(1000))
    broker.positions = [BrokerPosition("AAPL", Decimal(10), Decimal(100), Decimal(1000))]
    config = ReconciliationConfig("ACC-H", audit_store=audit_target, ageing=AgeingPolicy(halt_after_runs=1))
    service = ReconciliationService(InMemoryPortfolio("ACC-H", cash=Decimal(1000)), broker, fakeredis.FakeRedis(), config)

    async def session() -> None:
        await service.start()
        await service.stop()

    asyncio.run(session())

    shown = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["history", "--store", audit_target, "--account", "ACC-H"])
    assert shown.exit_code == 0, shown.output
    (row,) = [line for line in shown.output.splitlines() if "AAPL" in line]
    assert "HALT (open)" in row
