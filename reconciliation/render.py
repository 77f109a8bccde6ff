"""How the command line shows the published payloads: one coloured line each.

`demo` and `watch` both read the JSON objects of docs/payloads.md and show them with
these functions, so an operator sees the same line in either. Colours follow severity:
critical bold red, warning yellow, info cyan; a failed run is red, a clean one green.
"""

from __future__ import annotations

import logging
from typing import Any

from rich.text import Text

__all__ = [
    "SEVERITY_STYLES",
    "describe_trigger",
    "discrepancy_line",
    "is_discrepancy",
    "payload_identity",
    "result_line",
]

logger = logging.getLogger(__name__)

SEVERITY_STYLES = {"critical": "bold red", "warning": "yellow", "info": "cyan"}

_TYPE_WIDTH = len("quantity_mismatch")


def is_discrepancy(payload: dict[str, Any]) -> bool:
    """A discrepancy payload has a `type`; a result payload has none."""
    return "type" in payload


def payload_identity(payload: dict[str, Any]) -> tuple[str | None, ...]:
    """What de-duplicates a payload: run_id for a result, (run_id, type, symbol) for a discrepancy."""
    if is_discrepancy(payload):
        return (payload.get("run_id"), payload.get("type"), payload.get("symbol"))
    return (payload.get("run_id"),)


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
    line.append(f"{payload.get('symbol') or '(account)':<9} ")
    line.append(f"local {_value(payload.get('local_value'))}, broker {_value(payload.get('broker_value'))}")
    return line


def _value(value: object) -> str:
    return "none" if value is None else str(value)
