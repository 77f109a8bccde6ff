"""How the command line shows the published payloads: one coloured line each.

`demo` and `watch` both read the JSON objects of docs/payloads.md and show them with
these functions, so an operator sees the same line in either. Colours follow severity:
critical bold red, warning yellow, info cyan; a failed run is red, a clean one and a
resolved break green; a kill-switch halt white on red.
"""

from __future__ import annotations

import logging
from typing import Any

from rich.text import Text

from reconciliation._domain.models import describe_subject
from reconciliation._publishing.payloads import (
    DISCREPANCY_CHANNEL,
    HALT_CHANNEL,
    RESOLVED_CHANNEL,
    RESULT_CHANNEL,
)

__all__ = [
    "SEVERITY_STYLES",
    "describe_trigger",
    "discrepancy_line",
    "halt_line",
    "message_line",
    "payload_identity",
    "resolved_line",
    "result_line",
    "subject",
]

logger = logging.getLogger(__name__)

SEVERITY_STYLES = {"critical": "bold red", "warning": "yellow", "info": "cyan"}

_TYPE_WIDTH = len("quantity_mismatch")


def payload_identity(channel: str, payload: dict[str, Any]) -> tuple[str | None, ...]:
    """What de-duplicates a payload (docs/payloads.md): its channel, run_id, and type,
    symbol, asset type and currency."""
    if channel == RESULT_CHANNEL:
        return (channel, payload.get("run_id"))
    return (
        channel,
        payload.get("run_id"),
        payload.get("type"),
        payload.get("symbol"),
        payload.get("asset_type"),
        payload.get("currency"),
    )


def subject(payload: dict[str, Any]) -> str:
    """What a break is about: `AAPL`, `AAPL (option)`, `EUR` (per-currency cash), `(account)`."""
    described = describe_subject(
        payload.get("symbol") or None, payload.get("asset_type"), payload.get("currency")
    )
    return described or "(account)"


def message_line(channel: str, payload: dict[str, Any], *, prefix: str = "") -> Text:
    """The line for a payload of any of the four channels."""
    if channel == DISCREPANCY_CHANNEL:
        return discrepancy_line(payload, prefix=f"{prefix}{payload.get('account_id', '?')}  ")
    if channel == RESOLVED_CHANNEL:
        return resolved_line(payload, prefix=f"{prefix}{payload.get('account_id', '?')}  ")
    if channel == HALT_CHANNEL:
        return halt_line(payload, prefix=f"{prefix}{payload.get('account_id', '?')}  ")
    return result_line(payload, prefix=prefix)


def describe_trigger(context: object) -> str:
    """`post_fill ORD-7/FILL-9 AAPL`, `on_demand by risk`, `periodic`."""
    if not isinstance(context, dict):
        return "unknown"
    trigger = str(context.get("trigger", "unknown"))
    if trigger == "post_fill":
        fill = "/".join(str(context[key]) for key in ("order_id", "fill_id") if key in context)
        return " ".join(part for part in (trigger, fill, str(context.get("symbol") or "")) if part)
    if trigger == "on_demand" and "requested_by" in context:
        return f"{trigger} by {context['requested_by']}"
    return trigger


def result_line(payload: dict[str, Any], *, prefix: str = "", account: bool = True) -> Text:
    """One run: which account, why it ran, its outcome, how many positions, how long."""
    line = Text(prefix)
    if account:
        line.append(f"{payload.get('account_id', '?')}  ", style="bold")
    line.append(f"{describe_trigger(payload.get('context')):<28} ", style="magenta")
    if payload.get("status") == "failed":
        line.append(f"FAILED: {payload.get('error')}", style="bold red")
    elif payload.get("is_clean"):
        line.append(f"{'clean':<15}", style="green")
    else:
        count = payload.get("discrepancy_count", "?")
        line.append(f"{f'{count} discrepanc' + ('y' if count == 1 else 'ies'):<15}", style="bold yellow")
    duration = payload.get("duration_ms")
    details = f" {payload.get('positions_checked', '?')} pos"
    if isinstance(duration, int | float):
        details += f" {duration:6.1f} ms"
    line.append(f"{details}  run {str(payload.get('run_id', '?'))[:8]}", style="dim")
    return line


def discrepancy_line(payload: dict[str, Any], *, prefix: str = "") -> Text:
    """One break, coloured by severity: `CRITICAL quantity_mismatch AAPL local 100 broker 150`."""
    severity = str(payload.get("severity", "?"))
    style = SEVERITY_STYLES.get(severity, "")
    line = Text(prefix)
    line.append(f"{severity.upper():<8} ", style=style)
    line.append(f"{payload.get('type', '?'):<{_TYPE_WIDTH}} ", style=style)
    line.append(f"{subject(payload):<9} ")
    line.append(f"local {_value(payload.get('local_value'))}, broker {_value(payload.get('broker_value'))}")
    runs = payload.get("consecutive_runs")
    if isinstance(runs, int) and runs > 1:
        line.append(f"  ({_ordinal(runs)} run in a row)", style="dim")
    return line


def resolved_line(payload: dict[str, Any], *, prefix: str = "") -> Text:
    """A break that the latest run no longer saw: `RESOLVED quantity_mismatch MSFT after 2 runs`."""
    line = Text(prefix)
    line.append(f"{'RESOLVED':<8} ", style="green")
    line.append(f"{payload.get('type', '?'):<{_TYPE_WIDTH}} ", style="green")
    line.append(f"{subject(payload):<9} ")
    runs = payload.get("consecutive_runs")
    line.append(
        f"seen in {runs} run{'' if runs == 1 else 's'} since {_clock(payload.get('first_seen'))}", style="dim"
    )
    return line


def halt_line(payload: dict[str, Any], *, prefix: str = "") -> Text:
    """The kill switch fired for a critical break that persisted."""
    line = Text(prefix)
    line.append("HALT     ", style="bold white on red")
    line.append(f"{payload.get('type', '?'):<{_TYPE_WIDTH}} ", style="bold red")
    line.append(f"{subject(payload):<9} ")
    line.append(
        f"kill switch: {payload.get('consecutive_runs')} runs in a row since {_clock(payload.get('first_seen'))}; "
        f"local {_value(payload.get('local_value'))}, broker {_value(payload.get('broker_value'))}",
        style="bold red",
    )
    return line


def _clock(timestamp: object) -> str:
    """`10:00:01` from an ISO-8601 time stamp."""
    return str(timestamp)[11:19] if isinstance(timestamp, str) else "?"


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _value(value: object) -> str:
    return "none" if value is None else str(value)
