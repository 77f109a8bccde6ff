"""The one place the Redis payloads are built, exactly as spec/contract.md fixes them.

`result_payload` and `discrepancy_payload` turn the domain's values into plain JSON
objects (decimals as exact plain-notation strings, timestamps as ISO-8601 UTC), `encode`
makes the bytes deterministic, and `iter_payloads` lists one run's messages in the order
they are published: the result first, then each discrepancy. `correction_payload` is a
step of a correction (proposed, applied, ...), published on its own.
payloads.schema.json, beside this module, describes every payload for consumers; the
readers check each stream entry against it (`inbound`), and the tests hold these builders to it.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from reconciliation._domain.models import AssetType, DiscrepancySeverity, DiscrepancyType

if TYPE_CHECKING:
    from collections.abc import Mapping

    from reconciliation._domain.ageing import AgeingUpdate, Sighting
    from reconciliation._domain.breaks import BreakState
    from reconciliation._domain.correction import CorrectionEvent
    from reconciliation._domain.fills import Explanation, Fill
    from reconciliation._domain.models import Discrepancy, ReconciliationResult

__all__ = [
    "CORRECTION_CHANNEL",
    "DISCREPANCY_CHANNEL",
    "HALT_CHANNEL",
    "RESOLVED_CHANNEL",
    "RESULT_CHANNEL",
    "asset_type_text",
    "correction_payload",
    "decimal_text",
    "discrepancy_payload",
    "encode",
    "explanation_from",
    "explanation_payload",
    "fill_from",
    "fill_payload",
    "halt_payload",
    "iter_payloads",
    "result_payload",
    "timestamp_text",
]

RESULT_CHANNEL = "reconciliation:result"
DISCREPANCY_CHANNEL = "reconciliation:discrepancy"
RESOLVED_CHANNEL = "reconciliation:resolved"
HALT_CHANNEL = "reconciliation:halt"
CORRECTION_CHANNEL = "reconciliation:correction"


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
        "suspect": result.suspect is not None,
        "suspect_reason": result.suspect,
        "next_run_due": None if result.next_run_due is None else timestamp_text(result.next_run_due),
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
    payload: dict[str, Any] = json.loads(_RunText(result).discrepancy(discrepancy))
    return payload


class _RunText:
    """Builds the text of a run's payloads, making what they share (the run id, the
    account, each distinct time stamp) once per run rather than once per payload."""

    def __init__(self, result: ReconciliationResult) -> None:
        self.run_id = str(result.run_id)
        self._times: dict[dt.datetime, str] = {}
        self._accounts: dict[str, str] = {}

    def time(self, value: dt.datetime) -> str:
        text = self._times.get(value)
        if text is None:
            text = self._times[value] = timestamp_text(value)
        return text

    def discrepancy(self, discrepancy: Discrepancy, sighting: Sighting | None = None) -> str:
        """The discrepancy's payload as `encode` would write it, built as text: a run with
        100,000 breaks has 100,000 of these (tests hold it to `encode` byte for byte)."""
        account = self._accounts.get(discrepancy.account_id)
        if account is None:
            account = self._accounts[discrepancy.account_id] = _quoted(discrepancy.account_id)
        symbol = "null" if discrepancy.symbol is None else _quoted(discrepancy.symbol)
        asset_type = "null" if discrepancy.asset_type is None else f'"{_TEXT[discrepancy.asset_type]}"'
        currency = "null" if discrepancy.currency is None else _quoted(discrepancy.currency)
        local, broker = _decimal_json(discrepancy.local_value), _decimal_json(discrepancy.broker_value)
        kind, severity, timestamp = _TEXT[discrepancy.type], _TEXT[discrepancy.severity], self.time(discrepancy.timestamp)
        explained = (
            ""
            if discrepancy.explanation is None
            else f'"explanation":{encode(explanation_payload(discrepancy.explanation))},'
        )
        if sighting is None:
            return (
                f'{{"account_id":{account},"asset_type":{asset_type},"broker_value":{broker},'
                f'"currency":{currency},{explained}"local_value":{local},"run_id":"{self.run_id}",'
                f'"severity":"{severity}","symbol":{symbol},"timestamp":"{timestamp}","type":"{kind}"}}'
            )
        return (
            f'{{"account_id":{account},"asset_type":{asset_type},"break_id":"{sighting.break_id}",'
            f'"broker_value":{broker},"consecutive_runs":{sighting.consecutive_runs},"currency":{currency},'
            f'{explained}"first_seen":"{self.time(sighting.first_seen)}","local_value":{local},'
            f'"run_id":"{self.run_id}","severity":"{severity}","symbol":{symbol},"timestamp":"{timestamp}",'
            f'"type":"{kind}"}}'
        )


def fill_payload(fill: Fill) -> dict[str, Any]:
    """One fill of an explanation, as the payloads carry it."""
    return {
        "fill_id": fill.fill_id,
        "order_id": fill.order_id,
        "venue_fill_id": fill.venue_fill_id,
        "symbol": fill.symbol,
        "asset_type": fill.asset_type.value,
        "side": fill.side,
        "quantity": decimal_text(fill.quantity),
        "price": decimal_text(fill.price),
        "fee": decimal_text(fill.fee),
        "timestamp": timestamp_text(fill.timestamp),
    }


def explanation_payload(explanation: Explanation) -> dict[str, Any]:
    """What explains a position break: the fills behind it and a verdict (docs/payloads.md)."""
    return {
        "verdict": explanation.verdict,
        "gap": decimal_text(explanation.gap),
        "explained": decimal_text(explanation.explained),
        "missing_locally": [fill_payload(fill) for fill in explanation.missing_locally],
        "missing_at_broker": [fill_payload(fill) for fill in explanation.missing_at_broker],
        "differing": [
            {"local": fill_payload(pair.local), "broker": fill_payload(pair.broker)} for pair in explanation.differing
        ],
        "note": explanation.note,
        "summary": explanation.summary(),
    }


def explanation_from(payload: Mapping[str, Any]) -> Explanation:
    """An explanation back from its payload (`explanation_payload`), as the audit store keeps it.

    Raises:
        KeyError, TypeError, ValueError: it is not one.
    """
    from reconciliation._domain.fills import Explanation, FillPair  # noqa: PLC0415 - the codec's one reader

    return Explanation(
        payload["verdict"],
        Decimal(payload["gap"]),
        Decimal(payload["explained"]),
        tuple(fill_from(fill) for fill in payload["missing_locally"]),
        tuple(fill_from(fill) for fill in payload["missing_at_broker"]),
        tuple(FillPair(fill_from(pair["local"]), fill_from(pair["broker"])) for pair in payload["differing"]),
        payload["note"],
    )


def fill_from(payload: Mapping[str, Any]) -> Fill:
    from reconciliation._domain.fills import Fill  # noqa: PLC0415 - the codec's one reader

    return Fill(
        payload["fill_id"],
        payload["order_id"],
        payload["symbol"],
        payload["quantity"],
        payload["price"],
        dt.datetime.fromisoformat(payload["timestamp"]),
        AssetType(payload["asset_type"]),
        fee=payload["fee"],
        venue_fill_id=payload["venue_fill_id"],
    )


def _decimal_json(value: Decimal | None) -> str:
    return "null" if value is None else f'"{value:f}"'


_TEXT: dict[AssetType | DiscrepancyType | DiscrepancySeverity, str] = {
    member: member.value for kind in (AssetType, DiscrepancyType, DiscrepancySeverity) for member in kind
}
"""Each member's text, looked up in C: `Enum.value` is a Python-level descriptor, read three
times for each of a bad day's 10,000 payloads."""

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)
_quoted = json.encoder.encode_basestring_ascii
"""A str as a JSON string, escaped exactly as `_ENCODER` escapes it (ensure_ascii)."""


