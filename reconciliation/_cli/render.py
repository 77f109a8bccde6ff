"""How the command line shows the published payloads: one coloured line each.

`demo` and `watch` both read the JSON objects of docs/payloads.md and show them with
these functions, so an operator sees the same line in either. Colours follow severity:
critical bold red, warning yellow, info cyan; a failed run is red, a clean one and a
resolved break green; a kill-switch halt white on red.

Every value taken from a payload goes through `safe_text` (no control characters, a
bounded length) and into a rich `Text`, never into markup: a payload cannot colour,
move or rewrite the terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text

from reconciliation._cli.safe_text import safe_text
from reconciliation._domain.models import describe_subject
from reconciliation._wire.payloads import (
    CORRECTION_CHANNEL,
    DISCREPANCY_CHANNEL,
    HALT_CHANNEL,
    RESOLVED_CHANNEL,
)

__all__ = [
    "CORRECTION_STYLES",
    "SEVERITY_STYLES",
    "correction_change",
    "correction_line",
    "describe_trigger",
    "discrepancy_line",
    "halt_line",
    "message_line",
    "resolved_line",
    "result_line",
    "subject",
]

SEVERITY_STYLES = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
CORRECTION_STYLES = {
    "proposed": "cyan",
    "confirmed": "cyan",
    "held": "yellow",
    "applied": "bold yellow",
    "applied_late": "bold yellow",
    "unknown": "bold red",
    "verified": "green",
    "failed": "bold red",
    "refused": "bold red",
    "unresolved": "bold red",
}

_TYPE_WIDTH = len("quantity_mismatch")


def _field(payload: Mapping[str, Any], key: str, default: str = "?") -> str:
    """A payload's value as safe, bounded text; `default` when it is missing or null."""
    value = payload.get(key)
    return default if value is None or value == "" else safe_text(value)


def subject(payload: Mapping[str, Any]) -> str:
    """What a break is about, as safe text: `AAPL`, `AAPL (option)`, `EUR` (per-currency cash), `(account)`."""
    def text(key: str) -> str | None:
        value = payload.get(key)
        return value if isinstance(value, str) and value else None

    described = describe_subject(text("symbol"), text("asset_type"), text("currency"))
    return "(account)" if described is None else safe_text(described)


def message_line(channel: str, payload: Mapping[str, Any], *, prefix: str = "") -> Text:
    """The line for a payload of any channel."""
    if channel == CORRECTION_CHANNEL:
        return correction_line(payload, prefix=f"{prefix}{_field(payload, 'account_id')}  ")
    if channel == DISCREPANCY_CHANNEL:
        return discrepancy_line(payload, prefix=f"{prefix}{_field(payload, 'account_id')}  ")
    if channel == RESOLVED_CHANNEL:
        return resolved_line(payload, prefix=f"{prefix}{_field(payload, 'account_id')}  ")
    if channel == HALT_CHANNEL:
        return halt_line(payload, prefix=f"{prefix}{_field(payload, 'account_id')}  ")
    return result_line(payload, prefix=prefix)


def describe_trigger(context: object) -> str:
    """`post_fill ORD-7/FILL-9 AAPL`, `on_demand by risk`, `periodic`."""
    if not isinstance(context, Mapping):
        return "unknown"
    trigger = _field(context, "trigger", "unknown")
    if trigger == "post_fill":
        fill = "/".join(_field(context, key) for key in ("order_id", "fill_id") if key in context)
        return " ".join(part for part in (trigger, fill, _field(context, "symbol", "")) if part)
    if trigger == "on_demand" and "requested_by" in context:
        return f"{trigger} by {_field(context, 'requested_by')}"
    return trigger


def result_line(payload: Mapping[str, Any], *, prefix: str = "", account: bool = True) -> Text:
    """One run: which account, why it ran, its outcome, how many positions, how long."""
    line = Text(prefix)
    if account:
        line.append(f"{_field(payload, 'account_id')}  ", style="bold")
    line.append(f"{describe_trigger(payload.get('context')):<28} ", style="magenta")
    if payload.get("status") == "failed":
        line.append(f"FAILED: {_field(payload, 'error', 'no reason given')}", style="bold red")
    elif payload.get("is_clean") is True:
        line.append(f"{'clean':<15}", style="green")
    else:
        count = payload.get("discrepancy_count")
        shown = f"{safe_text(count) if isinstance(count, int) else '?'} discrepanc" + ("y" if count == 1 else "ies")
        line.append(f"{shown:<15}", style="bold yellow")
    duration = payload.get("duration_ms")
    details = f" {_field(payload, 'positions_checked')} pos"
    if isinstance(duration, int | float) and not isinstance(duration, bool) and 0 <= duration <= 1e12:
        details += f" {duration:6.1f} ms"
    line.append(f"{details}  run {_field(payload, 'run_id')[:8]}", style="dim")
    return line


