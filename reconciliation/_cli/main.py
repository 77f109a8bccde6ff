"""The `reconciliation` command: `demo`, `watch`, `run`, `check`, `history` and `serve`.

The library configures no logging; this command does (to stderr, `-v` for DEBUG), so
an actor that dies or a run that fails is always on screen.

Exit codes, for scripts:

    0  done: the demo caught every fault, watch got its messages, run stopped cleanly,
       check found the two files agree
    1  done, but not as asked: a demo fault went uncaught or a trigger never fired;
       watch timed out before --count messages; check found breaks
    2  usage or configuration error (the message names the option or key); check: a
       bad file (the message names the row and the column)
    3  Redis unreachable (check: the run could not be published)
    4  run: a service could not be built or started (a factory raised), or the
       metrics could not be served on --metrics-host/--metrics-port
    4  serve: the board could not listen on its host and port
    5  history, serve: the audit store could not be read
    6  watch: Redis refused a command (a stream key holds another type, an ACL)
    130  interrupted (Ctrl-C) during the demo
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.text import Text

from reconciliation._cli.safe_text import safe_text
from reconciliation._domain.models import DiscrepancySeverity, DiscrepancyType
from reconciliation._domain.redaction import redact_text
from reconciliation._publishing.inbound import SEVERITIES
from reconciliation._publishing.redis_clients import (
    COMMAND_TIMEOUT_SECONDS,
    DEFAULT_REDIS_URL,
    AnyRedis,
    InvalidRedisUrlError,
    RedisUnreachableError,
    answers,
    client_for,
    connect,
    fake_redis,
    redacted,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from reconciliation._domain.models import ReconciliationResult
    from reconciliation.audit import AuditStore
    from reconciliation.metrics import MetricsServer, ReconciliationMetrics

__all__ = ["ExitCode", "main"]

logger = logging.getLogger(__name__)


MAX_REPLAY = 100_000
"""More entries than the streams keep by default (10,000 each)."""
MAX_COUNT = 1_000_000_000
MAX_HISTORY_RUNS = 100_000
MAX_SECONDS = 366 * 24 * 3600.0
"""A year: the longest --timeout or --retry-for."""
DEFAULT_RETRY_FOR_SECONDS = 300.0
DEFAULT_BOARD_PORT = 8765
DEFAULT_BOARD_REPLAY = 2_000
LOG_LINE_LIMIT = 20_000
"""The longest log line the command writes, in characters."""
ERROR_LIMIT = 2_000
"""The longest error line the command writes, in characters."""


class ExitCode(enum.IntEnum):
    OK = 0
    NOT_AS_ASKED = 1
    USAGE = 2
    REDIS_UNREACHABLE = 3
    START_FAILED = 4
    STORE_UNAVAILABLE = 5
    REDIS_REFUSED = 6
    INTERRUPTED = 130


EXIT_CODES_HELP = """\b
Exit codes:
  0  done as asked (check: the files agree)
  1  done, but not as asked (a demo fault uncaught, watch timed out before --count; check: breaks)
  2  usage or configuration error (check: a bad file, its row named)
  3  Redis unreachable
  4  a service could not be started or its metrics served (run), the board could not listen (serve)
  5  the audit store could not be read (history, serve)
  6  Redis refused a command (watch: a stream key holds another type)
"""


def _configure_logging(verbose: int, level: int, *, below_error: tuple[str, ...] = ()) -> None:
    """Log to stderr: through rich on a terminal, one plain line per record otherwise.

    -v shows DEBUG from every logger, pykka's included; without it, the loggers named in
    `below_error` show only errors (the demo shows their runs itself).
    """
    handler: logging.Handler
    if sys.stderr.isatty():
        handler = _RichCliHandler(console=Console(stderr=True), show_path=False, markup=False)
        handler.setFormatter(_RedactingFormatter("%(name)s: %(message)s"))
    else:
        handler = _PlainCliHandler(sys.stderr)
        handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if below_error and not verbose:
        handler.addFilter(lambda record: record.levelno >= logging.ERROR or record.name not in below_error)
    root = logging.getLogger()
    for previous in [h for h in root.handlers if isinstance(h, _RichCliHandler | _PlainCliHandler)]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else level)


class _RichCliHandler(RichHandler):
    """The command's own handler, replaced (not doubled) when a command runs again in-process."""


