"""`reconciliation check`: two position files reconciled once, the breaks printed (and published)."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from reconciliation._cli.check import (
    PublishError,
    csv_document,
    figures,
    json_document,
    load_check_config,
    read_statements,
    reconcile_once,
    sides_with_balances,
)
from reconciliation._cli.main import EXIT_CODES_HELP, ExitCode
from reconciliation._cli.render import SEVERITY_STYLES
from reconciliation._cli.runner import ConfigError
from reconciliation._cli.safe_text import safe_text
from reconciliation._cli.shared import CommandError, configure_logging, redis_errors, verbose_option
from reconciliation._publishing.redis_clients import connect, redacted
from reconciliation._wire.payloads import decimal_text
from reconciliation.files import StatementError

if TYPE_CHECKING:
    from reconciliation._domain.models import ReconciliationResult

__all__ = ["check"]


@click.command(epilog=EXIT_CODES_HELP)
@verbose_option
@click.option(
    "--local",
    "local_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The engine's positions: a CSV or Parquet file.",
)
@click.option(
    "--broker",
    "broker_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The broker's statement: a CSV or Parquet file.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A TOML file: tolerances, severities, and how each file is read (docs/configuration.md).",
)
@click.option("--local-balances", type=click.Path(dir_okay=False, path_type=Path), help="A balances file of the local side.")
@click.option("--broker-balances", type=click.Path(dir_okay=False, path_type=Path), help="A balances file of the broker.")
@click.option("--local-cash", metavar="AMOUNT", help="The local cash (with --local-equity).")
@click.option("--local-equity", metavar="AMOUNT", help="The local total equity (with --local-cash).")
@click.option("--broker-cash", metavar="AMOUNT", help="The broker's cash (with --broker-equity).")
@click.option("--broker-equity", metavar="AMOUNT", help="The broker's total equity (with --broker-cash).")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON: its result and discrepancy payloads.")
@click.option("--csv", "as_csv", is_flag=True, help="Print one CSV row per break.")
@click.option(
    "--redis-url",
    help="Also publish the run here, as a service publishes every run (not read from $REDIS_URL).",
)
@click.pass_obj
def check(  # noqa: PLR0913 - one parameter per command-line option
    verbose: int,
    *,
    local_path: Path,
    broker_path: Path,
    config_path: Path | None,
    local_balances: Path | None,
    broker_balances: Path | None,
    local_cash: str | None,
    local_equity: str | None,
    broker_cash: str | None,
    broker_equity: str | None,
    redis_url: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Reconcile two position files once, print the breaks; exit 0 if they agree, 1 if not.

    Both files (CSV with a header row, or Parquet) are read and checked whole first: a bad
    row ends the command (exit 2) with one line naming the file, the row and the column.
    Balances come from --SIDE-balances files or --SIDE-cash and --SIDE-equity; without
    any, only positions are compared. With --redis-url the run is also published to Redis
    (a service runs it: trigger on_demand, requested_by check).

    \b
    Examples:
      reconciliation check --local book.csv --broker eod-statement.csv
      reconciliation check --local book.parquet --broker eod.parquet --config eod.toml --json
      reconciliation check --local book.csv --broker eod.csv --local-cash 1000 --local-equity 25000 \\
          --broker-balances eod-cash.csv --csv > breaks.csv
      reconciliation check --local book.csv --broker eod.csv --redis-url redis://127.0.0.1:6379/0
    """
    configure_logging(verbose, logging.WARNING, below_error=("reconciliation.runs",))
    if as_json and as_csv:
        raise CommandError("--json and --csv: choose one output", exit_code=ExitCode.USAGE)
    try:
        spec = sides_with_balances(
            load_check_config(config_path),
            local_balances or figures(local_cash, local_equity, "local"),
            broker_balances or figures(broker_cash, broker_equity, "broker"),
        )
    except ConfigError as exc:
        where = f"{config_path}: " if config_path is not None else ""
        raise CommandError(*(f"{where}{problem}" for problem in exc.problems), exit_code=ExitCode.USAGE) from exc
    try:
        book, broker = read_statements(spec, local_path, broker_path)
    except StatementError as exc:
        raise CommandError(str(exc), exit_code=ExitCode.USAGE) from exc
    with redis_errors():
        client = None if redis_url is None else connect(redis_url)
    try:
        result = reconcile_once(spec, book, broker, client=client, now=dt.datetime.now(dt.UTC))
    except PublishError as exc:
        msg = f"{redacted(redis_url or '')}: {exc}"
        raise CommandError(msg, exit_code=ExitCode.REDIS_UNREACHABLE) from exc
    finally:
        if client is not None:
            client.close()
    if as_json:
        click.echo(json_document(result))
    elif as_csv:
        click.echo(csv_document(result), nl=False)
    else:
        _show_breaks(result, local_path, broker_path)
    if result.error is not None:
        msg = f"the run failed: {result.error}"
        raise CommandError(msg, exit_code=ExitCode.NOT_AS_ASKED)
    if not result.is_clean:
        sys.exit(ExitCode.NOT_AS_ASKED)


def _show_breaks(result: ReconciliationResult, local_path: Path, broker_path: Path) -> None:
    """The breaks as a table, then one line: how many, of how many positions."""
    console = Console(highlight=False, soft_wrap=True)
    if result.discrepancies:
        table = Table("severity", "type", "position", "local", "broker", title=None, box=None)
        for found in result.discrepancies:
            style = SEVERITY_STYLES.get(found.severity.value, "")
            table.add_row(
                Text(found.severity.value, style=style),
                Text(found.type.value),
                Text(safe_text(found.subject or "(account)")),
                Text(decimal_text(found.local_value) or "-"),
                Text(decimal_text(found.broker_value) or "-"),
            )
        console.print(table)
    checked = f"{result.positions_checked:,} position(s)"
    files = f"{safe_text(str(local_path))} against {safe_text(str(broker_path))}"
    if result.is_clean:
        console.print(Text(f"Clean: {checked} agree ({files}).", style="green"))
    else:
        console.print(Text(f"{len(result.discrepancies):,} break(s) in {checked} ({files}).", style="bold red"))
