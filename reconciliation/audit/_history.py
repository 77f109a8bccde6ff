"""What the `reconciliation history` command shows: an account's runs and breaks, filtered.

Plain records for a table, and a JSON-able dict form (`--json`) that uses the Redis
payloads' own keys and encodings, plus the age facts of each break.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from reconciliation._domain.breaks import BreakState
from reconciliation._domain.correction import CorrectionEvent
from reconciliation._wire.payloads import (
    asset_type_text,
    correction_payload,
    decimal_text,
    discrepancy_payload,
    result_payload,
    timestamp_text,
)
from reconciliation.audit._records import RunRecord

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Collection
    from uuid import UUID

    from reconciliation._domain.models import DiscrepancySeverity, DiscrepancyType
    from reconciliation.audit._records import RecordedDiscrepancy
    from reconciliation.audit._store import AuditStore

__all__ = [
    "AccountCorrections",
    "AccountHistory",
    "break_to_dict",
    "load_corrections",
    "load_history",
    "run_to_dict",
]


@attrs.frozen
class AccountHistory:
    """An account's runs (newest first) and breaks (oldest first), as they were asked for."""

    account_id: str
    runs: tuple[RunRecord, ...]
    breaks: tuple[BreakState, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "runs": [run_to_dict(run) for run in self.runs],
            "breaks": [break_to_dict(state) for state in self.breaks],
        }


def load_history(
    store: AuditStore,
    account_id: str,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 50,
    types: Collection[DiscrepancyType] | None = None,
    severities: Collection[DiscrepancySeverity] | None = None,
    open_only: bool = True,
) -> AccountHistory:
    """Read an account's history from `store`.

    Args:
        since: runs at or after it; breaks still seen, or resolved, at or after it.
        until: runs before it; breaks first seen before it.
        limit: the most recent runs to show, at most.
        types: only breaks, and discrepancies within runs, of these types (None or
            empty: all). Runs are listed whatever they found, so a clean run shows.
        severities: as `types`, for severities after escalation.
        open_only: only the breaks not resolved yet.

    Raises:
        AuditStoreError: the store could not be read.
    """
    runs = store.list_runs(account_id, since=since, until=until, limit=limit)
    breaks = store.list_breaks(
        account_id, open_only=open_only, types=types, severities=severities, since=since
    )
    return AccountHistory(
        account_id=account_id,
        runs=tuple(_only(run, types, severities) for run in runs),
        breaks=tuple(b for b in breaks if until is None or b.first_seen < until),
    )


@attrs.frozen
class AccountCorrections:
    """An account's correction steps (newest first), as they were asked for."""

    account_id: str
    corrections: tuple[CorrectionEvent, ...]

    def to_dict(self) -> dict[str, Any]:
        """Each step as its reconciliation:correction payload."""
        return {"account_id": self.account_id, "corrections": [correction_payload(e) for e in self.corrections]}


def load_corrections(
    store: AuditStore,
    account_id: str,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 50,
    types: Collection[DiscrepancyType] | None = None,
) -> AccountCorrections:
    """Read an account's correction steps in [since, until) from `store`, the latest `limit`.

    Raises:
        AuditStoreError: the store could not be read.
    """
    found = store.list_corrections(account_id, since=since, until=until, limit=limit, types=types)
    return AccountCorrections(account_id=account_id, corrections=tuple(found))


def _only(
    run: RunRecord,
    types: Collection[DiscrepancyType] | None,
    severities: Collection[DiscrepancySeverity] | None,
) -> RunRecord:
    if not types and not severities:
        return run
    return attrs.evolve(
        run,
        discrepancies=tuple(
            d
            for d in run.discrepancies
            if (not types or d.discrepancy.type in types) and (not severities or d.severity in severities)
        ),
    )


def run_to_dict(run: RunRecord) -> dict[str, Any]:
    """The run's result payload, with its (possibly filtered) discrepancies and their age.

    ``discrepancy_count`` is how many the run found, whatever the filter shows.
    """
    payload = result_payload(run.to_result())
    payload["is_clean"] = run.is_clean
    payload["discrepancy_count"] = run.discrepancy_count
    payload["discrepancies"] = [_discrepancy_dict(run, recorded) for recorded in run.discrepancies]
    return payload


def _discrepancy_dict(run: RunRecord, recorded: RecordedDiscrepancy) -> dict[str, Any]:
    payload = discrepancy_payload(run.to_result(), recorded.discrepancy)
    payload["classified_severity"] = recorded.discrepancy.severity.value
    payload["severity"] = recorded.severity.value
    payload["break_id"] = str(recorded.break_id)
    payload["first_seen"] = timestamp_text(recorded.first_seen)
    payload["consecutive_runs"] = recorded.consecutive_runs
    return payload


def _optional_id(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def break_to_dict(state: BreakState) -> dict[str, Any]:
    return {
        "break_id": str(state.break_id),
        "account_id": state.account_id,
        "type": state.type.value,
        "symbol": state.symbol,
        "asset_type": asset_type_text(state.asset_type),
        "currency": state.currency,
        "severity": state.severity.value,
        "status": "open" if state.is_open else "resolved",
        "local_value": decimal_text(state.local_value),
        "broker_value": decimal_text(state.broker_value),
        "first_seen": timestamp_text(state.first_seen),
        "last_seen": timestamp_text(state.last_seen),
        "consecutive_runs": state.consecutive_runs,
        "age_seconds": state.age.total_seconds(),
        "first_run_id": str(state.first_run_id),
        "last_run_id": str(state.last_run_id),
        "halted_run_id": _optional_id(state.halted_run_id),
        "resolved_at": None if state.resolved_at is None else timestamp_text(state.resolved_at),
        "resolved_run_id": _optional_id(state.resolved_run_id),
    }
