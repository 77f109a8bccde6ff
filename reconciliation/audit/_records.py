"""What the audit trail holds about runs: each recorded run and its discrepancies, aged."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Literal
from uuid import UUID

import attrs

from reconciliation._domain.fills import Explanation
from reconciliation._domain.models import (
    Discrepancy,
    DiscrepancySeverity,
    NettedSymbol,
    ReconciliationResult,
)
from reconciliation._domain.values import frozen_context, non_empty_text, utc_datetime, utc_only, whole_number

__all__ = ["BreakSighting", "RecordedDiscrepancy", "RunRecord"]


@attrs.frozen
class RecordedDiscrepancy:
    """A discrepancy as the comparator classified it, with its break's age at that run."""

    discrepancy: Discrepancy
    severity: DiscrepancySeverity
    """After escalation by age; `discrepancy.severity` is the classified one."""
    break_id: UUID
    first_seen: dt.datetime = attrs.field(converter=utc_datetime, validator=utc_only)
    consecutive_runs: int = attrs.field(validator=whole_number(1))


@attrs.frozen
class RunRecord:
    """One run as the audit store holds it: the result, its error, its discrepancies."""

    run_id: UUID
    account_id: str = attrs.field(validator=non_empty_text)
    timestamp: dt.datetime = attrs.field(converter=utc_datetime, validator=utc_only)
    positions_checked: int
    duration_ms: float
    context: Mapping[str, str] = attrs.field(converter=frozen_context)
    error: str | None
    netted: tuple[NettedSymbol, ...]
    discrepancies: tuple[RecordedDiscrepancy, ...]
    """All the run found; fewer when `history.load_history` filtered them."""
    discrepancy_count: int
    """How many the run found, filtered or not."""
    suspect: str | None = None
    """Why the broker's answer was implausible, if it was (`ReconciliationResult.suspect`)."""

    @property
    def status(self) -> Literal["ok", "failed"]:
        return "ok" if self.error is None else "failed"

    @property
    def is_clean(self) -> bool:
        return self.error is None and self.discrepancy_count == 0

    def to_result(self) -> ReconciliationResult:
        """The result as it was recorded, with the classified (not escalated) severities.

        Only the discrepancies this record holds: all of them unless it was filtered.
        """
        return ReconciliationResult(
            run_id=self.run_id,
            account_id=self.account_id,
            timestamp=self.timestamp,
            discrepancies=tuple(d.discrepancy for d in self.discrepancies),
            positions_checked=self.positions_checked,
            duration_ms=self.duration_ms,
            context=self.context,
            error=self.error,
            netted=self.netted,
            suspect=self.suspect,
        )


@attrs.frozen
class BreakSighting:
    """One run that saw a break: when, how severe it was then, and both figures."""

    run_id: UUID
    seen_at: dt.datetime = attrs.field(converter=utc_datetime, validator=utc_only)
    severity: DiscrepancySeverity
    """After escalation, as it was published."""
    local_value: Decimal | None
    broker_value: Decimal | None
    consecutive_runs: int = attrs.field(validator=whole_number(1))
    explanation: Explanation | None = None
    """The fills behind it at that run, when both books said them."""
