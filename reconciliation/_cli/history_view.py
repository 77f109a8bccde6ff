"""`reconciliation history` for people: an account's runs and breaks as terminal tables."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from reconciliation._cli.render import subject
from reconciliation._domain.models import DiscrepancySeverity
from reconciliation._publishing.payloads import asset_type_text

if TYPE_CHECKING:
    from rich.console import Console

    from reconciliation.audit._history import AccountHistory

__all__ = ["parse_moment", "render_history"]

_SEVERITY_STYLE = {
    DiscrepancySeverity.INFO: "cyan",
    DiscrepancySeverity.WARNING: "yellow",
    DiscrepancySeverity.CRITICAL: "bold red",
}
_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_moment(text: str, now: dt.datetime) -> dt.datetime:
    """`2h`, `30m`, `7d` (that long before `now`) or an ISO-8601 time (UTC if it has no offset).

    Raises:
        ValueError: neither form, with what was expected.
    """
    ago = _AGO.match(text.strip())
    if ago:
        return now - dt.timedelta(seconds=float(ago.group(1)) * _UNIT_SECONDS[ago.group(2)])
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        msg = f"{text!r} is neither a duration like 30m, 2h, 7d nor an ISO-8601 time like 2026-11-25T09:00"
        raise ValueError(msg) from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%m-%d %H:%M:%S")


def render_history(console: Console, history: AccountHistory, *, open_only: bool) -> None:
    runs = Table(title=f"Runs of {history.account_id} (newest first)", title_justify="left")
    for column in ("time (UTC)", "trigger", "status", "discrepancies", "checked", "duration", "run"):
        runs.add_column(
            column, justify="right" if column in {"discrepancies", "checked", "duration"} else "left"
        )
    for run in history.runs:
        status = "[red]failed[/red]" if run.error else ("[green]clean[/green]" if run.is_clean else "breaks")
        runs.add_row(
            _when(run.timestamp),
            run.context.get("trigger", "?"),
            status,
            str(run.discrepancy_count),
            str(run.positions_checked),
            f"{run.duration_ms:.1f} ms",
            str(run.run_id)[:8],
        )
    console.print(runs if history.runs else "[dim]No runs recorded for this account in that window.[/dim]")
    for run in history.runs:
        if run.error is not None:
            console.print(
                f"  run {str(run.run_id)[:8]} failed: {escape(run.error)}", highlight=False, soft_wrap=True
            )
    kind = "Open breaks" if open_only else "Breaks"
    breaks = Table(title=f"{kind} of {history.account_id} (oldest first)", title_justify="left")
    for column in ("severity", "type", "symbol", "local", "broker", "first seen", "runs", "status"):
        breaks.add_column(
            column,
            justify="right" if column in {"local", "broker", "runs"} else "left",
            no_wrap=column in {"severity", "type", "first seen"},
        )
    for state in history.breaks:
        style = _SEVERITY_STYLE[state.severity]
        breaks.add_row(
            f"[{style}]{state.severity.value.upper()}[/{style}]",
            state.type.value,
            subject(
                {
                    "symbol": state.symbol,
                    "asset_type": asset_type_text(state.asset_type),
                    "currency": state.currency,
                }
            ),
            "none" if state.local_value is None else format(state.local_value, "f"),
            "none" if state.broker_value is None else format(state.broker_value, "f"),
            _when(state.first_seen),
            str(state.consecutive_runs),
            "open" if state.is_open else "resolved",
        )
    console.print(breaks if history.breaks else f"[dim]No {kind.lower()} match.[/dim]")
