"""The one place the Redis payloads are built, exactly as spec/contract.md fixes them.

`result_payload` and `discrepancy_payload` turn the domain's values into plain JSON
objects (decimals as exact plain-notation strings, timestamps as ISO-8601 UTC), `encode`
makes the bytes deterministic, and `iter_payloads` lists one run's messages in the order
they are published: the result first, then each discrepancy.
docs/payloads.schema.json describes both payloads for consumers.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from decimal import Decimal

    from reconciliation._domain.ageing import AgeingUpdate
    from reconciliation._domain.breaks import BreakState
    from reconciliation._domain.models import AssetType, Discrepancy, ReconciliationResult

__all__ = [
    "DISCREPANCY_CHANNEL",
    "HALT_CHANNEL",
    "RESOLVED_CHANNEL",
    "RESULT_CHANNEL",
    "asset_type_text",
    "break_facts",
    "decimal_text",
    "discrepancy_payload",
    "encode",
    "halt_payload",
    "iter_payloads",
    "resolved_payload",
    "result_payload",
    "timestamp_text",
]

logger = logging.getLogger(__name__)

RESULT_CHANNEL = "reconciliation:result"
DISCREPANCY_CHANNEL = "reconciliation:discrepancy"
RESOLVED_CHANNEL = "reconciliation:resolved"
HALT_CHANNEL = "reconciliation:halt"


def decimal_text(value: Decimal | None) -> str | None:
    """The exact value in plain notation ("150.25", "100" for 1E+2), or None."""
    return None if value is None else format(value, "f")


def asset_type_text(value: AssetType | None) -> str | None:
    """The asset type as text ("stock", "option", ...); None for an account-level discrepancy."""
    return None if value is None else value.value


def timestamp_text(value: dt.datetime) -> str:
    """ISO-8601 in UTC, always with microseconds and "+00:00"."""
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def result_payload(result: ReconciliationResult) -> dict[str, Any]:
    return {
        "run_id": str(result.run_id),
        "account_id": result.account_id,
        "timestamp": timestamp_text(result.timestamp),
        "is_clean": result.is_clean,
        "discrepancy_count": len(result.discrepancies),
        "positions_checked": result.positions_checked,
        "duration_ms": result.duration_ms,
        "context": dict(result.context),
        "status": result.status,
        "error": result.error,
        "netted": [
            {
                "side": netted.side,
                "symbol": netted.symbol,
                "asset_type": netted.asset_type.value,
                "entries": netted.entries,
            }
            for netted in result.netted
        ],
    }


def discrepancy_payload(result: ReconciliationResult, discrepancy: Discrepancy) -> dict[str, Any]:
    return {
        "run_id": str(result.run_id),
        "type": discrepancy.type.value,
        "severity": discrepancy.severity.value,
        "symbol": discrepancy.symbol,
        "asset_type": asset_type_text(discrepancy.asset_type),
        "currency": discrepancy.currency,
        "local_value": decimal_text(discrepancy.local_value),
        "broker_value": decimal_text(discrepancy.broker_value),
        "timestamp": timestamp_text(discrepancy.timestamp),
        "account_id": discrepancy.account_id,
    }


def encode(payload: dict[str, Any]) -> str:
    """Compact JSON with sorted keys: the same payload always gives the same text.

    Raises:
        ValueError: a float in the payload is NaN or infinite (not valid JSON).
    """
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)


def break_facts(state: BreakState) -> dict[str, Any]:
    """How old a break is: added to its discrepancy payload."""
    return {
        "break_id": str(state.break_id),
        "first_seen": timestamp_text(state.first_seen),
        "consecutive_runs": state.consecutive_runs,
    }


def resolved_payload(result: ReconciliationResult, state: BreakState) -> dict[str, Any]:
    """A break that `result`'s run no longer saw."""
    return {
        "run_id": str(result.run_id),
        "account_id": state.account_id,
        "type": state.type.value,
        "symbol": state.symbol,
        "asset_type": asset_type_text(state.asset_type),
        "currency": state.currency,
        "severity": state.severity.value,
        "first_seen": timestamp_text(state.first_seen),
        "last_seen": timestamp_text(state.last_seen),
        "resolved_at": timestamp_text(result.timestamp),
        "consecutive_runs": state.consecutive_runs,
        "break_id": str(state.break_id),
    }


def halt_payload(result: ReconciliationResult, state: BreakState) -> dict[str, Any]:
    """A critical break confirmed by `result`'s run: the kill switch fires for it."""
    return {
        "run_id": str(result.run_id),
        "account_id": state.account_id,
        "type": state.type.value,
        "symbol": state.symbol,
        "asset_type": asset_type_text(state.asset_type),
        "currency": state.currency,
        "severity": state.severity.value,
        "local_value": decimal_text(state.local_value),
        "broker_value": decimal_text(state.broker_value),
        "timestamp": timestamp_text(result.timestamp),
        **break_facts(state),
    }


def iter_payloads(result: ReconciliationResult, ageing: AgeingUpdate | None = None) -> list[tuple[str, str]]:
    """(channel, JSON) for one run, in publish order: the result, each discrepancy (with
    its age when `ageing` is given), then each resolved break and each kill-switch halt."""
    payloads = [(RESULT_CHANNEL, encode(result_payload(result)))]
    for discrepancy in result.discrepancies:
        payload = discrepancy_payload(result, discrepancy)
        if ageing is not None:
            payload.update(break_facts(ageing.state_of(discrepancy)))
        payloads.append((DISCREPANCY_CHANNEL, encode(payload)))
    if ageing is not None:
        payloads.extend((RESOLVED_CHANNEL, encode(resolved_payload(result, s))) for s in ageing.resolved)
        payloads.extend((HALT_CHANNEL, encode(halt_payload(result, s))) for s in ageing.halts)
    return payloads
