"""`reconciliation history`: an account's recorded runs and breaks (or corrections), from the audit store."""

from __future__ import annotations

import datetime as dt
import json
import logging

import click
from rich.console import Console

from reconciliation._cli.history_view import UNBOUNDED_WIDTH, parse_moment, render_corrections, render_history
from reconciliation._cli.main import EXIT_CODES_HELP, ExitCode
from reconciliation._cli.shared import (
    CommandError,
    audit_store,
    configure_logging,
    store_option,
    verbose_option,
)
from reconciliation._domain.models import DiscrepancySeverity, DiscrepancyType
from reconciliation.audit import AccountCorrections, AccountHistory, load_corrections, load_history

__all__ = ["history"]

MAX_HISTORY_RUNS = 100_000


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
    window: dict[str, dt.datetime | None] = {}
    for name, text in (("since", since), ("until", until)):
        try:
            window[name] = parse_moment(text, now) if text else None
        except ValueError as exc:
            msg = f"--{name}: {exc}"
            raise CommandError(msg, exit_code=ExitCode.USAGE) from exc
    found: AccountHistory | AccountCorrections
    with audit_store(store) as audit:
        if corrections:
            found = load_corrections(
                audit,
                account,
                since=window["since"],
                until=window["until"],
                limit=limit,
                types=[DiscrepancyType(t) for t in types],
            )
        else:
            found = load_history(
                audit,
                account,
                since=window["since"],
                until=window["until"],
                limit=limit,
                types=[DiscrepancyType(t) for t in types],
                severities=[DiscrepancySeverity(s) for s in severities],
                open_only=not all_breaks,
            )
    if as_json:
        click.echo(json.dumps(found.to_dict(), indent=2))
        return
    console = Console()
    shown_on = console if console.is_terminal else Console(width=UNBOUNDED_WIDTH)
    if isinstance(found, AccountCorrections):
        render_corrections(shown_on, found)
    else:
        render_history(shown_on, found, open_only=not all_breaks)
