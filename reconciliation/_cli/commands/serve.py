"""`reconciliation serve`: the live break board, in the browser (the board extra)."""

from __future__ import annotations

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
    configure_logging(verbose, logging.WARNING)
    try:
        import uvicorn  # noqa: PLC0415 - the optional board extra

        from reconciliation._cli.board.app import LOOPBACK_HOSTS, Board, create_app, seed  # noqa: PLC0415
    except ImportError as exc:
        msg = f"serve needs the board extra ({exc}): pip install 'reconciliation[board]'"
        raise CommandError(msg, exit_code=ExitCode.USAGE) from exc
    with redis_errors():
        client = client_for(redis_url, retry_commands=False, cluster=cluster)
    with audit_store(store) as audit:
        state = seed(audit)
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


def _stopped(_signum: int, _frame: object) -> None:
    """SIGTERM, raised again by uvicorn once it has shut down gracefully: a clean end."""
    sys.exit(ExitCode.OK)


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
        listening.listen(128)
    except OSError as exc:
        msg = f"--host/--port: cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise CommandError(msg, exit_code=ExitCode.START_FAILED) from exc
    return listening


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"

