"""The `reconciliation` command: `demo`, `watch`, `run` and `history`.

The library configures no logging; this command does (to stderr, `-v` for DEBUG), so
an actor that dies or a run that fails is always on screen.

Exit codes, for scripts:

    0  done: the demo caught every fault, watch got its messages, run stopped cleanly
    1  done, but not as asked: a demo fault went uncaught or a trigger never fired;
       watch timed out before --count messages
    2  usage or configuration error (the message names the option or key)
    3  Redis unreachable
    4  run: a service could not be built or started (a factory raised)
    5  history: the audit store could not be read
    130  interrupted (Ctrl-C) during the demo
"""

from __future__ import annotations

import asyncio
import enum
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from reconciliation._cli.render import message_line
from reconciliation._domain.models import DiscrepancySeverity, DiscrepancyType
from reconciliation._publishing.redis_clients import (
    DEFAULT_REDIS_URL,
    RedisUnreachableError,
    answers,
    client_for,
    connect,
    fake_redis,
    redacted,
)

if TYPE_CHECKING:
    from reconciliation._cli.watch import Message

__all__ = ["ExitCode", "main"]

logger = logging.getLogger(__name__)


class ExitCode(enum.IntEnum):
    OK = 0
    NOT_AS_ASKED = 1
    USAGE = 2
    REDIS_UNREACHABLE = 3
    START_FAILED = 4
    STORE_UNAVAILABLE = 5
    INTERRUPTED = 130


EXIT_CODES_HELP = """\b
Exit codes:
  0  done as asked
  1  done, but not as asked (a demo fault uncaught, watch timed out before --count)
  2  usage or configuration error
  3  Redis unreachable
  4  a service could not be started (run)
  5  the audit store could not be read (history)
"""


def _configure_logging(verbose: int, level: int, *, below_error: tuple[str, ...] = ()) -> None:
    """Log to stderr: through rich on a terminal, one plain line per record otherwise.

    -v shows DEBUG from every logger, pykka's included; without it, the loggers named in
    `below_error` show only errors (the demo shows their runs itself).
    """
    handler: logging.Handler
    if sys.stderr.isatty():
        handler = _RichCliHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=True)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = _PlainCliHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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


def _fail(message: str, code: ExitCode) -> NoReturn:
    Console(stderr=True).print(
        f"[bold red]Error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True
    )
    sys.exit(code)


