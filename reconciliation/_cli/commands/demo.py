"""`reconciliation demo`: a paper-trading session in which every kind of break happens."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape

from reconciliation._cli.demo import NORMAL, QUICK, TRIGGERS, run_demo
from reconciliation._cli.main import EXIT_CODES_HELP, ExitCode
from reconciliation._cli.shared import configure_logging, redis_errors, redis_url_option, verbose_option
from reconciliation._publishing.redis_clients import (
    InvalidRedisUrlError,
    RedisUnreachableError,
    connect,
    fake_redis,
    redacted,
)
from reconciliation._runtime.log_sink import RUN_LOGGER

if TYPE_CHECKING:
    from types import FrameType

    import redis

__all__ = ["demo"]

FAKE = "an in-process fake Redis"


@click.command(epilog=EXIT_CODES_HELP)
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
    # The story shows every run and break: the run log's WARNING line of each would only repeat it.
    configure_logging(verbose, logging.WARNING, below_error=("reconciliation._runtime.results", RUN_LOGGER))
    console = Console(highlight=False, soft_wrap=True)
    with redis_errors():
        client, where = _client(redis_url, console)
    console.print(
        f"Publishing to {escape(where)}: channels reconciliation:result and reconciliation:discrepancy."
    )
    previous = signal.signal(signal.SIGINT, functools.partial(_interrupted, console))
    try:
        report = asyncio.run(
            run_demo(client, console, pace=QUICK if quick else NORMAL, account_id=account)
        )
    except KeyboardInterrupt:
        _say_interrupted(console)
        sys.exit(ExitCode.INTERRUPTED)
    finally:
        signal.signal(signal.SIGINT, previous)
        client.close()
    results = len(report.runs)
    discrepancies = sum(len(run.discrepancies) for run in report.runs)
    console.print(f"\n{results} results and {discrepancies} discrepancies published to {escape(where)}.")
    if where != FAKE:
        console.print("Read them back: [bold]reconciliation watch --replay 50[/bold]")
    if not report.succeeded:
        absent = sorted(set(TRIGGERS) - report.triggers_seen)
        uncaught = [fault.name for fault in report.detections if not fault.caught]
        console.print(
            "[bold red]The demo did not go as scripted:[/bold red] "
            + escape(
                f"uncaught faults: {', '.join(uncaught) or 'none'}; "
                f"triggers that never fired: {', '.join(absent) or 'none'}; failed runs: {report.failed_runs}."
            )
        )
        sys.exit(ExitCode.NOT_AS_ASKED)


def _client(url: str, console: Console) -> tuple[redis.Redis, str]:
    """The Redis at `url` and where it is; when none answers there, an in-process fake (said on screen)."""
    try:
        return connect(url), redacted(url)
    except InvalidRedisUrlError:
        raise
    except RedisUnreachableError as exc:
        console.print(f"[yellow]{escape(str(exc))}[/yellow]")
    client = fake_redis()
    console.print(
        "[yellow]Running on an in-process fake Redis instead: the demo works the same, "
        "but `reconciliation watch` in another terminal will not see it.[/yellow]"
    )
    return client, FAKE


INTERRUPT_GRACE_SECONDS = 0.5
"""How long the demo may take to stop its actors and threads after Ctrl-C before it leaves
without them (what was in flight is abandoned either way)."""


def _interrupted(console: Console, signum: int, frame: FrameType | None) -> None:
    """Ctrl-C: what is running is stopped (KeyboardInterrupt), and the demo leaves within
    `INTERRUPT_GRACE_SECONDS` whatever still lingers."""
    _leave_if_stopping_lingers(console)
    signal.default_int_handler(signum, frame)


def _leave_if_stopping_lingers(console: Console) -> None:
    """Ctrl-C ends the demo within a second, whatever is still stopping: a thread of the
    script blocked on a reply, say, would otherwise hold the interpreter's exit."""

    def leave() -> None:
        time.sleep(INTERRUPT_GRACE_SECONDS)
        _say_interrupted(console)
        sys.stdout.flush()
        os._exit(ExitCode.INTERRUPTED)

    threading.Thread(target=leave, name="demo-interrupted", daemon=True).start()


_interrupted_said = threading.Lock()


def _say_interrupted(console: Console) -> None:
    """Say it once, whichever of the main thread and `_leave_if_stopping_lingers` comes first."""
    if _interrupted_said.acquire(blocking=False):
        console.print("[yellow]Interrupted.[/yellow]")