def discrepancy_line(payload: Mapping[str, Any], *, prefix: str = "") -> Text:
    """One break, coloured by severity: `CRITICAL quantity_mismatch AAPL local 100 broker 150`."""
    severity = _field(payload, "severity")
    style = SEVERITY_STYLES.get(severity, "")
    line = _start(payload, prefix, f"{severity.upper():<8} ", style, style)
    line.append(f"local {_field(payload, 'local_value', 'none')}, broker {_field(payload, 'broker_value', 'none')}")
    runs = payload.get("consecutive_runs")
    if isinstance(runs, int) and not isinstance(runs, bool) and 1 < runs < 10**15:
        line.append(f"  ({_ordinal(runs)} run in a row)", style="dim")
    explanation = payload.get("explanation")
    if isinstance(explanation, Mapping) and explanation.get("summary"):
        line.append(f"\n{' ' * len(prefix)}    {_field(explanation, 'summary')}", style="dim")
    return line


def resolved_line(payload: Mapping[str, Any], *, prefix: str = "") -> Text:
    """A break that the latest run no longer saw: `RESOLVED quantity_mismatch MSFT after 2 runs`."""
    line = _start(payload, prefix, f"{'RESOLVED':<8} ", "green", "green")
    runs = payload.get("consecutive_runs")
    line.append(
        f"seen in {_field(payload, 'consecutive_runs')} run{'' if runs == 1 else 's'} "
        f"since {_clock(payload.get('first_seen'))}",
        style="dim",
    )
    return line


def halt_line(payload: Mapping[str, Any], *, prefix: str = "") -> Text:
    """The kill switch fired for a critical break that persisted."""
    line = _start(payload, prefix, "HALT     ", "bold white on red", "bold red")
    line.append(
        f"kill switch: {_field(payload, 'consecutive_runs')} runs in a row since "
        f"{_clock(payload.get('first_seen'))}; "
        f"local {_field(payload, 'local_value', 'none')}, broker {_field(payload, 'broker_value', 'none')}",
        style="bold red",
    )
    return line


def correction_line(payload: Mapping[str, Any], *, prefix: str = "") -> Text:
    """A step of a correction: `APPLIED  quantity_mismatch MSFT  fill +10 at 415.30 (apply)`."""
    status = _field(payload, "status")
    style = CORRECTION_STYLES.get(status, "")
    line = _start(payload, prefix, f"{status.upper():<10} ", style, style)
    line.append(correction_change(payload))
    line.append(f"  ({_field(payload, 'mode')} mode)", style="dim")
    if isinstance(payload.get("reason"), str):
        line.append(f": {_field(payload, 'reason')}", style=style)
    return line


def _start(payload: Mapping[str, Any], prefix: str, label: str, label_style: str, type_style: str) -> Text:
    """A break's line up to its figures: its label, its type and what it is about, aligned."""
    line = Text(prefix)
    line.append(label, style=label_style)
    line.append(f"{_field(payload, 'type'):<{_TYPE_WIDTH}} ", style=type_style)
    line.append(f"{subject(payload):<9} ")
    return line


def correction_change(payload: Mapping[str, Any]) -> str:
    """The change a correction makes, from its payload's figures."""
    fills = payload.get("fills")
    if isinstance(fills, list) and fills and all(isinstance(fill, Mapping) for fill in fills):
        return "book " + ", ".join(
            f"broker fill {_field(fill, 'fill_id')} {_field(fill, 'side').upper()} "
            f"{_field(fill, 'quantity').lstrip('-')} @ {_field(fill, 'price')}"
            for fill in fills
        )
    if payload.get("quantity") is not None:
        quantity = _field(payload, "quantity")
        change = f"fill {quantity if quantity.startswith('-') else f'+{quantity}'}"
        if payload.get("price") is not None:
            change += f" at {_field(payload, 'price')}"
        if payload.get("avg_cost") is not None:
            change += f", average cost {_field(payload, 'avg_cost')}"
        return change
    if payload.get("cash") is not None:
        return f"cash {_field(payload, 'cash')}"
    return f"average cost {_field(payload, 'avg_cost')}"


def _clock(timestamp: object) -> str:
    """`10:00:01` from an ISO-8601 time stamp."""
    return safe_text(timestamp[11:19]) if isinstance(timestamp, str) else "?"


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"

