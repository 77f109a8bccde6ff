"""`reconciliation run`: the configured accounts reconciled by a standalone process."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import click

from reconciliation._cli.main import EXIT_CODES_HELP, ExitCode
from reconciliation._cli.runner import (
    ConfigError,
    Readiness,
    StartError,
    load_config,
    run_until_stopped,
)
from reconciliation._cli.safe_text import safe_text
from reconciliation._cli.shared import (
    CommandError,
    cluster_option,
    configure_logging,
    redis_errors,
    verbose_option,
)
from reconciliation._publishing.redis_clients import DEFAULT_REDIS_URL, answers, client_for, redacted
from reconciliation._runtime.runtime import check_runtime_name

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from reconciliation._cli.runner import RunnerConfig
    from reconciliation.metrics import MetricsServer, ReconciliationMetrics

__all__ = ["run"]

logger = logging.getLogger(__name__)

UNNAMED_RUNTIME_LABEL = "reconciliation"
"""The metrics' `runtime` label of a process run without a name (one per process, whatever its accounts)."""


@click.command(epilog=EXIT_CODES_HELP)
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
@click.option(
    "--state-dir",
    metavar="DIR",
    help="Where runs waiting for Redis are journaled, so a crash loses none (overrides the file's state_dir).",
)
@click.option(
    "--name",
    "runtime_name",
    envvar="RECONCILIATION_NAME",
    show_envvar=True,
    metavar="NAME",
    help="This process's runtime name, which holds its accounts' leases and is the `runtime` label of its "
    "metrics (overrides the file's runtime_name): unique to one live process, the same across its restarts.",
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
@click.option(
    "--debug-sdk",
    is_flag=True,
    help="Log the SDKs' DEBUG lines (ccxt, alpaca, ib_async, urllib3, ...), which -v leaves out: they carry API keys and signatures.",
)
@click.option(
    "--log-level",
    type=click.Choice(("debug", "info", "warning", "error"), case_sensitive=False),
    default="info",
    show_default=True,
    help="The least severe records logged (-v is --log-level debug).",
)
@click.option(
    "--log-format",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="text: for people (rich on a terminal); json: one JSON object per line, extra fields included.",
)
@cluster_option
@click.pass_obj
def run(  # noqa: PLR0913, PLR0917 - one parameter per command-line option
    verbose: int,
    config_path: Path,
    redis_url: str | None,
    state_dir: str | None,
    runtime_name: str | None,
    metrics_port: int | None,
    metrics_host: str,
    log_level: str,
    log_format: str,
    *,
    check: bool,
    cluster: bool,
    debug_sdk: bool,
) -> None:
    """Reconcile the configured accounts as a standalone process, until SIGINT or SIGTERM.

    One service per account: a startup run, then periodic runs, each published to Redis
    and logged here. An account whose lease another process holds is standby here until
    that process dies (docs/configuration.md, runtime_name and lease_seconds). The broker and the local book of each account come from factories
    named by import path (`package.module:function`, called with the account id).
    With --metrics-port, Prometheus can scrape the runs, breaks and health of every
    account from /metrics (docs/operations.md lists the metrics), and /healthz answers 200
    once every account's startup run has finished, 503 while starting or stopping or when
    a component stopped.

    \b
    Examples:
      reconciliation run --config docs/example-config.toml
      reconciliation run --config prod.toml --check        # validate, start nothing
      REDIS_URL=redis://redis:6379/0 reconciliation run --config prod.toml
      reconciliation run --config prod.toml --metrics-port 9108
      reconciliation run --config prod.toml --state-dir /var/lib/reconciliation
      reconciliation run --config prod.toml --metrics-port 9108 --name edge-1
      reconciliation run --config prod.toml --log-format json --log-level warning
      reconciliation run --config prod.toml --cluster --redis-url redis://node-1:7000
      reconciliation run --config prod.toml --name eu-1    # and --name eu-2 elsewhere: a standby
    """
    configure_logging(
        verbose, logging.getLevelNamesMapping()[log_level.upper()], debug_sdk=debug_sdk, log_format=log_format
    )
    _import_from_the_working_directory()
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise CommandError(*(f"{config_path}: {problem}" for problem in exc.problems), exit_code=ExitCode.USAGE) from exc
    config = _overridden(config, state_dir, runtime_name)
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
    with redis_errors(
        "redis_url", unreachable=" (a cluster client learns the cluster's slots at start: start again once it answers)"
    ):
        client = client_for(url, cluster=cluster)
    server = None
    readiness = Readiness()
    try:
        if metrics is not None and metrics_port is not None:
            server = _serve_metrics(metrics.registry, metrics_host, metrics_port, readiness)
        problem = answers(client)
        if problem is not None:
            logger.warning(
                "No Redis answers at %s (%s): starting anyway; the accounts are reconciled without a lease "
                "(nothing is corrected) and their runs are queued (up to outbox_max_runs, %s) and published, "
                "in order, when it answers",
                redacted(url),
                problem,
                "journaled in the state directory"
                if config.accounts[0].config.state_dir
                else "in memory only: give --state-dir so that a crash loses none",
            )
        name = config.runtime_name or UNNAMED_RUNTIME_LABEL
        asyncio.run(run_until_stopped(config, client, metrics=metrics, name=name, readiness=readiness))
    except StartError as exc:
        raise CommandError(str(exc), exit_code=ExitCode.START_FAILED) from exc
    finally:
        if server is not None:
            server.close()
        client.close()


def _overridden(config: RunnerConfig, state_dir: str | None, runtime_name: str | None) -> RunnerConfig:
    """`config` with what `--state-dir` and `--name` say instead of the file.

    Raises:
        CommandError: either is not usable (exit code 2).
    """
    if state_dir is not None:
        try:
            accounts = tuple(
                attrs.evolve(spec, config=attrs.evolve(spec.config, state_dir=state_dir)) for spec in config.accounts
            )
        except (TypeError, ValueError) as exc:
            msg = f"--state-dir: {exc}"
            raise CommandError(msg, exit_code=ExitCode.USAGE) from exc
        config = attrs.evolve(config, accounts=accounts)
    if runtime_name is not None:
        try:
            config = attrs.evolve(config, runtime_name=check_runtime_name(runtime_name))
        except ValueError as exc:
            msg = f"--name: {exc}"
            raise CommandError(msg, exit_code=ExitCode.USAGE) from exc
    return config


def _import_from_the_working_directory() -> None:
    """Let `module:factory` name a module of the current directory, as `python -m` would.

    The `reconciliation` script's own directory, not the current one, starts `sys.path`.
    """
    here = str(Path.cwd())
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)


def _run_metrics() -> ReconciliationMetrics:
    """The metrics of `run`, on a registry of their own beside the process's."""
    try:
        from reconciliation.metrics import ReconciliationMetrics  # noqa: PLC0415 - the optional metrics extra
    except ImportError as exc:
        msg = f"--metrics-port: {exc}"
        raise CommandError(msg, exit_code=ExitCode.USAGE) from exc
    from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector  # noqa: PLC0415

    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    return ReconciliationMetrics(registry)


def _serve_metrics(registry: CollectorRegistry, host: str, port: int, readiness: Readiness) -> MetricsServer:
    """/metrics and /healthz served on host:port (the metrics extra is there: `_run_metrics` imported it)."""
    from reconciliation.metrics import serve_metrics  # noqa: PLC0415 - the optional metrics extra

    try:
        return serve_metrics(registry, port=port, host=host, healthz=readiness)
    except OSError as exc:
        msg = f"--metrics-host/--metrics-port: cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise CommandError(msg, exit_code=ExitCode.START_FAILED) from exc
