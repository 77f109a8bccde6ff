"""What the commands share: their error, their common options, their logging, and their stores.

`CommandError` ends a command: one `Error:` line per message on stderr, without secrets or
terminal control sequences, and the command's exit code. The failures several commands
meet (a Redis URL, the audit store) become one here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from reconciliation._cli.main import ExitCode
from reconciliation._cli.safe_text import safe_text
from reconciliation._domain.redaction import redact_text
from reconciliation._publishing.redis_clients import (
    DEFAULT_REDIS_URL,
    InvalidRedisUrlError,
    RedisUnreachableError,
    redacted,
)
from reconciliation.audit import AuditStoreError, NoAuditTablesError, open_store

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from click.decorators import FC

    from reconciliation.audit import AuditStore

__all__ = [
    "ERROR_LIMIT",
    "MAX_REPLAY",
    "SDK_LOGGERS",
    "CommandError",
    "audit_store",
    "bounded_option",
    "cluster_option",
    "configure_logging",
    "redis_errors",
    "redis_url_option",
    "store_option",
    "verbose_option",
]

MAX_REPLAY = 100_000
"""More entries than the streams keep by default (10,000 each)."""
LOG_LINE_LIMIT = 20_000
"""The longest log line a command writes, in characters."""
ERROR_LIMIT = 2_000
"""The longest error line a command writes, in characters."""
SDK_LOGGERS = (
    "ccxt",
    "alpaca",
    "ib_async",
    "ibapi",
    "urllib3",
    "requests",
    "aiohttp",
    "httpx",
    "httpcore",
    "hpack",
    "h2",
    "websockets",
    "websocket",
    "psycopg",
    "redis",
)
"""The SDKs' loggers and those of the HTTP, WebSocket and database clients under them: at DEBUG
they log request headers (ccxt's with the API key), signed URLs and connection strings, so -v
shows them at INFO and above; `run --debug-sdk` lifts it."""

_SDK_PREFIXES = tuple(f"{name}." for name in SDK_LOGGERS)


class CommandError(click.ClickException):
    """The command's end: each message on its own `Error:` line on stderr, then `exit_code`."""

    def __init__(self, *messages: str, exit_code: ExitCode) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages
        self.exit_code = exit_code  # type: ignore[misc] # click reads it from the instance

    def show(self, file: IO[Any] | None = None) -> None:
        console = Console(file=file or sys.stderr)
        for message in self.messages:
            console.print(
                f"[bold red]Error:[/bold red] {escape(safe_text(redact_text(message), limit=ERROR_LIMIT))}",
                highlight=False,
                soft_wrap=True,
            )


@contextlib.contextmanager
def redis_errors(option: str = "--redis-url", *, unreachable: str = "") -> Iterator[None]:
    """Connecting to Redis: a malformed URL is a usage error naming `option`, no answer exit 3.

    `unreachable` is said after the client's own message when no Redis answers.
    """
    try:
        yield
    except InvalidRedisUrlError as exc:
        msg = f"{option}: {exc}"
        raise CommandError(msg, exit_code=ExitCode.USAGE) from exc
    except RedisUnreachableError as exc:
        msg = f"{exc}{unreachable}"
        raise CommandError(msg, exit_code=ExitCode.REDIS_UNREACHABLE) from exc


@contextlib.contextmanager
def audit_store(store: str) -> Iterator[AuditStore]:
    """The audit store at `store`, opened read-only (a SQLite file is left as it is) and closed
    after the block; a usage error (2) or an unusable store (5)."""
    if "://" not in store and not Path(store).is_file():
        msg = f"--store: no audit store at {store} (a SQLite file written by a service with audit_store set)"
        raise CommandError(msg, exit_code=ExitCode.USAGE)
    try:
        audit = open_store(store, read_only=True)
    except ValueError as exc:
        msg = f"--store: {exc}"
        raise CommandError(msg, exit_code=ExitCode.USAGE) from exc
    except AuditStoreError as exc:
        raise CommandError(str(exc), exit_code=ExitCode.STORE_UNAVAILABLE) from exc
    try:
        yield audit
    except NoAuditTablesError as exc:
        raise CommandError(str(exc), exit_code=ExitCode.STORE_UNAVAILABLE) from exc
    except AuditStoreError as exc:
        msg = f"the audit store {redacted(store)} could not be read: {exc}"
        raise CommandError(msg, exit_code=ExitCode.STORE_UNAVAILABLE) from exc
    finally:
        audit.close()


def configure_logging(
    verbose: int,
    level: int,
    *,
    below_error: tuple[str, ...] = (),
    debug_sdk: bool = False,
    log_format: str = "text",
) -> None:
    """Log to stderr: through rich on a terminal, one plain line per record otherwise, or
    with `log_format="json"` one JSON object per record (`JsonFormatter`), always.

    The handler replaces (not doubles) the one of a command run before in the same process.
    -v shows DEBUG from every logger, pykka's included, but never below INFO from the
    `SDK_LOGGERS`, whose DEBUG lines carry credentials, unless `debug_sdk` (which also says
    so, at WARNING); without -v, the loggers named in `below_error` show only errors (the
    demo shows their runs itself).
    """
    handler: logging.Handler
    if log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif sys.stderr.isatty():
        handler = RichHandler(console=Console(stderr=True), show_path=False, markup=False)
        handler.setFormatter(_RedactingFormatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if below_error and not verbose:
        handler.addFilter(lambda record: record.levelno >= logging.ERROR or record.name not in below_error)
    if not debug_sdk:
        handler.addFilter(_not_sdk_debug)
    handler.set_name(__name__)
    root = logging.getLogger()
    for previous in [h for h in root.handlers if h.get_name() == __name__]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else level)
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug_sdk else logging.INFO)
    if debug_sdk:
        logging.getLogger(__name__).warning(
            "--debug-sdk: the SDKs log at DEBUG, with their request headers, signed URLs and bodies: "
            "API keys and signatures are in this log; keep it private, and delete it when done"
        )


def _not_sdk_debug(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.INFO or not (
        record.name in SDK_LOGGERS or record.name.startswith(_SDK_PREFIXES)
    )


_RECORD_KEYS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
"""The attributes every LogRecord has: what is left of a record's attributes is its `extra`."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record, for journald, Loki or ELK: `time` (ISO-8601 UTC), `level`,
    `logger`, `message`, each `extra=` field (`run_id`, `account_id`, ...) and `exception`;
    passwords redacted, control characters escaped (the JSON is ASCII)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_KEYS and key not in line:
                line[key] = value if isinstance(value, (int, float, bool)) or value is None else redact_text(str(value))
        if record.exc_info:
            line["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=True, default=str)


class _RedactingFormatter(logging.Formatter):
    """Every log line the command writes, traceback included, without passwords or escape sequences."""

    def format(self, record: logging.LogRecord) -> str:
        return safe_text(redact_text(super().format(record)), limit=LOG_LINE_LIMIT, keep_newlines=True)


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


def bounded_option(
    name: str, kind: click.ParamType[float, float], default: float, help_text: str, metavar: str = "SECONDS"
) -> Callable[[FC], FC]:
    """An option whose value `kind` bounds, its default shown in the help."""
    return click.option(name, type=kind, default=default, show_default=True, metavar=metavar, help=help_text)


store_option = click.option(
    "--store",
    envvar="RECONCILIATION_AUDIT_STORE",
    show_envvar=True,
    required=True,
    help="The audit store: a SQLite file or a postgresql:// URL (the config's audit_store).",
)
