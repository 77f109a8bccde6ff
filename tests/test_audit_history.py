from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest

from reconciliation._domain.models import (
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    ReconciliationResult,
)
from reconciliation._wire.payloads import discrepancy_payload, result_payload
from reconciliation.audit import AgeingPolicy, BreakTracker, open_store
from reconciliation.audit._history import load_history, run_to_dict

T0 = dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.UTC)
ACC = "ACC-1"
QUANTITY, CASH = DiscrepancyType.QUANTITY_MISMATCH, DiscrepancyType.CASH_MISMATCH
CRITICAL, WARNING = DiscrepancySeverity.CRITICAL, DiscrepancySeverity.WARNING


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def quantity(symbol: str = "AAPL") -> Discrepancy:
    return Discrepancy(
        type=QUANTITY,
        severity=CRITICAL,
        symbol=symbol,
        local_value=Decimal(100),
        broker_value=Decimal("1.5E+2"),
        timestamp=T0,
        account_id=ACC,
    )


def cash() -> Discrepancy:
    return Discrepancy(
        type=CASH,
        severity=WARNING,
        symbol=None,
        local_value=Decimal("1000.00"),
        broker_value=Decimal("987.65"),
        timestamp=T0,
        account_id=ACC,
    )


def run(minutes: float, *discrepancies: Discrepancy, error: str | None = None) -> ReconciliationResult:
    return ReconciliationResult(
        run_id=uuid.uuid4(),
        account_id=ACC,
        timestamp=at(minutes),
        discrepancies=discrepancies,
        error=error,
        context={"trigger": "periodic"},
    )


@pytest.fixture
def store(tmp_path):
    store = open_store(tmp_path / "audit.db")
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def script(store):
    """Four runs: two breaks, a failed run, the quantity break resolved, the cash one escalated."""
    tracker = BreakTracker(AgeingPolicy(escalate_after_runs=3))
    results = [
        run(0, quantity(), cash()),
        run(5, error="broker timed out after 30.0 s"),
        run(10, quantity(), cash()),
        run(15, cash()),
    ]
    for result in results:
        store.record_run(result, tracker.observe(result))
    return results


def test_history_lists_exactly_what_happened(store, script):
    history = load_history(store, ACC)
    assert [r.run_id for r in history.runs] == [r.run_id for r in reversed(script)]
    assert [r.status for r in history.runs] == ["ok", "ok", "failed", "ok"]
    assert [len(r.discrepancies) for r in history.runs] == [1, 2, 0, 2]
    (open_break,) = history.breaks
    assert (open_break.type, open_break.first_seen, open_break.consecutive_runs) == (CASH, at(0), 3)
    assert open_break.severity is CRITICAL


def test_resolved_breaks_are_listed_when_asked_for(store, script):
    history = load_history(store, ACC, open_only=False)
    assert [(b.type, b.is_open) for b in history.breaks] == [(CASH, True), (QUANTITY, False)]
    resolved = history.breaks[1]
    assert (resolved.resolved_at, resolved.resolved_run_id) == (at(15), script[3].run_id)


def test_a_type_filter_narrows_breaks_and_discrepancies_but_keeps_every_run(store, script):
    history = load_history(store, ACC, types=[QUANTITY], open_only=False)
    assert [b.type for b in history.breaks] == [QUANTITY]
    assert len(history.runs) == 4
    assert [[d.discrepancy.type for d in r.discrepancies] for r in history.runs] == [
        [],
        [QUANTITY],
        [],
        [QUANTITY],
    ]


def test_a_severity_filter_uses_the_escalated_severity(store, script):
    history = load_history(store, ACC, severities=[CRITICAL], open_only=False)
    assert [b.type for b in history.breaks] == [CASH, QUANTITY]
    latest = history.runs[0]
    assert [(d.discrepancy.type, d.severity) for d in latest.discrepancies] == [(CASH, CRITICAL)]


def test_a_filtered_run_still_counts_what_it_found(store, script):
    history = load_history(store, ACC, types=[QUANTITY])
    latest = history.runs[0]
    assert (latest.discrepancies, latest.discrepancy_count, latest.is_clean) == ((), 1, False)
    assert (run_to_dict(latest)["discrepancy_count"], run_to_dict(latest)["is_clean"]) == (1, False)


def test_a_time_window_selects_runs_and_breaks(store, script):
    history = load_history(store, ACC, since=at(5), until=at(15), open_only=False)
    assert [r.timestamp for r in history.runs] == [at(10), at(5)]
    assert [b.type for b in history.breaks] == [CASH, QUANTITY]
    assert load_history(store, ACC, until=at(0), open_only=False).breaks == ()


def test_the_limit_keeps_the_latest_runs(store, script):
    assert [r.timestamp for r in load_history(store, ACC, limit=1).runs] == [at(15)]


def test_the_dict_form_is_json(store, script):
    data = load_history(store, ACC, open_only=False).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["account_id"] == ACC


def test_a_run_dict_carries_the_result_payload(store, script):
    latest = load_history(store, ACC).runs[0]
    data = run_to_dict(latest)
    expected = result_payload(script[3])
    assert {key: data[key] for key in expected} == expected


def test_a_discrepancy_dict_carries_the_payload_and_the_age(store, script):
    latest = load_history(store, ACC).runs[1]
    (aapl,) = (d for d in run_to_dict(latest)["discrepancies"] if d["type"] == "quantity_mismatch")
    expected = discrepancy_payload(script[2], quantity())
    assert {key: aapl[key] for key in expected} == expected
    assert aapl["broker_value"] == "150"
    assert (aapl["first_seen"], aapl["consecutive_runs"]) == ("2026-01-05T14:30:00.000000+00:00", 2)


def test_a_break_dict_shows_status_and_age(store, script):
    data = load_history(store, ACC, open_only=False).to_dict()
    cash_break, quantity_break = data["breaks"]
    assert (cash_break["status"], cash_break["severity"], cash_break["age_seconds"]) == (
        "open",
        "critical",
        900.0,
    )
    assert cash_break["resolved_at"] is None
    assert (quantity_break["status"], quantity_break["resolved_at"]) == (
        "resolved",
        "2026-01-05T14:45:00.000000+00:00",
    )
    assert quantity_break["broker_value"] == "150"