class _PlainCliHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The command's own handler when stderr is a file or a pipe (a service's log)."""


class _RedactingFormatter(logging.Formatter):
    """Every log line the command writes, traceback included, without passwords or escape sequences."""

    def format(self, record: logging.LogRecord) -> str:
        return safe_text(redact_text(super().format(record)), limit=LOG_LINE_LIMIT, keep_newlines=True)


def _fail(*messages: str, code: ExitCode) -> NoReturn:
    """One error line on stderr per message, without secrets or terminal control sequences, then exit."""
    console = Console(stderr=True)
    for message in messages:
        console.print(
            f"[bold red]Error:[/bold red] {escape(safe_text(redact_text(message), limit=ERROR_LIMIT))}",
            highlight=False,
            soft_wrap=True,
        )
    sys.exit(code)


def _connect(url: str, *, retry_commands: bool = True, cluster: bool = False) -> AnyRedis:
    """A connected client, or the command's end: a malformed URL is a usage error, no answer exit 3."""
    try:
        return connect(url, socket_timeout=COMMAND_TIMEOUT_SECONDS, retry_commands=retry_commands, cluster=cluster)
    except InvalidRedisUrlError as exc:
        _fail(f"--redis-url: {exc}", code=ExitCode.USAGE)
    except RedisUnreachableError as exc:
        _fail(str(exc), code=ExitCode.REDIS_UNREACHABLE)


