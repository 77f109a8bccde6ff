"""`reconciliation history` for people: an account's runs and breaks (or its corrections) as
terminal tables.

Nothing is cut: a money or symbol column folds onto a second line before it loses a
digit, and when the output is not a terminal the tables take the width they need.
Every text from the store goes through `safe_text`, into a rich `Text` (never markup).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from reconciliation._cli.render import subject
from reconciliation._cli.safe_text import safe_text
from reconciliation._domain.correction import CorrectionStatus
from reconciliation._domain.models import DiscrepancySeverity
from reconciliation._publishing.payloads import asset_type_text

if TYPE_CHECKING:
    from rich.console import Console

    from reconciliation.audit._history import AccountCorrections, AccountHistory

__all__ = ["UNBOUNDED_WIDTH", "parse_moment", "render_corrections", "render_history"]

logger = logging.getLogger(__name__)

UNBOUNDED_WIDTH = 10_000
"""The console width for output that is not a terminal: wide enough that no table shrinks."""

_SEVERITY_STYLE = {
    DiscrepancySeverity.INFO: "cyan",
    DiscrepancySeverity.WARNING: "yellow",
    DiscrepancySeverity.CRITICAL: "bold red",
}
_STATUS_STYLE = {
    CorrectionStatus.PROPOSED: "cyan",
    CorrectionStatus.CONFIRMED: "cyan",
    CorrectionStatus.HELD: "yellow",
    CorrectionStatus.APPLIED: "yellow",
    CorrectionStatus.APPLIED_LATE: "yellow",
    CorrectionStatus.UNKNOWN: "bold red",
    CorrectionStatus.VERIFIED: "green",
    CorrectionStatus.FAILED: "bold red",
    CorrectionStatus.REFUSED: "bold red",
    CorrectionStatus.UNRESOLVED: "bold red",
}
_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_moment(text: str, now: dt.datetime) -> dt.datetime:
    """`2h`, `30m`, `7d` (that long before `now`) or an ISO-8601 time (UTC if it has no offset).

    Raises:
        ValueError: neither form, with what was expected.
    """
    shown = safe_text(text, limit=40)
    ago = _AGO.match(text.strip())
    try:
        if ago:
            return now - dt.timedelta(seconds=float(ago.group(1)) * _UNIT_SECONDS[ago.group(2)])
        moment = dt.datetime.fromisoformat(text.strip())
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        if ago:
            msg = f"{shown!r} reaches back before the year 1"
        else:
            msg = f"{shown!r} is neither a duration like 30m, 2h, 7d nor an ISO-8601 time like 2026-11-25T09:00"
        raise ValueError(msg) from None


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%m-%d %H:%M:%S")


def _text(value: object, style: str = "") -> Text:
    return Text(safe_text(value), style=style)


def render_history(console: Console, history: AccountHistory, *, open_only: bool) -> None:
    account = safe_text(history.account_id)
    runs = Table(title=f"Runs of {account} (newest first)", title_justify="left", highlight=False)
    for column in ("time (UTC)", "trigger", "status", "discrepancies", "checked", "duration", "run"):
        runs.add_column(
            column,
            justify="right" if column in {"discrepancies", "checked", "duration"} else "left",
            overflow="fold",
        )
    for run in history.runs:
        status = _text("failed", "red") if run.error else _text("clean", "green") if run.is_clean else _text("breaks")
        runs.add_row(
            _when(run.timestamp),
            _text(run.context.get("trigger", "?")),
            status,
            str(run.discrepancy_count),
            str(run.positions_checked),
            f"{run.duration_ms:.1f} ms",
            str(run.run_id)[:8],
        )
    console.print(runs if history.runs else Text("No runs recorded for this account in that window.", "dim"))
    for run in history.runs:
        if run.error is not None:
            console.print(
                Text(f"  run {str(run.run_id)[:8]} failed: {safe_text(run.error)}"), highlight=False, soft_wrap=True
            )
    kind = "Open breaks" if open_only else "Breaks"
    breaks = Table(title=f"{kind} of {account} (oldest first)", title_justify="left", highlight=False)
    values = [
        ("none" if value is None else format(value, "f"))
        for state in history.breaks
        for value in (state.local_value, state.broker_value)
    ]
    money_width = max((len(value) for value in values), default=0)
    for column in ("severity", "type", "symbol", "local", "broker", "first seen", "runs", "status"):
        breaks.add_column(
            column,
            justify="right" if column in {"local", "broker", "runs"} else "left",
            no_wrap=column in {"severity", "type", "first seen"},
            overflow="fold",
            min_width=money_width if column in {"local", "broker"} else None,
        )
    for state in history.breaks:
        style = _SEVERITY_STYLE[state.severity]
        breaks.add_row(
            _text(state.severity.value.upper(), style),
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
    console.print(breaks if history.breaks else Text(f"No {kind.lower()} match.", "dim"))


def render_corrections(console: Console, found: AccountCorrections) -> None:
    """Every step of the account's corrections, newest first, then the reasons given."""
    account = safe_text(found.account_id)
    table = Table(title=f"Corrections of {account} (newest first)", title_justify="left", highlight=False)
    for column in ("time (UTC)", "step", "mode", "type", "symbol", "change", "value", "runs", "break", "by"):
        table.add_column(column, justify="right" if column in {"value", "runs"} else "left", overflow="fold")
    for event in found.corrections:
        correction = event.correction
        table.add_row(
            _when(event.timestamp),
            _text(event.status.value, _STATUS_STYLE[event.status]),
            event.mode,
            correction.type.value,
            _text(correction.subject or "(account)"),
            _text(correction.describe()),
            "?" if correction.notional is None else format(correction.notional, "f"),
            str(correction.consecutive_runs),
            str(correction.break_id)[:8],
            _text(event.actor),
        )
    if not found.corrections:
        console.print(Text("No corrections recorded for this account in that window.", "dim"))
        return
    console.print(table)
    for event in found.corrections:
        if event.reason is not None:
            console.print(
                Text(f"  {event.status.value} {str(event.correction.break_id)[:8]}: {safe_text(event.reason)}"),
                highlight=False,
                soft_wrap=True,
            )
