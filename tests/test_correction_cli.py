"""Auto-correction on the command line: `[accounts.correction]` in the TOML file, `history --corrections`."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from click.testing import CliRunner

from reconciliation import (
    BrokerPosition,
    CorrectionPolicy,
    DiscrepancyType,
    InMemoryPortfolio,
    ReconciliationConfig,
    ReconciliationService,
)
from reconciliation._cli.main import main
from reconciliation._cli.runner import ConfigError, StartError, build_runtime, load_config
from reconciliation.testing import ScriptedBroker, settle

FACTORIES = """
[defaults]
broker = "reconciliation.paper:paper_broker"
portfolio = "reconciliation.paper:paper_portfolio"
"""


def config_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "reconciliation.toml"
    path.write_text(FACTORIES + body)
    return path


def test_an_accounts_correction_table_is_its_policy(tmp_path: Path) -> None:
    path = config_file(
        tmp_path,
        '[[accounts]]\naccount_id = "A"\n[accounts.correction]\nmode = "apply"\nconfirm_after_runs = 3\n'
        'types = ["cash_mismatch", "quantity_mismatch"]\nmax_notional = 2500.50\n',
    )

    (account,) = load_config(path).accounts

    assert account.config.correction == CorrectionPolicy(
        mode="apply",
        confirm_after_runs=3,
        types=[DiscrepancyType.CASH_MISMATCH, DiscrepancyType.QUANTITY_MISMATCH],
        max_notional=Decimal("2500.50"),
    )


def test_the_defaults_correction_table_applies_to_every_account(tmp_path: Path) -> None:
    path = config_file(
        tmp_path,
        '[defaults.correction]\n\n[[accounts]]\naccount_id = "A"\n\n[[accounts]]\naccount_id = "B"\n',
    )

    assert [a.config.correction for a in load_config(path).accounts] == [CorrectionPolicy()] * 2


def test_correcting_equity_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    path = config_file(
        tmp_path, '[[accounts]]\naccount_id = "A"\n[accounts.correction]\ntypes = ["equity_mismatch"]\n'
    )

    with pytest.raises(
        ConfigError, match=r"accounts\[0\]\.correction: types: equity_mismatch cannot be corrected"
    ):
        load_config(path)


def test_an_unknown_key_in_the_correction_table_is_a_config_error(tmp_path: Path) -> None:
    path = config_file(tmp_path, '[[accounts]]\naccount_id = "A"\n[accounts.correction]\nmax_notinal = 5\n')

    with pytest.raises(
        ConfigError, match=r"accounts\[0\]\.correction\.max_notinal: unknown key.*'max_notional'"
    ):
        load_config(path)


def test_apply_mode_with_a_book_that_cannot_be_corrected_does_not_start(tmp_path: Path) -> None:
    path = config_file(
        tmp_path,
        '[[accounts]]\naccount_id = "A"\nportfolio = "reconciliation.paper:paper_broker"\n'
        '[accounts.correction]\nmode = "apply"\n',
    )

    with pytest.raises(StartError, match="apply_correction"):
        build_runtime(load_config(path), fakeredis.FakeRedis())


@pytest.fixture
def corrected(audit_target: str) -> str:
    """A session whose startup run proposed a correction that the next run confirmed and applied."""
    broker = ScriptedBroker("ACC-1", [BrokerPosition("NVDA", 40, "120.00", "4800")], cash=Decimal(1000))
    config = ReconciliationConfig(
        "ACC-1", audit_store=audit_target, correction=CorrectionPolicy(mode="apply", max_notional=10_000)
    )
    service = ReconciliationService(
        InMemoryPortfolio("ACC-1", Decimal(1000)), broker, fakeredis.FakeRedis(), config
    )

    async def session() -> None:
        await service.start()
        await service.reconcile()
        await asyncio.to_thread(settle, service)
        await service.stop()

    asyncio.run(session())
    return audit_target


def history(*args: str) -> Any:
    return CliRunner().invoke(main, ["history", *args])


def test_history_lists_every_step_of_the_corrections_newest_first(corrected: str) -> None:
    shown = history("--store", corrected, "--account", "ACC-1", "--corrections", "--json")

    assert shown.exit_code == 0, shown.output
    steps = json.loads(shown.output)["corrections"]
    assert [step["status"] for step in steps] == ["verified", "applied", "confirmed", "proposed"]
    assert {(step["type"], step["symbol"], step["quantity"]) for step in steps} == {
        ("missing_local", "NVDA", "40")
    }


def test_history_shows_the_corrections_as_a_table(corrected: str) -> None:
    shown = history("--store", corrected, "--account", "ACC-1", "--corrections")

    assert shown.exit_code == 0, shown.output
    assert "Corrections of ACC-1" in shown.output
    assert "buy 40 NVDA at 120.00" in shown.output
    assert "verified" in shown.output


def test_history_filters_the_corrections_by_type(corrected: str) -> None:
    shown = history("--store", corrected, "--account", "ACC-1", "--corrections", "--type", "cash_mismatch")

    assert shown.exit_code == 0, shown.output
    assert "No corrections recorded" in shown.output