def encode(payload: dict[str, Any]) -> str:
    """Compact JSON with sorted keys: the same payload always gives the same text.

    Raises:
        ValueError: a float in the payload is NaN or infinite (not valid JSON).
    """
    return _ENCODER.encode(payload)


def _subject(record: Discrepancy | BreakState) -> dict[str, Any]:
    """What a break is about: its account, type, and position or currency."""
    return {
        "account_id": record.account_id,
        "type": record.type.value,
        "symbol": record.symbol,
        "asset_type": asset_type_text(record.asset_type),
        "currency": record.currency,
    }


def _resolved(run: _RunText, result: ReconciliationResult, sighting: Sighting) -> dict[str, Any]:
    """A break that `result`'s run no longer saw (`sighting` is its last)."""
    return {
        "run_id": run.run_id,
        **_subject(sighting.discrepancy),
        "severity": sighting.severity.value,
        "first_seen": run.time(sighting.first_seen),
        "last_seen": run.time(sighting.last_seen),
        "resolved_at": run.time(sighting.resolved_at(result.timestamp)),
        "consecutive_runs": sighting.consecutive_runs,
        "break_id": str(sighting.break_id),
    }


def halt_payload(result: ReconciliationResult, state: BreakState) -> dict[str, Any]:
    """A critical break confirmed by `result`'s run: the kill switch fires for it."""
    return {
        "run_id": str(result.run_id),
        **_subject(state),
        "severity": state.severity.value,
        "local_value": decimal_text(state.local_value),
        "broker_value": decimal_text(state.broker_value),
        "timestamp": timestamp_text(result.timestamp),
        "break_id": str(state.break_id),
        "first_seen": timestamp_text(state.first_seen),
        "consecutive_runs": state.consecutive_runs,
    }