def _more_verbose(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    """`-v` after the command name counts as much as before it."""
    if value:
        ctx.obj = (ctx.obj or 0) + value


verbose_option = click.option(
    "-v",
    "--verbose",
    count=True,
    expose_value=False,
    callback=_more_verbose,
    help="Log at DEBUG level (also accepted before the command).",
)


redis_url_option = click.option(
    "--redis-url",
    envvar="REDIS_URL",
    default=DEFAULT_REDIS_URL,
    show_default=True,
    show_envvar=True,
    help="Where the runs are published.",
)


cluster_option = click.option(
    "--cluster",
    is_flag=True,
    envvar="REDIS_CLUSTER",
    show_envvar=True,
    help="--redis-url is a node of a Redis Cluster (the keys carry the {reconciliation} hash tag; docs/payloads.md).",
)


@click.group(
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("-v", "--verbose", count=True, help="Log at DEBUG level (every actor's messages).")
@click.version_option(package_name="reconciliation")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """Compare a trading engine's book with its broker's and publish every break to Redis.

    \b
    Start here:
      reconciliation demo                   a 30-second paper-trading session
      reconciliation watch --replay 20      in a second terminal: the alerts, live
      reconciliation run --config FILE      reconcile accounts as a standalone process
      reconciliation check --local F --broker F   reconcile two position files, once
      reconciliation history --store F --account ACC   what was found, and what is still open
      reconciliation serve --store F        the open breaks of every account, live in the browser
    """
    ctx.obj = verbose


@main.command(epilog=EXIT_CODES_HELP)
@verbose_option
@redis_url_option
@click.option("--quick", is_flag=True, help="Play the session in a few seconds (for tests and CI).")
@click.option("--account", default="PAPER-1", show_default=True, help="The paper account's id.")
@click.pass_obj
def demo(verbose: int, redis_url: str, account: str, *, quick: bool) -> None:
    """Play a paper-trading session in which every kind of break happens.

    A stand-in execution actor books fills into a paper broker and the engine's book and
    tells them to the reconciliation service; faults are injected along the way (a fill
    the engine never saw, a busted trade, an uncharged commission, a rounded price, a
    stale price feed). Every run is shown as it is published: its trigger, duration and
    discrepancies, coloured by severity. It ends by itself within a minute, with a summary.

    If no Redis answers at --redis-url, the demo says so and runs on an in-process fake.

    \b
    Examples:
      reconciliation demo
      reconciliation demo --quick --redis-url redis://10.0.0.5:6379/2
      REDIS_URL=redis://localhost:6380/0 reconciliation demo
    """
    from reconciliation._cli.demo import NORMAL, QUICK, TRIGGERS, run_demo  # noqa: PLC0415 - keeps --help fast

    _configure_logging(verbose, logging.WARNING, below_error=("reconciliation._runtime.results",))
    console = Console(highlight=False, soft_wrap=True)
    try:
        client = connect(redis_url)
        where = redacted(redis_url)
    except InvalidRedisUrlError as exc:
        _fail(f"--redis-url: {exc}", code=ExitCode.USAGE)
    except RedisUnreachableError as exc:
        console.print(f"[yellow]{escape(str(exc))}[/yellow]")
        try:
            client = fake_redis()
        except RedisUnreachableError as missing:
            _fail(str(missing), code=ExitCode.REDIS_UNREACHABLE)
        where = "an in-process fake Redis"
        console.print(
            "[yellow]Running on an in-process fake Redis instead: the demo works the same, "
            "but `reconciliation watch` in another terminal will not see it.[/yellow]"
        )
    console.print(
        f"Publishing to {escape(where)}: channels reconciliation:result and reconciliation:discrepancy."
    )
    try:
        report = asyncio.run(run_demo(client, console, pace=QUICK if quick else NORMAL, account_id=account))
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted.[/yellow]")
        sys.exit(ExitCode.INTERRUPTED)
    finally:
        client.close()
    results = len(report.runs)
    discrepancies = sum(len(run.discrepancies) for run in report.runs)
    console.print(f"\n{results} results and {discrepancies} discrepancies published to {escape(where)}.")
    if where != "an in-process fake Redis":
        console.print("Read them back: [bold]reconciliation watch --replay 50[/bold]")
    if not report.succeeded:
        absent = sorted(set(TRIGGERS) - report.triggers_seen)
        uncaught = [d.fault.name for d in report.detections if not d.caught]
        console.print(
            "[bold red]The demo did not go as scripted:[/bold red] "
            + escape(
                f"uncaught faults: {', '.join(uncaught) or 'none'}; "
                f"triggers that never fired: {', '.join(absent) or 'none'}; failed runs: {report.failed_runs}."
            )
        )
        sys.exit(ExitCode.NOT_AS_ASKED)


@main.command(epilog=EXIT_CODES_HELP)
@verbose_option
@redis_url_option
@click.option(
    "--replay",
    type=click.IntRange(min=0, max=MAX_REPLAY),
    default=0,
    metavar="N",
    help=f"First show the last N entries kept in the streams (what you missed; at most {MAX_REPLAY:,}).",
)
@click.option(
    "--account",
    "accounts",
    multiple=True,
    metavar="ID",
    help="Only this account's runs and breaks; repeat for several.",
)
@click.option(
    "--severity",
    "severities",
    multiple=True,
    type=click.Choice(SEVERITIES),
    help="Only breaks, resolved breaks and halts of this severity (runs have none); repeat for several.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per line: channel, stream, stream_id, replayed, then the payload's keys.",
)
@click.option(
    "--count", type=click.IntRange(min=1, max=MAX_COUNT), metavar="N", help="Exit after N live messages."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True, max=MAX_SECONDS),
    metavar="SECONDS",
    help="Exit after SECONDS.",
)
@click.option(
    "--retry-for",
    type=click.FloatRange(min=0, max=MAX_SECONDS),
    default=DEFAULT_RETRY_FOR_SECONDS,
    show_default=True,
    metavar="SECONDS",
    help="When Redis goes away, keep reconnecting this long before giving up (exit 3).",
)
@cluster_option
@click.pass_obj
def watch(  # noqa: PLR0913 - one parameter per command-line option
    verbose: int,
    redis_url: str,
    replay: int,
    accounts: tuple[str, ...],
    severities: tuple[str, ...],
    count: int | None,
    timeout: float | None,
    retry_for: float,
    *,
    as_json: bool,
    cluster: bool,
) -> None:
    """Show runs, breaks, resolved breaks and halts as they are published, coloured by severity.

    Reads the streams reconciliation:stream:result, :discrepancy, :resolved and :halt
    (XREAD BLOCK, merged in publish order). With --replay N it first shows the N latest
    entries. If Redis goes away it says so on stderr, reconnects with backoff and resumes
    right after the last entry it showed; it gives up (exit 3) after --retry-for seconds.
    An entry that is not a well-formed payload is shown as MALFORMED with its stream ID.

    \b
    Examples:
      reconciliation watch --replay 20
      reconciliation watch --account ACC-1 --severity critical
      reconciliation watch --json | jq 'select(.channel == "reconciliation:discrepancy" and .severity == "critical")'
      reconciliation watch --count 1 --timeout 30     # wait for the next message
      reconciliation watch --cluster --redis-url redis://node-1:7000
    """
    import redis as redis_py  # noqa: PLC0415 - keeps --help fast

    from reconciliation._cli.watch import Filters, StderrNarrator, human_line, json_line  # noqa: PLC0415
    from reconciliation._cli.watch import watch as follow  # noqa: PLC0415
    from reconciliation._publishing.streams import Backoff, RedisLostError  # noqa: PLC0415

    _configure_logging(verbose, logging.WARNING)
    client = _connect(redis_url, retry_commands=False, cluster=cluster)
    console = Console(highlight=False, soft_wrap=True)
    where = redacted(redis_url)
    backoff = Backoff(give_up_after_seconds=retry_for)
    show = (lambda m: click.echo(json_line(m))) if as_json else (lambda m: console.print(human_line(m)))
    if not as_json:
        console.print(f"Watching {where} (Ctrl-C to stop)", style="dim", markup=False)
    try:
        received = follow(
            client,
            show,
            replay_last=replay,
            count=count,
            timeout=timeout,
            filters=Filters(frozenset(accounts), frozenset(severities)),
            backoff=backoff,
            narrator=StderrNarrator(Console(stderr=True, highlight=False, soft_wrap=True), where, backoff),
        )
    except KeyboardInterrupt:
        return
    except BrokenPipeError:
        _quiet_stdout()
        return
    except RedisLostError as exc:
        _fail(f"lost Redis at {where}: {exc}", code=ExitCode.REDIS_UNREACHABLE)
    except redis_py.ResponseError as exc:
        # redis-py 6 raises MovedError; before it, a plain ResponseError that keeps the code
        if isinstance(exc, redis_py.exceptions.MovedError) or str(exc).startswith("MOVED "):
            _fail(
                f"Redis at {where} is a Redis Cluster node: add --cluster "
                f"(it answered MOVED {str(exc).removeprefix('MOVED ')})",
                code=ExitCode.REDIS_REFUSED,
            )
        _fail(f"Redis at {where} refused to read the streams: {exc}", code=ExitCode.REDIS_REFUSED)
    finally:
        client.close()
    if count is not None and received < count:
        Console(stderr=True).print(f"Timed out after {timeout:g} s with {received} of {count} messages.")
        sys.exit(ExitCode.NOT_AS_ASKED)


def _quiet_stdout() -> None:
    """The reader of our output went away (`| head`): write nothing more, not even at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@main.command(epilog=EXIT_CODES_HELP)
@verbose_option
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The TOML file (see docs/configuration.md).",
)
@click.option(
    "--redis-url",
    envvar="REDIS_URL",
    show_envvar=True,
    help=f"Overrides the file's redis_url.  [default: {DEFAULT_REDIS_URL}]",
)
@click.option("--check", is_flag=True, help="Check the configuration and its import paths, then exit.")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    metavar="PORT",
    help="Serve Prometheus metrics on http://HOST:PORT/metrics (needs the metrics extra).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    metavar="HOST",
    help="The address the metrics are served on; anything but the loopback exposes them to the network.",
)
@cluster_option
@click.pass_obj
def run(
    verbose: int,
    config_path: Path,
    redis_url: str | None,
    metrics_port: int | None,
    metrics_host: str,
    *,
    check: bool,
    cluster: bool,
) -> None:
    """Reconcile the configured accounts as a standalone process, until SIGINT or SIGTERM.

    One service per account: a startup run, then periodic runs, each published to Redis
    and logged here. The broker and the local book of each account come from factories
    named by import path (`package.module:function`, called with the account id).
    With --metrics-port, Prometheus can scrape the runs, breaks and health of every
    account from /metrics (docs/operations.md lists the metrics).

    \b
    Examples:
      reconciliation run --config docs/example-config.toml
      reconciliation run --config prod.toml --check        # validate, start nothing
      REDIS_URL=redis://redis:6379/0 reconciliation run --config prod.toml
      reconciliation run --config prod.toml --metrics-port 9108
      reconciliation run --config prod.toml --cluster --redis-url redis://node-1:7000
    """
    from reconciliation._cli.runner import ConfigError, StartError, load_config, run_until_stopped  # noqa: PLC0415

    _configure_logging(verbose, logging.INFO)
    _import_from_the_working_directory()
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        _fail(*(f"{config_path}: {problem}" for problem in exc.problems), code=ExitCode.USAGE)
    metrics = None if metrics_port is None else _run_metrics()
    url = redis_url or config.redis_url or DEFAULT_REDIS_URL
    if check:
        accounts = ", ".join(
            spec.config.account_id
            + (f" (audit store {redacted(spec.config.audit_store)})" if spec.config.audit_store else "")
            for spec in config.accounts
        )
        click.echo(
            safe_text(
                f"{config_path}: OK ({len(config.accounts)} account(s): {accounts}; Redis {redacted(url)})",
                limit=None,
            )
        )
        return
    try:
        client = client_for(url, cluster=cluster)
    except InvalidRedisUrlError as exc:
        _fail(f"redis_url: {exc}", code=ExitCode.USAGE)
    except RedisUnreachableError as exc:
        _fail(f"{exc} (a cluster client learns the cluster's slots at start: start again once it answers)", code=ExitCode.REDIS_UNREACHABLE)
    server = None
    try:
        if metrics is not None and metrics_port is not None:
            server = _serve_metrics(metrics.registry, metrics_host, metrics_port)
        problem = answers(client)
        if problem is not None:
            logger.warning(
                "No Redis answers at %s (%s): starting anyway; runs are queued (up to outbox_max_runs) "
                "and published, in order, when it answers",
                redacted(url),
                problem,
            )
        asyncio.run(run_until_stopped(config, client, metrics=metrics))
    except StartError as exc:
        _fail(str(exc), code=ExitCode.START_FAILED)
    finally:
        if server is not None:
            server.close()
        client.close()


def _run_metrics() -> ReconciliationMetrics:
    """The metrics of `run`, on a registry of their own beside the process's; or the command's end."""
    try:
        from reconciliation.metrics import ReconciliationMetrics  # noqa: PLC0415 - the optional metrics extra
    except ImportError as exc:
        _fail(f"--metrics-port: {exc}", code=ExitCode.USAGE)
    from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector  # noqa: PLC0415

    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    return ReconciliationMetrics(registry)


def _serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """/metrics served on host:port, or the command's end with exit 4."""
    from reconciliation.metrics import serve_metrics  # noqa: PLC0415 - the optional metrics extra

    try:
        return serve_metrics(registry, port=port, host=host)
    except OSError as exc:
        _fail(
            f"--metrics-host/--metrics-port: cannot listen on {host}:{port}: {exc.strerror or exc}",
            code=ExitCode.START_FAILED,
        )


@main.command(epilog=EXIT_CODES_HELP)
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
    import datetime as dt  # noqa: PLC0415 - the other commands do not need these

    from reconciliation._cli.check import (  # noqa: PLC0415
        PublishError,
        csv_document,
        figures,
        json_document,
        load_check_config,
        read_statements,
        reconcile_once,
        sides_with_balances,
    )
    from reconciliation._cli.runner import ConfigError  # noqa: PLC0415
    from reconciliation.files import StatementError  # noqa: PLC0415

    _configure_logging(verbose, logging.WARNING, below_error=("reconciliation.runs",))
    if as_json and as_csv:
        _fail("--json and --csv: choose one output", code=ExitCode.USAGE)
    try:
        spec = sides_with_balances(
            load_check_config(config_path),
            local_balances or figures(local_cash, local_equity, "local"),
            broker_balances or figures(broker_cash, broker_equity, "broker"),
        )
    except ConfigError as exc:
        where = f"{config_path}: " if config_path is not None else ""
        _fail(*(f"{where}{problem}" for problem in exc.problems), code=ExitCode.USAGE)
    try:
        book, broker = read_statements(spec, local_path, broker_path)
    except StatementError as exc:
        _fail(str(exc), code=ExitCode.USAGE)
    client = _connect(redis_url) if redis_url is not None else None
    try:
        result = reconcile_once(spec, book, broker, client=client, now=dt.datetime.now(dt.UTC))
    except PublishError as exc:
        _fail(f"{redacted(redis_url or '')}: {exc}", code=ExitCode.REDIS_UNREACHABLE)
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
        _fail(f"the run failed: {result.error}", code=ExitCode.NOT_AS_ASKED)
    if not result.is_clean:
        sys.exit(ExitCode.NOT_AS_ASKED)


def _show_breaks(result: ReconciliationResult, local_path: Path, broker_path: Path) -> None:
    """The breaks as a table, then one line: how many, of how many positions."""
    from rich.table import Table  # noqa: PLC0415 - only this command draws one

    from reconciliation._cli.render import SEVERITY_STYLES  # noqa: PLC0415
    from reconciliation._publishing.payloads import decimal_text  # noqa: PLC0415

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


@main.command(epilog=EXIT_CODES_HELP)
@verbose_option
@click.option(
    "--store",
    envvar="RECONCILIATION_AUDIT_STORE",
    show_envvar=True,
    required=True,
    help="The audit store: a SQLite file or a postgresql:// URL (the config's audit_store).",
)
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
    import datetime as dt  # noqa: PLC0415 - the other commands do not need these
    import json  # noqa: PLC0415

    from reconciliation._cli.history_view import (  # noqa: PLC0415
        UNBOUNDED_WIDTH,
        parse_moment,
        render_corrections,
        render_history,
    )
    from reconciliation.audit import (  # noqa: PLC0415
        AccountCorrections,
        AccountHistory,
        AuditStoreError,
        NoAuditTablesError,
        load_corrections,
        load_history,
    )

    _configure_logging(verbose, logging.WARNING)
    now = dt.datetime.now(dt.UTC)
    window: dict[str, dt.datetime | None] = {}
    for name, text in (("since", since), ("until", until)):
        try:
            window[name] = parse_moment(text, now) if text else None
        except ValueError as exc:
            _fail(f"--{name}: {exc}", code=ExitCode.USAGE)
    audit = _open_audit_store(store)
    found: AccountHistory | AccountCorrections
    try:
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
    except NoAuditTablesError as exc:
        _fail(str(exc), code=ExitCode.STORE_UNAVAILABLE)
    except AuditStoreError as exc:
        _fail(f"the audit store {redacted(store)} could not be read: {exc}", code=ExitCode.STORE_UNAVAILABLE)
    finally:
        audit.close()
    if as_json:
        click.echo(json.dumps(found.to_dict(), indent=2))
        return
    console = Console()
    shown_on = console if console.is_terminal else Console(width=UNBOUNDED_WIDTH)
    if isinstance(found, AccountCorrections):
        render_corrections(shown_on, found)
    else:
        render_history(shown_on, found, open_only=not all_breaks)


@main.command(epilog=EXIT_CODES_HELP)
@verbose_option
@click.option(
    "--store",
    envvar="RECONCILIATION_AUDIT_STORE",
    show_envvar=True,
    required=True,
    help="The audit store: a SQLite file or a postgresql:// URL (the config's audit_store).",
)
@redis_url_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to listen on; anything but the loopback exposes the board to the network.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_BOARD_PORT, show_default=True)
@click.option(
    "--replay",
    type=click.IntRange(min=0, max=MAX_REPLAY),
    default=DEFAULT_BOARD_REPLAY,
    show_default=True,
    metavar="N",
    help="Stream entries applied at start, to catch up with runs the store had not recorded yet.",
)
@cluster_option
@click.pass_obj
def serve(
    verbose: int, store: str, redis_url: str, host: str, port: int, replay: int, *, cluster: bool
) -> None:
    """Serve the live break board: every account's last run and open breaks, in the browser.

    The page starts from the audit store and follows the Redis streams, so a new break
    appears and a resolved one disappears without reloading; click a break for its
    history. Read-only: it only answers GET. It listens on 127.0.0.1 unless --host says
    otherwise, and then answers only requests addressed to 127.0.0.1 or localhost.
    A JSON API sits behind it: /api/board and /api/breaks/<break_id>.

    \b
    Examples:
      reconciliation serve --store audit.db
      reconciliation serve --store postgresql://db/recon --redis-url redis://redis:6379/0 --port 9000
    """
    _configure_logging(verbose, logging.WARNING)
    try:
        import uvicorn  # noqa: PLC0415 - the optional board extra

        from reconciliation._cli.board.app import LOOPBACK_HOSTS, Board, create_app, seed  # noqa: PLC0415
    except ImportError as exc:
        _fail(f"serve needs the board extra ({exc}): pip install 'reconciliation[board]'", code=ExitCode.USAGE)
    from reconciliation.audit import AuditStoreError, NoAuditTablesError  # noqa: PLC0415

    try:
        client = client_for(redis_url, retry_commands=False, cluster=cluster)
    except InvalidRedisUrlError as exc:
        _fail(f"--redis-url: {exc}", code=ExitCode.USAGE)
    except RedisUnreachableError as exc:
        _fail(str(exc), code=ExitCode.REDIS_UNREACHABLE)
    audit = _open_audit_store(store)
    try:
        state = seed(audit)
    except NoAuditTablesError as exc:
        audit.close()
        _fail(str(exc), code=ExitCode.STORE_UNAVAILABLE)
    except AuditStoreError as exc:
        audit.close()
        _fail(f"the audit store {redacted(store)} could not be read: {exc}", code=ExitCode.STORE_UNAVAILABLE)
    listening = _listen(host, port)
    where = f"{redacted(store)} · {redacted(redis_url)}"
    board = Board(state, audit, client, where=redacted(redis_url), replay=replay)
    app = create_app(board, where=where, allowed_hosts=LOOPBACK_HOSTS if _is_loopback(host) else None)
    shown_host = f"[{host}]" if ":" in host else host
    Console(stderr=True, highlight=False).print(
        f"Serving the break board on http://{shown_host}:{port}/ (Ctrl-C to stop)", markup=False
    )
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=bool(verbose), timeout_graceful_shutdown=2, lifespan="on")
    )
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        server.run(sockets=[listening])
    except KeyboardInterrupt:
        logger.debug("Stopped by Ctrl-C")
    finally:
        signal.signal(signal.SIGTERM, previous)
        listening.close()
        audit.close()


