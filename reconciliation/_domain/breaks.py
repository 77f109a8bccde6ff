"""Breaks: one discrepancy key followed across runs, from the run that first saw it to
the run that no longer did. A key that resolves and comes back is a new break, with its
own `break_id` and its own age.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs

from reconciliation._domain.models import (
    AssetType,
    DiscrepancySeverity,
    DiscrepancyType,
    describe_subject,
    position_asset_type,
)
from reconciliation._domain.values import (
    name_text,
    optional_decimal,
    optional_finite_decimal,
    utc_datetime,
    utc_only,
    whole_number,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["BreakKey", "BreakState", "break_id_for", "break_ids_of", "describe_key"]

BreakKey = tuple[str, DiscrepancyType, str | None, AssetType | None, str | None]
"""(account_id, type, symbol, asset_type, currency): the same as `Discrepancy.key`."""


def break_id_for(first_run_id: UUID, key: BreakKey) -> UUID:
    """The identity of the break with `key` first seen in run `first_run_id`.

    Derived, not random, so recording the same run twice writes the same break: the
    UUIDv5 of the key's text in the run id's namespace (`uuid.uuid5`, computed the same).
    """
    return break_ids_of(first_run_id)(key)


def describe_key(key: BreakKey) -> str:
    """`quantity_mismatch AAPL (option) on ACC-1`, `cash_mismatch EUR on ACC-1`."""
    account_id, kind, symbol, asset_type, currency = key
    subject = describe_subject(symbol, asset_type, currency)
    return f"{kind.value} {subject or '(account)'} on {account_id}"


def break_ids_of(first_run_id: UUID) -> Callable[[BreakKey], UUID]:
    """`break_id_for` for one run's many new breaks: the run's namespace bytes made once."""
    namespace = first_run_id.bytes

    def break_id(key: BreakKey) -> UUID:
        account_id, kind, symbol, asset_type, currency = key
        parts = (account_id, kind.value, symbol or "", asset_type.value if asset_type else "", currency or "")
        name = "\x1f".join(parts).encode()
        digest = hashlib.sha1(namespace + name, usedforsecurity=False).digest()
        return UUID(bytes=digest[:16], version=5)

    return break_id


@attrs.frozen
class BreakState:
    """One break as of its latest sighting (open) or its resolution (resolved).

    `severity` is the severity after escalation by age; `local_value` and
    `broker_value` are those of the latest sighting. `halted_run_id` is the run that
    confirmed the break for the kill switch, None while it has not fired for it.

    .. versionadded:: 0.1
    """

    break_id: UUID
    account_id: str = attrs.field(validator=name_text)
    type: DiscrepancyType = attrs.field(validator=attrs.validators.instance_of(DiscrepancyType))
    symbol: str | None
    severity: DiscrepancySeverity = attrs.field(validator=attrs.validators.instance_of(DiscrepancySeverity))
    local_value: Decimal | None = attrs.field(converter=optional_decimal, validator=optional_finite_decimal)
    broker_value: Decimal | None = attrs.field(converter=optional_decimal, validator=optional_finite_decimal)
    first_seen: dt.datetime = attrs.field(converter=utc_datetime, validator=utc_only)
    last_seen: dt.datetime = attrs.field(converter=utc_datetime, validator=utc_only)
    consecutive_runs: int = attrs.field(validator=whole_number(1))
    first_run_id: UUID
    last_run_id: UUID
    halted_run_id: UUID | None = None
    resolved_at: dt.datetime | None = attrs.field(
        default=None, converter=attrs.converters.optional(utc_datetime), validator=attrs.validators.optional(utc_only)
    )
    resolved_run_id: UUID | None = attrs.field(default=None)
    asset_type: AssetType | None = attrs.field(
        default=attrs.Factory(position_asset_type, takes_self=True), kw_only=True
    )
    """The position's asset type; None for an account-level break."""
    currency: str | None = attrs.field(default=None, kw_only=True)
    """The currency of a per-currency cash break; None otherwise."""

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
        return (self.account_id, self.type, self.symbol, self.asset_type, self.currency)

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def age(self) -> dt.timedelta:
        """From the first sighting to the latest one (or to the resolution)."""
        return (self.resolved_at or self.last_seen) - self.first_seen