def iter_payloads(result: ReconciliationResult, ageing: AgeingUpdate | None = None) -> list[tuple[str, str]]:
    """(channel, JSON) for one run, in publish order: the result, each discrepancy (with
    its age when `ageing` is given), then each resolved break and each kill-switch halt.

    Linear in the discrepancies: `ageing.sightings` lists their breaks in the same order.
    """
    run = _RunText(result)
    payloads = [(RESULT_CHANNEL, encode(result_payload(result)))]
    if ageing is None or not ageing.sightings:
        payloads.extend((DISCREPANCY_CHANNEL, run.discrepancy(d)) for d in result.discrepancies)
    else:
        payloads.extend(
            (DISCREPANCY_CHANNEL, run.discrepancy(d, s))
            for d, s in zip(result.discrepancies, ageing.sightings, strict=True)
        )
    if ageing is not None:
        payloads.extend((RESOLVED_CHANNEL, encode(_resolved(run, result, s))) for s in ageing.ended)
        payloads.extend((HALT_CHANNEL, encode(halt_payload(result, s))) for s in ageing.halts)
    return payloads


def correction_payload(event: CorrectionEvent) -> dict[str, Any]:
    """A step of a correction: the break it corrects, the change, what happened, when and by whom."""
    correction = event.correction
    return {
        "event_id": str(event.event_id),
        "correction_id": str(correction.correction_id),
        "status": event.status.value,
        "mode": event.mode,
        "account_id": correction.account_id,
        "break_id": str(correction.break_id),
        "run_id": str(correction.run_id),
        "type": correction.type.value,
        "symbol": correction.symbol,
        "asset_type": asset_type_text(correction.asset_type),
        "currency": correction.currency,
        "local_value": decimal_text(correction.local_value),
        "broker_value": decimal_text(correction.broker_value),
        "quantity": decimal_text(correction.quantity),
        "price": decimal_text(correction.price),
        "avg_cost": decimal_text(correction.avg_cost),
        "cash": decimal_text(correction.cash),
        "notional": decimal_text(correction.notional),
        "consecutive_runs": correction.consecutive_runs,
        "confirm_after_runs": event.confirm_after_runs,
        "severity": event.severity.value,
        "reason": event.reason,
        "verification_run_id": None if event.verification_run_id is None else str(event.verification_run_id),
        "observed_at": timestamp_text(correction.observed_at),
        "timestamp": timestamp_text(event.timestamp),
        "actor": event.actor,
        "fills": [fill_payload(fill) for fill in correction.fills],
    }