def _stopped(_signum: int, _frame: object) -> None:
    """SIGTERM, raised again by uvicorn once it has shut down gracefully: a clean end."""
    sys.exit(ExitCode.OK)


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, or the command's end with exit 4."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
        listening.listen(128)
    except OSError as exc:
        _fail(f"--host/--port: cannot listen on {host}:{port}: {exc.strerror or exc}", code=ExitCode.START_FAILED)
    return listening


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _import_from_the_working_directory() -> None:
    """Let `module:factory` name a module of the current directory, as `python -m` would.

    The `reconciliation` script's own directory, not the current one, starts `sys.path`.
    """
    here = str(Path.cwd())
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)


def _open_audit_store(store: str) -> AuditStore:
    """The audit store at `store`, or the command's end: a usage error (2) or an unusable store (5)."""
    from reconciliation.audit import AuditStoreError, open_store  # noqa: PLC0415 - only history and serve

    if "://" not in store and not Path(store).is_file():
        _fail(
            f"--store: no audit store at {store} (a SQLite file written by a service with audit_store set)",
            code=ExitCode.USAGE,
        )
    try:
        return open_store(store)
    except ValueError as exc:
        _fail(f"--store: {exc}", code=ExitCode.USAGE)
    except AuditStoreError as exc:
        _fail(str(exc), code=ExitCode.STORE_UNAVAILABLE)
