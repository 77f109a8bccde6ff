"""The audit trail of corrections (schema version 3): every step, who and when, read back."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from reconciliation import CorrectionEvent, CorrectionStatus
from reconciliation._domain.correction import Correction
from reconciliation._domain.fills import Fill
from reconciliation._domain.models import (
    AssetType,
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    ReconciliationResult,
)
from reconciliation.audit import SCHEMA_VERSION, AuditStore, BreakTracker, open_store
from reconciliation.audit import _sql as audit_sql

ACC = "ACC-1"
T0 = dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.UTC)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def correction(break_id: uuid.UUID | None = None, **changes: object) -> Correction:
    fields: dict[str, object] = {
        "break_id": break_id or uuid.uuid4(),
        "run_id": uuid.uuid4(),
        "account_id": ACC,
        "type": DiscrepancyType.QUANTITY_MISMATCH,
        "symbol": "MSFT",
        "asset_type": AssetType.STOCK,
        "currency": None,
        "local_value": Decimal(50),
        "broker_value": Decimal(60),
        "observed_at": T0,
        "consecutive_runs": 2,
        "quantity": Decimal(10),
        "price": Decimal("415.30"),
        "avg_cost": Decimal("415.050000000000000000000000000001"),
        "notional": Decimal("4153.00"),
    }
    return Correction(**(fields | changes))  # type: ignore[arg-type]


def event(
    status: CorrectionStatus, fix: Correction | None = None, *, minutes: int = 0, **changes: object
) -> CorrectionEvent:
    return CorrectionEvent(
        status=status,
        correction=fix or correction(),
        mode="apply",
        timestamp=at(minutes),
        actor="reconciliation@host:42",
        confirm_after_runs=2,
        severity=DiscrepancySeverity.CRITICAL,
        **changes,  # type: ignore[arg-type]
    )


@pytest.fixture
def store(audit_target: str) -> Iterator[AuditStore]:
    opened = open_store(audit_target)
    opened.migrate()
    yield opened
    opened.close()


def test_a_recorded_step_reads_back_exactly(store: AuditStore) -> None:
    applied = event(CorrectionStatus.APPLIED, reason=None)

    store.record_correction(applied)

    assert store.list_corrections(ACC) == [applied]


def test_a_correction_that_books_the_brokers_fills_reads_back_with_them(store: AuditStore) -> None:
    missed = Fill("E-2", "O-2", "MSFT", 10, "415.30", at(-3), fee="0.35", venue_fill_id="V-9")
    applied = event(CorrectionStatus.APPLIED, correction(avg_cost=None, fills=[missed]))

    store.record_correction(applied)

    assert store.list_corrections(ACC) == [applied]


def test_recording_a_step_twice_records_it_once(store: AuditStore) -> None:
    applied = event(CorrectionStatus.APPLIED)

    store.record_correction(applied)
    store.record_correction(applied)

    assert len(store.list_corrections(ACC)) == 1


def test_a_cash_correction_in_a_currency_reads_back_exactly(store: AuditStore) -> None:
    fix = correction(
        type=DiscrepancyType.CASH_MISMATCH,
        symbol=None,
        asset_type=None,
        currency="EUR",
        quantity=None,
        price=None,
        avg_cost=None,
        cash=Decimal("-4.95"),
        notional=Decimal("4.95"),
    )
    refused = event(CorrectionStatus.REFUSED, fix, reason="over the limit")

    store.record_correction(refused)

    assert store.list_corrections(ACC) == [refused]


def test_steps_are_listed_newest_first_and_a_moments_steps_in_the_order_of_a_life(store: AuditStore) -> None:
    fix = correction()
    for status, minutes in [
        (CorrectionStatus.VERIFIED, 2),
        (CorrectionStatus.CONFIRMED, 1),
        (CorrectionStatus.PROPOSED, 0),
        (CorrectionStatus.APPLIED, 1),
    ]:
        store.record_correction(event(status, fix, minutes=minutes))

    listed = [e.status for e in store.list_corrections(ACC)]

    assert listed == [
        CorrectionStatus.VERIFIED,
        CorrectionStatus.APPLIED,
        CorrectionStatus.CONFIRMED,
        CorrectionStatus.PROPOSED,
    ]


def test_steps_are_listed_within_a_window_by_type_up_to_a_limit(store: AuditStore) -> None:
    cash_fix = correction(
        type=DiscrepancyType.CASH_MISMATCH, symbol=None, asset_type=None, quantity=None, price=None,
        avg_cost=None, cash=Decimal(5), notional=Decimal(5),
    )  # fmt: skip
    for minutes in range(5):
        store.record_correction(event(CorrectionStatus.PROPOSED, correction(), minutes=minutes))
    store.record_correction(event(CorrectionStatus.PROPOSED, cash_fix, minutes=3))

    window = store.list_corrections(ACC, since=at(1), until=at(4), limit=10)
    cash_only = store.list_corrections(ACC, types=[DiscrepancyType.CASH_MISMATCH])
    latest = store.list_corrections(ACC, limit=2)

    assert [e.timestamp for e in window] == [at(3), at(3), at(2), at(1)]
    assert [e.correction for e in cash_only] == [cash_fix]
    assert len(latest) == 2


def test_the_open_breaks_a_correction_did_not_resolve_are_read_back_as_blocked(store: AuditStore) -> None:
    tracker = BreakTracker()
    held = Discrepancy(
        DiscrepancyType.QUANTITY_MISMATCH, DiscrepancySeverity.CRITICAL, "MSFT", 50, 60, T0, ACC
    )
    gone = Discrepancy(DiscrepancyType.QUANTITY_MISMATCH, DiscrepancySeverity.CRITICAL, "AAPL", 1, 2, T0, ACC)
    first = ReconciliationResult(uuid.uuid4(), ACC, at(0), (gone, held))
    aged = tracker.observe(first)
    store.record_run(first, aged)
    held_id, gone_id = aged.state_of(held).break_id, aged.state_of(gone).break_id
    for break_id in (held_id, gone_id):
        store.record_correction(
            event(CorrectionStatus.UNRESOLVED, correction(break_id), reason="still there")
        )
    second = ReconciliationResult(uuid.uuid4(), ACC, at(5), (held,))
    store.record_run(second, tracker.observe(second))

    assert store.load_blocked_breaks(ACC) == [held_id]


def test_a_store_of_schema_version_2_gains_the_corrections_table(
    audit_target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_sql, "MIGRATIONS", audit_sql.MIGRATIONS[:2])
    monkeypatch.setattr(audit_sql, "SCHEMA_VERSION", 2)
    old = open_store(audit_target)
    old.migrate()
    monkeypatch.undo()

    old.migrate()
    old.record_correction(event(CorrectionStatus.PROPOSED))

    assert old.schema_version() == SCHEMA_VERSION == 5  # type: ignore[attr-defined]
    assert len(old.list_corrections(ACC)) == 1
    old.close()
