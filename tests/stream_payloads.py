"""Well-formed payloads of the channels (docs/payloads.md), and appending them to the streams."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

__all__ = [
    "STREAM_OF",
    "append",
    "correction",
    "discrepancy",
    "halt",
    "now_text",
    "resolved",
    "result",
]

STREAM_OF = {
    "result": "reconciliation:stream:result",
    "discrepancy": "reconciliation:stream:discrepancy",
    "resolved": "reconciliation:stream:resolved",
    "halt": "reconciliation:stream:halt",
    "correction": "reconciliation:stream:correction",
}

AT = "2026-11-25T10:00:00.123456+00:00"


def now_text() -> str:
    """This moment as a payload writes it: ISO-8601 in UTC with microseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def result(account_id: str = "ACC-1", run_id: str | None = None, **changes: Any) -> dict[str, Any]:
    return {
        "run_id": run_id or str(uuid.uuid4()),
        "account_id": account_id,
        "timestamp": AT,
        "is_clean": False,
        "discrepancy_count": 1,
        "positions_checked": 12,
        "duration_ms": 3.2,
        "context": {"trigger": "periodic"},
        "status": "ok",
        "error": None,
        "netted": [],
        **changes,
    }


def discrepancy(
    account_id: str = "ACC-1", run_id: str | None = None, symbol: str | None = "AAPL", **changes: Any
) -> dict[str, Any]:
    return {
        "run_id": run_id or str(uuid.uuid4()),
        "type": "quantity_mismatch",
        "severity": "critical",
        "symbol": symbol,
        "local_value": "100",
        "broker_value": "150",
        "timestamp": AT,
        "account_id": account_id,
        "break_id": str(uuid.uuid4()),
        "first_seen": AT,
        "consecutive_runs": 1,
        **changes,
    }


def resolved(account_id: str = "ACC-1", symbol: str | None = "AAPL", **changes: Any) -> dict[str, Any]:
    return {
        "run_id": str(uuid.uuid4()),
        "account_id": account_id,
        "type": "quantity_mismatch",
        "symbol": symbol,
        "severity": "critical",
        "first_seen": AT,
        "last_seen": AT,
        "resolved_at": AT,
        "consecutive_runs": 2,
        "break_id": str(uuid.uuid4()),
        **changes,
    }


def halt(account_id: str = "ACC-1", symbol: str | None = "AAPL", **changes: Any) -> dict[str, Any]:
    return {
        "run_id": str(uuid.uuid4()),
        "account_id": account_id,
        "type": "quantity_mismatch",
        "symbol": symbol,
        "severity": "critical",
        "local_value": "100",
        "broker_value": "150",
        "timestamp": AT,
        "break_id": str(uuid.uuid4()),
        "first_seen": AT,
        "consecutive_runs": 3,
        **changes,
    }


def correction(account_id: str = "ACC-1", symbol: str | None = "AAPL", **changes: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "correction_id": str(uuid.uuid4()),
        "status": "applied",
        "mode": "apply",
        "account_id": account_id,
        "break_id": str(uuid.uuid4()),
        "run_id": str(uuid.uuid4()),
        "type": "quantity_mismatch",
        "symbol": symbol,
        "asset_type": "stock",
        "currency": None,
        "local_value": "100",
        "broker_value": "150",
        "quantity": "50",
        "price": "187.50",
        "avg_cost": "187.50",
        "cash": None,
        "notional": "9375.00",
        "consecutive_runs": 2,
        "confirm_after_runs": 2,
        "severity": "critical",
        "reason": None,
        "verification_run_id": None,
        "observed_at": AT,
        "timestamp": AT,
        "actor": "reconciliation@host:1",
        **changes,
    }


def append(
    client: redis.Redis, kind: str, payload: dict[str, Any] | str | bytes, *, lease: tuple[str, int] | None = None
) -> str:
    """XADD the payload (a dict is JSON-encoded) to the kind's stream, with the `runtime` and
    `fencing_token` fields of `lease` when given; the new entry's ID."""
    raw = json.dumps(payload) if isinstance(payload, dict) else payload
    fields: dict[str, str | bytes] = {"payload": raw}
    if lease is not None:
        fields |= {"runtime": lease[0], "fencing_token": str(lease[1])}
    entry_id = client.xadd(STREAM_OF[kind], fields)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
