"""`reconciliation watch`: runs, breaks, resolved breaks and halts as they are published."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sys

import click
import redis
from rich.console import Console

from reconciliation._cli.main import EXIT_CODES_HELP, ExitCode
from reconciliation._cli.shared import (
    MAX_REPLAY,
    CommandError,
    bounded_option,
    cluster_option,
    configure_logging,
    redis_errors,
    redis_url_option,
    verbose_option,
)
from reconciliation._cli.watch import Filters, Liveness, StderrNarrator, human_line, json_line
from reconciliation._cli.watch import watch as follow
from reconciliation._domain.backoff import Backoff
from reconciliation._publishing.inbound import SEVERITIES
from reconciliation._publishing.redis_clients import connect, redacted
from reconciliation._publishing.streams import RedisLostError

__all__ = ["watch"]

MAX_COUNT = 1_000_000_000
MAX_SECONDS = 366 * 24 * 3600.0
"""A year: the longest --timeout or --retry-for."""
DEFAULT_RETRY_FOR_SECONDS = 300.0


@click.command(epilog=EXIT_CODES_HELP)
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
@bounded_option(
    "--retry-for",
    click.FloatRange(min=0, max=MAX_SECONDS),
    DEFAULT_RETRY_FOR_SECONDS,
    "When Redis goes away, keep reconnecting this long before giving up (exit 3).",
)
@click.option(
    "--since",
    metavar="WHEN",
    help=(
        "First show what the streams kept since WHEN: a duration back from now (30s, 15m, 2h, 1d) or an "
        f"ISO-8601 time (2026-11-25T10:00Z); at most the last {MAX_REPLAY:,} entries."
    ),
)
@bounded_option(
    "--stale-grace",
    click.FloatRange(0, MAX_SECONDS),
    120.0,
    "Say STALE once an account's next run is this long overdue (its runs stopped coming).",
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
    since: str | None,
    stale_grace: float,
    as_json: bool,
    cluster: bool,
) -> None:
    """Show runs, breaks, resolved breaks and halts as they are published, coloured by severity.

    Reads the streams reconciliation:stream:result, :discrepancy, :resolved, :halt and
    :correction (XREAD BLOCK, merged in publish order). With --replay N it first shows
    the N latest entries; with --since 15m, those of the last 15 minutes. Times are UTC,
    with their date. An account whose next run is overdue by --stale-grace is said STALE
    once. If Redis goes away it says so on stderr, reconnects with backoff and resumes
    right after the last entry it showed; it gives up (exit 3) after --retry-for seconds.
    An entry that is not a well-formed payload is shown as MALFORMED with its stream ID.

    \b
    Examples:
      reconciliation watch --replay 20
      reconciliation watch --since 1h --account ACC-1
      reconciliation watch --account ACC-1 --severity critical
      reconciliation watch --json | jq 'select(.channel == "reconciliation:discrepancy" and .severity == "critical")'
      reconciliation watch --count 1 --timeout 30     # wait for the next message
      reconciliation watch --cluster --redis-url redis://node-1:7000
    """
    configure_logging(verbose, logging.WARNING)
    starting = None if since is None else _since(since)
    with redis_errors():
        client = connect(redis_url, retry_commands=False, cluster=cluster)
    console = Console(highlight=False)
    """Lines wrap between words at the terminal's width, never inside a number."""
    where = redacted(redis_url)
    backoff = Backoff(give_up_after_seconds=retry_for)
    show = (lambda m: click.echo(json_line(m))) if as_json else (lambda m: console.print(human_line(m)))
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    if not as_json:
        errors.print(f"Watching {where} (Ctrl-C to stop)", style="dim", markup=False)
    try:
        received = follow(
            client,
            show,
            count=count,
            timeout=timeout,
            filters=Filters(frozenset(accounts), frozenset(severities)),
            backoff=backoff,
            narrator=StderrNarrator(errors, where, backoff),
            since=starting,
            replay_last=MAX_REPLAY if starting is not None else replay,
            liveness=None if as_json else Liveness(dt.timedelta(seconds=stale_grace)),
            say=console.print,
        )
    except KeyboardInterrupt:
        return
    except BrokenPipeError:
        _quiet_stdout()
        return
    except RedisLostError as exc:
        msg = f"lost Redis at {where}: {exc}"
        raise CommandError(msg, exit_code=ExitCode.REDIS_UNREACHABLE) from exc
    except redis.ResponseError as exc:
        raise CommandError(_refused(where, exc), exit_code=ExitCode.REDIS_REFUSED) from exc
    finally:
        client.close()
    if count is not None and received < count:
        Console(stderr=True).print(f"Timed out after {timeout:g} s with {received} of {count} messages.")
        sys.exit(ExitCode.NOT_AS_ASKED)


def _refused(where: str, exc: redis.ResponseError) -> str:
    """What Redis refused; a cluster node's MOVED means --cluster is missing."""
    # redis-py 6 raises MovedError; before it, a plain ResponseError that keeps the code
    if isinstance(exc, redis.exceptions.MovedError) or str(exc).startswith("MOVED "):
        return (
            f"Redis at {where} is a Redis Cluster node: add --cluster "
            f"(it answered MOVED {str(exc).removeprefix('MOVED ')})"
        )
    return f"Redis at {where} refused to read the streams: {exc}"


def _quiet_stdout() -> None:
    """The reader of our output went away (`| head`): write nothing more, not even at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|min|h|d)", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def _since(text: str) -> dt.datetime:
    """The moment --since names: `15m` back from now, or an ISO-8601 time (UTC without a zone).

    Raises:
        click.BadParameter: it is neither.
    """
    duration = _DURATION.fullmatch(text.strip())
    if duration is not None:
        seconds = float(duration.group(1)) * _SECONDS[duration.group(2).lower()]
        return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=min(seconds, MAX_SECONDS))
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        msg = f"{text!r} is neither a duration (30s, 15m, 2h, 1d) nor an ISO-8601 time (2026-11-25T10:00Z)"
        raise click.BadParameter(msg, param_hint="--since") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
