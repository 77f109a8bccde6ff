"""`reconciliation check`: two position files reconciled once, the breaks printed (and published)."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import logging
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from reconciliation._cli.check import (
    CheckConfig,
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
from reconciliation._domain.models import Discrepancy, DiscrepancySeverity, ReconciliationResult
from reconciliation._publishing.inbound import SEVERITIES
from reconciliation._publishing.redis_clients import connect, redacted
from reconciliation._wire.payloads import decimal_text
from reconciliation.files import StatementError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

__all__ = ["check"]

DEFAULT_TOP = 50
"""How many breaks the terminal's table shows: the worst; the rest are counted."""
_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command(epilog=EXIT_CODES_HELP)
@verbose_option
@click.option(
    "--local", "local_path", required=True, type=_FILE, help="The engine's positions: a CSV or Parquet file."
)
@click.option(
    "--broker", "broker_path", required=True, type=_FILE, help="The broker's statement: a CSV or Parquet file."
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A TOML file: tolerances, severities, and how each file is read (docs/configuration.md).",
)
@click.option("--local-balances", type=_FILE, help="A balances file of the local side.")
@click.option("--broker-balances", type=_FILE, help="A balances file of the broker.")
@click.option("--local-cash", metavar="AMOUNT", help="The local cash (with --local-equity).")
@click.option("--local-equity", metavar="AMOUNT", help="The local total equity (with --local-cash).")
@click.option("--broker-cash", metavar="AMOUNT", help="The broker's cash (with --broker-equity).")
@click.option("--broker-equity", metavar="AMOUNT", help="The broker's total equity (with --broker-cash).")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON: its result and discrepancy payloads.")
@click.option("--csv", "as_csv", is_flag=True, help="Print one CSV row per break.")
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES),
    default="warning",
    show_default=True,
    help="Exit 1 only for a break of this severity or worse (info-only breaks exit 0 by default).",
)
@click.option(
    "--top",
    type=click.IntRange(1, 100_000),
    default=DEFAULT_TOP,
    show_default=True,
    metavar="N",
    help="On a terminal, the table shows the N worst breaks, then counts (--csv and --json give every one).",
)
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
    fail_on: str,
    top: int,
) -> None:
    """Reconcile two position files once, print the breaks; exit 0 if they agree, 1 if not.

    Columns are read by their documented names (symbol, quantity, avg_cost, asset_type,
    market_value); a column that looks like one of them under another name (SecType,
    AssetType, MktVal, ...) is refused until --config maps it. On a terminal the worst
    --top breaks are shown as a table, then counts by severity and type; otherwise one
    plain tab-separated line per break. Positions a file lists more than once are netted,
    and said under the breaks. Exit 1 for a break of --fail-on severity or worse.

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
    with _pandas_left_out():
        result = _reconciled(spec, local_path, broker_path, redis_url)
    if as_json:
        click.echo(json_document(result))
    elif as_csv:
        click.echo(csv_document(result), nl=False)
    elif _is_terminal():
        _show_table(result, local_path, broker_path, top)
    else:
        _show_lines(result, local_path, broker_path)
    if result.error is not None:
        msg = f"the run failed: {result.error}"
        raise CommandError(msg, exit_code=ExitCode.NOT_AS_ASKED)
    worst = DiscrepancySeverity(fail_on).rank
    if any(found.severity.rank >= worst for found in result.discrepancies):
        sys.exit(ExitCode.NOT_AS_ASKED)


def _reconciled(spec: CheckConfig, local_path: Path, broker_path: Path, redis_url: str | None) -> ReconciliationResult:
    try:
        book, broker = read_statements(spec, local_path, broker_path)
    except StatementError as exc:
        raise CommandError(str(exc), exit_code=ExitCode.USAGE) from exc
    with redis_errors():
        client = None if redis_url is None else connect(redis_url)
    try:
        return reconcile_once(spec, book, broker, client=client, now=dt.datetime.now(dt.UTC))
    except PublishError as exc:
        msg = f"{redacted(redis_url or '')}: {exc}"
        raise CommandError(msg, exit_code=ExitCode.REDIS_UNREACHABLE) from exc
    finally:
        if client is not None:
            client.close()


class _NoPandas:
    """An import finder that refuses pandas, as if it were not installed."""

    def find_spec(
        self, fullname: str, _path: Sequence[str] | None, _target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] == "pandas":
            raise ModuleNotFoundError(fullname, name=fullname)
        return None


@contextlib.contextmanager
def _pandas_left_out() -> Iterator[None]:
    """pyarrow imports pandas, when it is installed, at its first conversion of a value, only
    to ask whether the value is a pandas object: a check holds none, and the import is a few
    per cent of the command's CPU time (docs/benchmarks.md). Left out only if nothing
    imported it; pyarrow then takes pandas as absent for the rest of the process, which the
    command ends (`to_pandas` would still import it)."""
    if "pandas" in sys.modules:
        yield
        return
    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def _is_terminal() -> bool:
    return sys.stdout.isatty()


def _worst_first(result: ReconciliationResult) -> list[Discrepancy]:
    """Most severe first, then the largest difference."""
    return sorted(result.discrepancies, key=lambda one: (-one.severity.rank, -abs(_gap(one))))


def _gap(found: Discrepancy) -> Decimal:
    """The difference, broker - local, a missing side as 0."""
    return (found.broker_value or Decimal(0)) - (found.local_value or Decimal(0))


def _cells(found: Discrepancy) -> tuple[str, ...]:
    """A break's severity, type, position, local and broker values and their difference, as text."""
    both_missing = found.local_value is None and found.broker_value is None
    difference = "-" if both_missing else decimal_text(_gap(found)) or "-"
    return (
        found.severity.value,
        found.type.value,
        safe_text(found.subject or "(account)"),
        decimal_text(found.local_value) or "-",
        decimal_text(found.broker_value) or "-",
        difference,
    )


