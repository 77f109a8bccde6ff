"""`reconciliation history`: an account's recorded runs and breaks (or corrections), from the audit store.

Shown as terminal tables, and nothing is cut: a money or symbol column folds onto a second
line before it loses a digit, and when the output is not a terminal the tables take the
width they need. Every text from the store goes through `safe_text`, into a rich `Text`
(never markup).
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import logging
import re
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from reconciliation._cli.main import EXIT_CODES_HELP, ExitCode
from reconciliation._cli.render import CORRECTION_STYLES, SEVERITY_STYLES, subject
from reconciliation._cli.safe_text import safe_text
from reconciliation._cli.shared import (
    CommandError,
    audit_store,
    configure_logging,
    store_option,
    verbose_option,
)
from reconciliation._domain.models import DiscrepancySeverity, DiscrepancyType
from reconciliation._wire.payloads import asset_type_text
from reconciliation.audit import AccountCorrections, AccountHistory, load_corrections, load_history

if TYPE_CHECKING:
    from decimal import Decimal

    from reconciliation._domain.breaks import BreakState

__all__ = ["history"]

MAX_HISTORY_RUNS = 100_000
UNBOUNDED_WIDTH = 10_000
"""The console width for output that is not a terminal: wide enough that no table shrinks."""
_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@click.command(epilog=EXIT_CODES_HELP)
@verbose_option
@store_option
@click.option("--account", required=True, help="The account whose history to show.")
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice([t.value for t in DiscrepancyType]),
    help="Only breaks (and discrepancies) of this type; repeat for several.",
)
@click.option(
    "--severity",
    "severities",
    multiple=True,
    type=click.Choice([s.value for s in DiscrepancySeverity]),
    help="Only breaks of this severity (after escalation); repeat for several.",
)
@click.option(
    "--since", metavar="WHEN", help="Runs from then on: 30m, 2h, 7d ago, or an ISO-8601 time (UTC)."
)
@click.option("--until", metavar="WHEN", help="Runs before then (same forms as --since).")
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=1, max=MAX_HISTORY_RUNS),
    help=f"The most recent runs (at most {MAX_HISTORY_RUNS:,}).",
)
@click.option("--all-breaks", is_flag=True, help="Resolved breaks too, not only the open ones.")
@click.option(
    "--corrections",
    is_flag=True,
    help="The account's corrections instead: every step (proposed, confirmed, applied, ...), who and when.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON document: runs and breaks (or corrections), for scripts."
)
@click.pass_obj
def history(  # noqa: PLR0913 - one parameter per command-line option
    verbose: int,
    store: str,
    account: str,
    types: tuple[str, ...],
    severities: tuple[str, ...],
    since: str | None,
    until: str | None,
    limit: int,
    *,
    all_breaks: bool,
    corrections: bool,
    as_json: bool,
) -> None:
    """Show an account's recorded runs and its open (or all) breaks, from the audit store.

    With --corrections, the steps of its corrections instead (--since, --until, --limit
    and --type apply to them), newest first.

    \b
    Examples:
      reconciliation history --store audit.db --account ACC-1
      reconciliation history --store audit.db --account ACC-1 --since 2h --severity critical
      reconciliation history --store postgresql://db/recon --account ACC-1 --all-breaks --json | jq .
      reconciliation history --store audit.db --account ACC-1 --corrections --since 1d
    """
    configure_logging(verbose, logging.WARNING)
    now = dt.datetime.now(dt.UTC)
    query: dict[str, Any] = {"limit": limit, "types": [DiscrepancyType(t) for t in types]}
    for name, text in (("since", since), ("until", until)):
        try:
            query[name] = _parse_moment(text, now) if text else None
        except ValueError as exc:
            msg = f"--{name}: {exc}"
            raise CommandError(msg, exit_code=ExitCode.USAGE) from exc
    found: AccountHistory | AccountCorrections
    with audit_store(store) as audit:
        _known(account, audit.list_accounts())
        if corrections:
            found = load_corrections(audit, account, **query)
        else:
            severity = [DiscrepancySeverity(s) for s in severities]
            found = load_history(audit, account, **query, severities=severity, open_only=not all_breaks)
    if as_json:
        click.echo(json.dumps(found.to_dict(), indent=2))
        return
    console = Console()
    shown_on = console if console.is_terminal else Console(width=UNBOUNDED_WIDTH)
    if isinstance(found, AccountCorrections):
        _render_corrections(shown_on, found)
    else:
        _render_history(shown_on, found, open_only=not all_breaks)


def _parse_moment(text: str, now: dt.datetime) -> dt.datetime:
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


def _money(value: Decimal | None) -> str:
    return "none" if value is None else format(value, "f")


def _text(value: object, style: str = "") -> Text:
    return Text(safe_text(value), style=style)


def _render_history(console: Console, history: AccountHistory, *, open_only: bool) -> None:
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
            _note(console, Text(f"  run {str(run.run_id)[:8]} failed: {safe_text(run.error)}"))
        for recorded in run.discrepancies:
            explanation = recorded.discrepancy.explanation
            if explanation is not None:
                what = safe_text(recorded.discrepancy.subject)
                _note(console, Text(f"  run {str(run.run_id)[:8]} {what}: ") + _text(explanation.summary(), "dim"))
    kind = "Open breaks" if open_only else "Breaks"
    breaks = Table(title=f"{kind} of {account} (oldest first)", title_justify="left", highlight=False)
    values = [_money(value) for state in history.breaks for value in (state.local_value, state.broker_value)]
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
        style = SEVERITY_STYLES[state.severity.value]
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
            _money(state.local_value),
            _money(state.broker_value),
            _when(state.first_seen),
            str(state.consecutive_runs),
            _status(state),
        )
    console.print(breaks if history.breaks else Text(f"No {kind.lower()} match.", "dim"))


def _note(console: Console, line: Text) -> None:
    """A line under a table, not wrapped at the terminal's width."""
    console.print(line, highlight=False, soft_wrap=True)


def _status(state: BreakState) -> Text:
    """`HALT` for an open break the kill switch fired on, else open or resolved."""
    if state.halted_run_id is not None:
        return _text("HALT (open)" if state.is_open else "HALT (resolved)", "bold white on red")
    return _text("open" if state.is_open else "resolved")


def _known(account: str, accounts: list[str]) -> None:
    """Refuse an account the store has never recorded, suggesting the closest one.

    Raises:
        CommandError: the store knows no such account (a usage error).
    """
    if account in accounts:
        return
    close = difflib.get_close_matches(account, accounts, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(accounts[:20]) + (f" and {len(accounts) - 20} more" if len(accounts) > 20 else "")
    msg = (
        f"--account: the audit store has no account {safe_text(account)!r}{hint} "
        f"(it knows {safe_text(listed) if accounts else 'none yet'})"
    )
    raise CommandError(msg, exit_code=ExitCode.USAGE)


def _render_corrections(console: Console, found: AccountCorrections) -> None:
    """Every step of the account's corrections, newest first, then the reasons given."""
    account = safe_text(found.account_id)
    table = Table(title=f"Corrections of {account} (newest first)", title_justify="left", highlight=False)
    for column in ("time (UTC)", "step", "mode", "type", "symbol", "change", "value", "runs", "break", "by"):
        table.add_column(column, justify="right" if column in {"value", "runs"} else "left", overflow="fold")
    for event in found.corrections:
        correction = event.correction
        table.add_row(
            _when(event.timestamp),
            _text(event.status.value, CORRECTION_STYLES[event.status.value]),
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
            _note(console, Text(f"  {event.status.value} {str(event.correction.break_id)[:8]}: {safe_text(event.reason)}"))
