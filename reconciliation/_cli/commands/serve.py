"""`reconciliation serve`: the live break board, in the browser (the board extra)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import signal
import socket
import sys

import click
from rich.console import Console

from reconciliation._cli.main import EXIT_CODES_HELP, ExitCode
from reconciliation._cli.shared import (
    MAX_REPLAY,
    CommandError,
    audit_store,
    bounded_option,
    cluster_option,
    configure_logging,
    redis_errors,
    redis_url_option,
    store_option,
    verbose_option,
)
from reconciliation._publishing.redis_clients import client_for, redacted

__all__ = ["serve"]

logger = logging.getLogger(__name__)

DEFAULT_BOARD_PORT = 8765
DEFAULT_BOARD_REPLAY = 2_000
DEFAULT_MAX_CONNECTIONS = 100
"""Open connections, for a board a few people keep open (`board.guard`)."""
DEFAULT_REQUEST_TIMEOUT = 10.0
"""Seconds a connection has to send its request (`board.guard`)."""
_OWN_DESCRIPTORS = 64
"""File descriptors the board keeps for itself: the store, Redis, its listening socket, Python's own."""


@click.command(epilog=EXIT_CODES_HELP)
@verbose_option
@store_option
@redis_url_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to listen on; anything but the loopback exposes the board to the network.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_BOARD_PORT, show_default=True)
@bounded_option(
    "--replay",
    click.IntRange(min=0, max=MAX_REPLAY),
    DEFAULT_BOARD_REPLAY,
    "Stream entries applied at start, to catch up with runs the store had not recorded yet.",
    metavar="N",
)
@bounded_option(
    "--max-connections",
    click.IntRange(1, 10_000),
    DEFAULT_MAX_CONNECTIONS,
    "Open connections; past it, the one that has waited longest without sending a request is closed.",
    metavar="N",
)
@bounded_option(
    "--request-timeout",
    click.FloatRange(0.1, 3600),
    DEFAULT_REQUEST_TIMEOUT,
    "How long a connection has to send a whole request (its headers) before it is closed.",
)
@bounded_option(
    "--stale-grace",
    click.FloatRange(0, 86_400),
    120.0,
    "How long past its next run's due time an account goes without a result before it is shown stale.",
)
@cluster_option
@click.pass_obj
def serve(  # noqa: PLR0913 - one parameter per command-line option
    verbose: int,
    store: str,
    redis_url: str,
    host: str,
    port: int,
    replay: int,
    max_connections: int,
    request_timeout: float,
    *,
    stale_grace: float,
    cluster: bool,
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
    configure_logging(verbose, logging.WARNING)
    try:
        import uvicorn  # noqa: PLC0415 - the optional board extra

        from reconciliation._cli.board.app import LOOPBACK_HOSTS, Board, create_app, seed  # noqa: PLC0415
        from reconciliation._cli.board.guard import ACCEPT_BACKLOG, ConnectionGuard, guarded_protocol  # noqa: PLC0415
    except ImportError as exc:
        msg = f"serve needs the board extra ({exc}): pip install 'reconciliation[board]'"
        raise CommandError(msg, exit_code=ExitCode.USAGE) from exc
    _enough_descriptors(max_connections, ACCEPT_BACKLOG)
    guard = ConnectionGuard(max_connections=max_connections, request_timeout=request_timeout)
    with redis_errors():
        client = client_for(redis_url, retry_commands=False, cluster=cluster)
    with audit_store(store) as audit:
        state = seed(audit, stale_grace=dt.timedelta(seconds=stale_grace))
        listening = _listen(host, port, ACCEPT_BACKLOG)
        where = f"{redacted(store)} · {redacted(redis_url)}"
        board = Board(state, audit, client, where=redacted(redis_url), replay=replay)
        app = create_app(board, where=where, allowed_hosts=LOOPBACK_HOSTS if _is_loopback(host) else None)
        shown_host = f"[{host}]" if ":" in host else host
        Console(stderr=True, highlight=False).print(
            f"Serving the break board on http://{shown_host}:{port}/ (Ctrl-C to stop)", markup=False
        )
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                http=guarded_protocol(guard),
                backlog=ACCEPT_BACKLOG,
                log_config=None,
                access_log=bool(verbose),
                timeout_graceful_shutdown=2,
                lifespan="on",
            )
        )
        previous = signal.signal(signal.SIGTERM, _stopped)
        try:
            server.run(sockets=[listening])
        except KeyboardInterrupt:
            logger.debug("Stopped by Ctrl-C")
        finally:
            signal.signal(signal.SIGTERM, previous)
            listening.close()


def _stopped(_signum: int, _frame: object) -> None:
    """SIGTERM, raised again by uvicorn once it has shut down gracefully: a clean end."""
    sys.exit(ExitCode.OK)


def _enough_descriptors(max_connections: int, backlog: int) -> None:
    """Refuse a connection cap this process could not open (each connection, queued ones
    included, is a file descriptor)."""
    try:
        import resource  # noqa: PLC0415 - POSIX only
    except ImportError:
        return
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = max_connections + backlog + _OWN_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and needed > soft:
        msg = (
            f"--max-connections: this process may open {soft} files, and the board would need {needed} "
            f"({max_connections} connections, {backlog} queued ones and {_OWN_DESCRIPTORS} of its own): "
            "lower it, or raise "
            "the limit (ulimit -n)"
        )
        raise CommandError(msg, exit_code=ExitCode.USAGE)


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
        listening.listen(backlog)
    except OSError as exc:
        msg = f"--host/--port: cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise CommandError(msg, exit_code=ExitCode.START_FAILED) from exc
    return listening


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"

