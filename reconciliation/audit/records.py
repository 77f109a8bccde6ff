"""What the audit trail holds: recorded runs, their discrepancies, and breaks across runs.

A *break* is one discrepancy key (account, type, symbol) followed from the run that
first saw it to the run that no longer did. A key that resolves and comes back is a
new break, with its own `break_id` and its own age.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import attrs

from reconciliation._values import (
    frozen_context,
    non_empty_text,
    optional_decimal,
    optional_finite_decimal,
    utc_datetime,
    utc_only,
)
from reconciliation.models import (
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    NettedSymbol,
    ReconciliationResult,
)

__all__ = ["BreakKey", "BreakState", "RecordedDiscrepancy", "RunRecord", "break_id_for"]

logger = logging.getLogger(__name__)

BreakKey = tuple[str, DiscrepancyType, str | None]
"""(account_id, type, symbol): the same as `Discrepancy.key`."""


def break_id_for(first_run_id: UUID, key: BreakKey) -> UUID:
    """The identity of the break with `key` first seen in run `first_run_id`.

    Derived, not random, so recording the same run twice writes the same break.
    """
    account_id, kind, symbol = key
    return uuid.uuid5(first_run_id, f"{account_id}\x1f{kind.value}\x1f{symbol or ''}")


def _optional_utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else utc_datetime(value)


def _optional_utc_only(instance: object, field: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        utc_only(instance, field, value)


def _at_least_one(_instance: object, field: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{field.name} must be a whole number, not {type(value).__name__} {value!r}"
        raise TypeError(msg)
    if value < 1:
        msg = f"{field.name} must be at least 1, got {value}"
        raise ValueError(msg)


@attrs.frozen
class BreakState:
    """One break as of its latest sighting (open) or its resolution (resolved).

    `severity` is the severity after escalation by age; `local_value` and
    `broker_value` are those of the latest sighting. `halted_run_id` is the run that
    confirmed the break for the kill switch, None while it has not fired for it.
    """

    break_id: UUID
    account_id: str = attrs.field(validator=non_empty_text)
    type: DiscrepancyType = attrs.field(validator=attrs.validators.instance_of(DiscrepancyType))
    symbol: str | None
    severity: DiscrepancySeverity = attrs.field(validator=attrs.validators.instance_of(DiscrepancySeverity))
    local_value: Decimal | None = attrs.field(converter=optional_decimal, validator=optional_finite_decimal)
    broker_value: Decimal | None = attrs.field(converter=optional_decimal, validator=optional_finite_decimal)
    first_seen: dt.datetime = attrs.field(converter=utc_datetime, validator=utc_only)
    last_seen: dt.datetime = attrs.field(converter=utc_datetime, validator=utc_only)
    consecutive_runs: int = attrs.field(validator=_at_least_one)
    first_run_id: UUID
    last_run_id: UUID
    halted_run_id: UUID | None = None
    resolved_at: dt.datetime | None = attrs.field(
        default=None, converter=_optional_utc, validator=_optional_utc_only
    )
    resolved_run_id: UUID | None = attrs.field(default=None)

    @last_seen.validator
    def _not_before_first_seen(self, _field: attrs.Attribute[Any], value: dt.datetime) -> None:
        if value < self.first_seen:
            msg = f"last_seen ({value.isoformat()}) is before first_seen ({self.first_seen.isoformat()})"
            raise ValueError(msg)

    @resolved_run_id.validator
    def _resolved_together(self, _field: attrs.Attribute[Any], value: UUID | None) -> None:
        if (value is None) != (self.resolved_at is None):
            msg = "resolved_at and resolved_run_id are set together or not at all"
            raise ValueError(msg)

    @property
    def key(self) -> BreakKey:
        return (self.account_id, self.type, self.symbol)

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def age(self) -> dt.timedelta:
        """From the first sighting to the latest one (or to the resolution)."""
        return (self.resolved_at or self.last_seen) - self.first_seen


@attrs.frozen
class RecordedDiscrepancy:
    """A discrepancy as the comparator classified it, with its break's age at that run."""

    discrepancy: Discrepancy
    severity: DiscrepancySeverity
    """After escalation by age; `discrepancy.severity` is the classified one."""
    break_id: UUID
    first_seen: dt.datetime = attrs.field(converter=utc_datetime, validator=utc_only)
    consecutive_runs: int = attrs.field(validator=_at_least_one)


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
        )