def _show_table(result: ReconciliationResult, local_path: Path, broker_path: Path, top: int) -> None:
    """The worst `top` breaks as a table, then counts by severity and type, the netted
    positions and one line: how many breaks, of how many positions."""
    console = Console(highlight=False)
    found = _worst_first(result)
    if found:
        table = Table("severity", "type", "position", "local", "broker", "difference", title=None, box=None)
        for one in found[:top]:
            severity, *rest = _cells(one)
            table.add_row(Text(severity, style=SEVERITY_STYLES.get(severity, "")), *map(Text, rest))
        console.print(table)
        if len(found) > top:
            console.print(Text(f"The worst {top:,} of {len(found):,} shown; every one with --csv or --json.", style="dim"))
        console.print(Text(_counts(result)))
    netted = _netted(result)
    if netted:
        console.print(Text("\n".join(netted), style="yellow"))
    console.print(_summary(result, local_path, broker_path))


def _show_lines(result: ReconciliationResult, local_path: Path, broker_path: Path) -> None:
    """One plain tab-separated line per break (a header first), for a pipe or a file."""
    lines = ["severity\ttype\tposition\tlocal\tbroker\tdifference"] if result.discrepancies else []
    lines.extend("\t".join(_cells(one)) for one in result.discrepancies)
    if result.discrepancies:
        lines.append(_counts(result))
    lines.extend(_netted(result))
    lines.append(_summary(result, local_path, broker_path).plain)
    sys.stdout.write("\n".join(lines) + "\n")


def _counts(result: ReconciliationResult) -> str:
    """`By severity: 2 critical, 1 warning · by type: 2 quantity_mismatch, 1 cash_mismatch`."""
    severities = collections.Counter(found.severity for found in result.discrepancies)
    kinds = collections.Counter(found.type.value for found in result.discrepancies)
    by_severity = ", ".join(
        f"{severities[severity]:,} {severity.value}" for severity in sorted(severities, key=lambda one: -one.rank)
    )
    by_type = ", ".join(f"{count:,} {name}" for name, count in kinds.most_common())
    return f"By severity: {by_severity} · by type: {by_type}"


def _netted(result: ReconciliationResult) -> list[str]:
    """A line per position a file listed more than once, whose entries were netted into one."""
    return [
        f"Netted: the {netted.side} file lists {safe_text(netted.symbol)} ({netted.asset_type.value}) "
        f"{netted.entries} times; compared as one position, their sum"
        for netted in result.netted
    ]


def _summary(result: ReconciliationResult, local_path: Path, broker_path: Path) -> Text:
    checked = f"{result.positions_checked:,} position(s)"
    files = f"{safe_text(str(local_path))} against {safe_text(str(broker_path))}"
    if result.is_clean:
        return Text(f"Clean: {checked} agree ({files}).", style="green")
    return Text(f"{len(result.discrepancies):,} break(s) in {checked} ({files}).", style="bold red")
