"""Break ageing, escalation, the kill switch and the audit trail, through the running service."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

import jsonschema
from helpers import eventually
from service_fixtures import make_fill

from reconciliation import AgeingPolicy, DiscrepancySeverity
from reconciliation._domain.breaks import BreakState
from reconciliation._domain.models import ReconciliationResult
from reconciliation._publishing.inbound import SCHEMA
from reconciliation.audit import open_store


def cash_break(harness: Any) -> None:
    """The broker holds 50 less cash than the local book thinks: a cash_mismatch each run."""
    harness.broker.cash = Decimal(950)
    harness.broker.total_equity = Decimal(1000)


def test_a_discrepancy_payload_says_since_when_and_for_how_many_runs(harness_factory: Any) -> None:
    harness = harness_factory()
    cash_break(harness)
    first = harness.start()
    assert first is not None
    harness.reconcile()
    harness.reconcile()
    eventually(lambda: len(harness.capture.discrepancies) == 3, what="three discrepancy payloads")
    payloads = harness.capture.discrepancies
    assert [p["consecutive_runs"] for p in payloads] == [1, 2, 3]
    assert {p["first_seen"] for p in payloads} == {payloads[0]["timestamp"]}
    assert len({p["break_id"] for p in payloads}) == 1


def test_a_break_that_disappears_is_published_as_resolved(harness_factory: Any) -> None:
    harness = harness_factory()
    cash_break(harness)
    harness.start()
    harness.broker.cash = Decimal(1000)
    resolving = harness.reconcile()
    eventually(lambda: len(harness.capture.resolved) == 1, what="the resolved payload")
    resolved = harness.capture.resolved[0]
    assert (resolved["type"], resolved["symbol"], resolved["run_id"]) == (
        "cash_mismatch",
        None,
        str(resolving.run_id),
    )


def test_a_failed_run_neither_ages_nor_resolves_a_break(harness_factory: Any) -> None:
    harness = harness_factory()
    cash_break(harness)
    harness.start()
    harness.broker.then_raise(ConnectionError("down"))
    harness.reconcile()
    harness.reconcile()
    eventually(lambda: len(harness.capture.discrepancies) == 2, what="the second sighting")
    assert harness.capture.discrepancies[1]["consecutive_runs"] == 2
    assert harness.capture.resolved == []


def test_a_break_is_escalated_once_it_has_persisted_the_configured_runs(harness_factory: Any) -> None:
    harness = harness_factory(ageing=AgeingPolicy(escalate_after_runs=3, escalate_to="critical"))
    cash_break(harness)
    harness.start()
    second = harness.reconcile()
    third = harness.reconcile()
    assert second.discrepancies[0].severity is DiscrepancySeverity.WARNING
    assert third.discrepancies[0].severity is DiscrepancySeverity.CRITICAL
    eventually(lambda: len(harness.capture.discrepancies) == 3, what="three payloads")
    assert [p["severity"] for p in harness.capture.discrepancies] == ["warning", "warning", "critical"]


def test_the_kill_switch_fires_once_and_only_after_the_confirmation_count(harness_factory: Any) -> None:
    halts: list[tuple[BreakState, ReconciliationResult]] = []
    harness = harness_factory(
        ageing=AgeingPolicy(halt_after_runs=3), on_halt=lambda state, result: halts.append((state, result))
    )
    harness.broker.positions = []
    harness.book.apply_fill(make_fill(1))
    harness.start()
    harness.reconcile()
    assert halts == []
    confirming = harness.reconcile()
    harness.reconcile()
    harness.reconcile()
    assert len(halts) == 1
    state, result = halts[0]
    assert (state.type.value, state.symbol, state.consecutive_runs) == ("missing_broker", "AAPL", 3)
    assert result.run_id == confirming.run_id
    eventually(lambda: len(harness.capture.halts) == 1, what="the halt payload")
    halt = harness.capture.halts[0]
    assert (halt["run_id"], halt["type"], halt["symbol"]) == (
        str(confirming.run_id),
        "missing_broker",
        "AAPL",
    )


def test_the_kill_switch_is_off_by_default(harness_factory: Any) -> None:
    halts: list[Any] = []
    harness = harness_factory(on_halt=lambda *args: halts.append(args))
    harness.book.apply_fill(make_fill(1))
    harness.start()
    for _ in range(5):
        harness.reconcile()
    assert halts == []
    assert harness.capture.halts == []


def test_a_failing_kill_switch_callback_does_not_stop_reconciliation(harness_factory: Any) -> None:
    def explode(*_: Any) -> None:
        msg = "host bug"
        raise RuntimeError(msg)

    harness = harness_factory(ageing=AgeingPolicy(halt_after_runs=1), on_halt=explode)
    harness.book.apply_fill(make_fill(1))
    harness.start()
    assert harness.reconcile().status == "ok"
    assert harness.service.health().healthy


def test_every_run_and_break_is_recorded_in_the_audit_store(harness_factory: Any, audit_target: str) -> None:
    harness = harness_factory(audit_store=audit_target)
    cash_break(harness)
    startup = harness.start()
    assert startup is not None
    on_demand = harness.reconcile()
    eventually(lambda: harness.service.audit_health().delivered_runs == 2, what="both runs recorded")
    store = open_store(audit_target)
    runs = store.list_runs("ACC-1")
    assert [r.run_id for r in runs] == [on_demand.run_id, startup.run_id]
    (open_break,) = store.list_breaks("ACC-1", open_only=True)
    assert (open_break.type.value, open_break.consecutive_runs) == ("cash_mismatch", 2)
    store.close()


def test_break_ageing_survives_a_restart(harness_factory: Any, audit_target: str) -> None:
    before = harness_factory(audit_store=audit_target)
    cash_break(before)
    first = before.start()
    assert first is not None
    before.reconcile()
    before.stop()
    after = harness_factory(audit_store=audit_target)
    cash_break(after)
    restarted = after.start()
    assert restarted is not None
    eventually(lambda: len(after.capture.discrepancies) == 1, what="the discrepancy after the restart")
    payload = after.capture.discrepancies[0]
    assert payload["consecutive_runs"] == 3
    assert payload["first_seen"] == first.timestamp.isoformat(timespec="microseconds")


def test_a_locked_audit_store_never_stops_reconciliation_or_publishing(
    harness_factory: Any, tmp_path: Any
) -> None:
    path = tmp_path / "audit.db"
    harness = harness_factory(audit_store=str(path))
    harness.start()
    eventually(lambda: harness.service.audit_health().delivered_runs == 1, what="the startup run recorded")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        results = [harness.reconcile() for _ in range(3)]
        assert all(r.status == "ok" for r in results)
        harness.capture.wait_for_results(4)
        eventually(
            lambda: not harness.service.audit_health().reachable,
            timeout=15,
            what="the store unavailable",
        )
        assert harness.service.audit_health().queued_runs >= 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    eventually(
        lambda: harness.service.audit_health().delivered_runs == 4,
        timeout=30,
        what="the backlog recorded",
    )


def test_ageing_payloads_satisfy_the_published_schema(harness_factory: Any) -> None:
    def check(kind: str, payload: dict[str, Any]) -> None:
        jsonschema.Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{kind}"}).validate(payload)

    harness = harness_factory(ageing=AgeingPolicy(halt_after_runs=2))
    harness.book.apply_fill(make_fill(1))
    harness.start()
    harness.reconcile()
    harness.book.apply_fill(make_fill(2, quantity=-10))
    harness.reconcile()
    eventually(lambda: harness.capture.resolved and harness.capture.halts, what="resolved and halt payloads")
    for payload in harness.capture.discrepancies:
        check("discrepancy", payload)
    check("resolved", harness.capture.resolved[0])
    check("halt", harness.capture.halts[0])
