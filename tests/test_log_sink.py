"""The run log: every discrepancy at WARNING, in a dozen records however many there are."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from decimal import Decimal

import pytest

from reconciliation._domain.models import (
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    ReconciliationResult,
)
from reconciliation._runtime.log_sink import LOGGED_ONE_BY_ONE, RUN_LOGGER, log_result

ACCOUNT = "ACC-1"
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)


def quantity_break(n: int) -> Discrepancy:
    return Discrepancy(
        type=DiscrepancyType.QUANTITY_MISMATCH,
        severity=DiscrepancySeverity.CRITICAL,
        symbol=f"S{n:05d}",
        local_value=Decimal(n),
        broker_value=Decimal(n + 1),
        timestamp=NOW,
        account_id=ACCOUNT,
    )


def cost_break(n: int) -> Discrepancy:
    return Discrepancy(
        type=DiscrepancyType.COST_MISMATCH,
        severity=DiscrepancySeverity.WARNING,
        symbol=f"C{n:05d}",
        local_value=Decimal("10.00"),
        broker_value=Decimal("10.50"),
        timestamp=NOW,
        account_id=ACCOUNT,
    )


def result_with(discrepancies: list[Discrepancy]) -> ReconciliationResult:
    return ReconciliationResult(
        uuid.uuid4(), ACCOUNT, NOW, tuple(discrepancies), 10_000, context={"trigger": "on_demand"}
    )


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == RUN_LOGGER and r.levelno == logging.WARNING]


def test_a_few_discrepancies_get_a_record_each(caplog: pytest.LogCaptureFixture) -> None:
    result = result_with([quantity_break(n) for n in range(3)])

    with caplog.at_level(logging.INFO, logger=RUN_LOGGER):
        log_result(result)

    lines = [r.getMessage() for r in warnings_of(caplog)]
    assert lines == [
        f"CRITICAL quantity_mismatch on ACC-1 S{n:05d}: local {n}, broker {n + 1} "
        f"(run {result.run_id}, trigger on_demand)"
        for n in range(3)
    ]


def test_a_bad_day_is_one_record_each_up_to_the_cap_then_one_record_for_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    breaks = [quantity_break(n) for n in range(7_000)] + [cost_break(n) for n in range(3_000)]
    result = result_with(breaks)

    with caplog.at_level(logging.INFO, logger=RUN_LOGGER):
        log_result(result)

    records = warnings_of(caplog)
    assert len(records) == LOGGED_ONE_BY_ONE + 1
    together = records[-1]
    assert together.getMessage() == (
        f"{10_000 - LOGGED_ONE_BY_ONE:,} more discrepancies on ACC-1: "
        f"{7_000 - LOGGED_ONE_BY_ONE:,} quantity_mismatch, 3,000 cost_mismatch; "
        f"{7_000 - LOGGED_ONE_BY_ONE:,} critical, 3,000 warning "
        f"(run {result.run_id}, trigger on_demand; each one in this record's `discrepancies`)"
    )


def test_every_discrepancy_is_in_a_warning_record(caplog: pytest.LogCaptureFixture) -> None:
    breaks = [quantity_break(n) for n in range(500)]

    with caplog.at_level(logging.WARNING, logger=RUN_LOGGER):
        log_result(result_with(breaks))

    records = warnings_of(caplog)
    one_by_one = [r.symbol for r in records[:-1]]  # type: ignore[attr-defined]
    together = [d.symbol for d in records[-1].discrepancies]  # type: ignore[attr-defined]
    assert one_by_one + together == [d.symbol for d in breaks]


def test_the_record_of_the_rest_counts_them_in_fields(caplog: pytest.LogCaptureFixture) -> None:
    breaks = [quantity_break(n) for n in range(LOGGED_ONE_BY_ONE)] + [cost_break(n) for n in range(40)]
    result = result_with(breaks)

    with caplog.at_level(logging.WARNING, logger=RUN_LOGGER):
        log_result(result)

    together = warnings_of(caplog)[-1]
    assert together.types == {"cost_mismatch": 40}  # type: ignore[attr-defined]
    assert together.severities == {"warning": 40}  # type: ignore[attr-defined]
    assert together.run_id == str(result.run_id)  # type: ignore[attr-defined]
    assert together.account_id == ACCOUNT  # type: ignore[attr-defined]


def test_exactly_the_cap_needs_no_record_for_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=RUN_LOGGER):
        log_result(result_with([quantity_break(n) for n in range(LOGGED_ONE_BY_ONE)]))

    assert len(warnings_of(caplog)) == LOGGED_ONE_BY_ONE


def test_no_record_is_built_when_warnings_are_not_wanted(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[logging.LogRecord] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        built.append(record)
        return record

    monkeypatch.setattr(logging, "_logRecordFactory", counting)
    with caplog.at_level(logging.ERROR, logger=RUN_LOGGER):
        log_result(result_with([quantity_break(n) for n in range(1_000)]))

    assert built == []