redis_url_option = click.option(
    "--redis-url",
    envvar="REDIS_URL",
    default=DEFAULT_REDIS_URL,
    show_default=True,
    show_envvar=True,
    help="Where the runs are published.",
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
      reconciliation history --store F --account ACC   what was found, and what is still open
    """
    ctx.obj = verbose


@main.command(epilog=EXIT_CODES_HELP)
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
    except RedisUnreachableError as exc:
        console.print(f"[yellow]{escape(str(exc))}[/yellow]")
        try:
            client = fake_redis()
        except RedisUnreachableError as missing:
            _fail(str(missing), ExitCode.REDIS_UNREACHABLE)
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
@redis_url_option
@click.option(
    "--replay",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="First show the last N messages kept in the streams (what you missed).",
)
@click.option("--json", "as_json", is_flag=True, help="Print each raw JSON payload on its own line.")
@click.option("--count", type=click.IntRange(min=1), metavar="N", help="Exit after N live messages.")
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS", help="Exit after SECONDS."
)
@click.pass_obj
def watch(
    verbose: int, redis_url: str, replay: int, count: int | None, timeout: float | None, *, as_json: bool
) -> None:
    """Show runs and discrepancies live as they are published, coloured by severity.

    Subscribes to reconciliation:result, :discrepancy, :resolved (a break that went
    away) and :halt (the kill switch fired). With --replay N it first shows the N latest
    entries of their streams (reconciliation:stream:result, ...), merged in order; a
    message in both the replay and the live feed is shown once.

    \b
    Examples:
      reconciliation watch --replay 20
      reconciliation watch --json | jq 'select(.severity == "critical")'
      reconciliation watch --count 1 --timeout 30     # wait for the next message
    """
    from reconciliation._cli.watch import watch as follow  # noqa: PLC0415 - keeps --help fast

    _configure_logging(verbose, logging.WARNING)
    try:
        client = connect(redis_url, socket_timeout=None)
    except RedisUnreachableError as exc:
        _fail(str(exc), ExitCode.REDIS_UNREACHABLE)
    console = Console(highlight=False, soft_wrap=True)
    show = _print_json if as_json else lambda message: _print_line(console, message)
    if not as_json:
        console.print(f"Watching {redacted(redis_url)} (Ctrl-C to stop)", style="dim", markup=False)
    try:
        received = follow(client, show, replay_last=replay, count=count, timeout=timeout)
    except KeyboardInterrupt:
        return
    except Exception as exc:  # noqa: BLE001 - a lost connection is reported in one line
        _fail(f"lost Redis at {redacted(redis_url)}: {exc}", ExitCode.REDIS_UNREACHABLE)
    finally:
        client.close()
    if count is not None and received < count:
        Console(stderr=True).print(f"Timed out after {timeout:g} s with {received} of {count} messages.")
        sys.exit(ExitCode.NOT_AS_ASKED)


def _print_json(message: Message) -> None:
    click.echo(message.raw)


def _print_line(console: Console, message: Message) -> None:
    payload = message.payload
    if payload is None:
        console.print(f"{message.channel}: {message.raw}", style="dim", markup=False)
        return
    stamp = str(payload.get("timestamp") or payload.get("resolved_at") or "")[11:23]
    console.print(
        message_line(message.channel, payload, prefix=f"{'(replay) ' if message.replayed else ''}{stamp}  ")
    )


@main.command(epilog=EXIT_CODES_HELP)
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
@click.pass_obj
def run(verbose: int, config_path: Path, redis_url: str | None, *, check: bool) -> None:
    """Reconcile the configured accounts as a standalone process, until SIGINT or SIGTERM.

    One service per account: a startup run, then periodic runs, each published to Redis
    and logged here. The broker and the local book of each account come from factories
    named by import path (`package.module:function`, called with the account id).

    \b
    Examples:
      reconciliation run --config docs/example-config.toml
      reconciliation run --config prod.toml --check        # validate, start nothing
      REDIS_URL=redis://redis:6379/0 reconciliation run --config prod.toml
    """
    from reconciliation._cli.runner import ConfigError, StartError, load_config, run_until_stopped  # noqa: PLC0415

    _configure_logging(verbose, logging.INFO)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        _fail(f"{config_path}: {exc}", ExitCode.USAGE)
    url = redis_url or config.redis_url or DEFAULT_REDIS_URL
    if check:
        accounts = ", ".join(spec.config.account_id for spec in config.accounts)
        click.echo(
            f"{config_path}: OK ({len(config.accounts)} account(s): {accounts}; Redis {redacted(url)})"
        )
        return
    try:
        client = client_for(url)
    except RedisUnreachableError as exc:
        _fail(str(exc), ExitCode.USAGE)
    problem = answers(client)
    if problem is not None:
        logger.warning(
            "No Redis answers at %s (%s): starting anyway; runs are queued (up to outbox_max_runs) "
            "and published, in order, when it answers",
            redacted(url),
            problem,
        )
    try:
        asyncio.run(run_until_stopped(config, client))
    except StartError as exc:
        _fail(str(exc), ExitCode.START_FAILED)
    finally:
        client.close()


@main.command(epilog=EXIT_CODES_HELP)
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
    "--limit", default=20, show_default=True, type=click.IntRange(min=1), help="The most recent runs."
)
@click.option("--all-breaks", is_flag=True, help="Resolved breaks too, not only the open ones.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: runs and breaks, for scripts.")
def history(  # noqa: PLR0913 - one parameter per command-line option
    store: str,
    account: str,
    types: tuple[str, ...],
    severities: tuple[str, ...],
    since: str | None,
    until: str | None,
    limit: int,
    *,
    all_breaks: bool,
    as_json: bool,
) -> None:
    """Show an account's recorded runs and its open (or all) breaks, from the audit store.

    \b
    Examples:
      reconciliation history --store audit.db --account ACC-1
      reconciliation history --store audit.db --account ACC-1 --since 2h --severity critical
      reconciliation history --store postgresql://db/recon --account ACC-1 --all-breaks --json | jq .
    """
    import datetime as dt  # noqa: PLC0415 - the other commands do not need these
    import json  # noqa: PLC0415

    from reconciliation._cli.history_view import parse_moment, render_history  # noqa: PLC0415
    from reconciliation.audit import AuditStoreError, load_history, open_store  # noqa: PLC0415

    now = dt.datetime.now(dt.UTC)
    try:
        window = {
            name: parse_moment(text, now) if text else None
            for name, text in (("since", since), ("until", until))
        }
    except ValueError as exc:
        _fail(f"--since/--until: {exc}", ExitCode.USAGE)
    if "://" not in store and not Path(store).is_file():
        _fail(
            f"--store: no audit store at {store} (a SQLite file written by a service with audit_store set)",
            ExitCode.USAGE,
        )
    try:
        audit = open_store(store)
    except ValueError as exc:
        _fail(f"--store: {exc}", ExitCode.USAGE)
    except AuditStoreError as exc:
        _fail(str(exc), ExitCode.STORE_UNAVAILABLE)
    try:
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
    except AuditStoreError as exc:
        _fail(f"the audit store {redacted(store)} could not be read: {exc}", ExitCode.STORE_UNAVAILABLE)
    finally:
        audit.close()
    if as_json:
        click.echo(json.dumps(found.to_dict(), indent=2))
    else:
        render_history(Console(), found, open_only=not all_breaks)
