"""`reconciliation check`: one reconciliation of two position files, printed (and published).

The two files are read and checked whole before anything is compared (`reconciliation.files`);
a bad row ends the command with one line naming it. Without `--redis-url` the files are
compared in-process, exactly as a service compares (`compare`); with it, a
`ReconciliationService` over the two statements runs the one on-demand reconciliation
(requested by `check`) and publishes it like any other run.

The optional TOML file holds any `ReconciliationConfig` option (as an [[accounts]] table of
`reconciliation run` does, `account_id` included), in [local] and [broker] how each file is
read, and in [limits] how large each may be (`StatementLimits`); see docs/configuration.md.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs

from reconciliation._cli.runner import ConfigError, config_from_table, read_toml
from reconciliation._cli.spreadsheet import spreadsheet_cell
from reconciliation._domain.compare import compare
from reconciliation._domain.error_text import unknown_key
from reconciliation._domain.models import ReconciliationConfig, ReconciliationResult, Snapshot
from reconciliation._wire.payloads import decimal_text, discrepancy_payload, result_payload
from reconciliation.files import (
    BalanceColumns,
    Balances,
    ColumnMap,
    StatementBook,
    StatementBroker,
    StatementLimits,
)

if TYPE_CHECKING:
    import datetime as dt

    import redis

__all__ = [
    "DEFAULT_ACCOUNT",
    "CheckConfig",
    "PublishError",
    "SideSpec",
    "csv_document",
    "figures",
    "json_document",
    "load_check_config",
    "read_statements",
    "reconcile_once",
    "sides_with_balances",
]

DEFAULT_ACCOUNT = "statement"
"""The account id of a check whose configuration names none."""

Side = Literal["local", "broker"]
_SIDES: tuple[Side, Side] = ("local", "broker")
_COLUMN_KEYS = tuple(field.name for field in attrs.fields(ColumnMap))
_OPTIONAL_COLUMNS = ("avg_cost", "asset_type", "market_value")
"""Columns a file may lack: `false` in the TOML file says so."""
_SIDE_KEYS = (*_COLUMN_KEYS, "balances", "cash", "total_equity", "balance_columns")
_Statement = TypeVar("_Statement", StatementBook, StatementBroker)
_CSV_FIELDS = ("type", "severity", "symbol", "asset_type", "currency", "local_value", "broker_value")


class PublishError(Exception):
    """The run could not be handed to Redis; the message says why."""


@attrs.frozen
class SideSpec:
    """How one side's files are read: its columns, and its balances (a file, or figures)."""

    columns: ColumnMap = attrs.Factory(ColumnMap)
    balances: Balances | Path | None = None
    """None: not given (both sides' balances are then taken as 0 and only positions compared)."""
    balance_columns: BalanceColumns = attrs.Factory(BalanceColumns)


@attrs.frozen
class CheckConfig:
    config: ReconciliationConfig
    local: SideSpec = attrs.Factory(SideSpec)
    broker: SideSpec = attrs.Factory(SideSpec)
    limits: StatementLimits = attrs.Factory(StatementLimits)
    """How large each position file may be: the [limits] table."""


def load_check_config(path: Path | None) -> CheckConfig:
    """The check's options from its TOML file; the defaults without one.

    Raises:
        ConfigError: the file is unreadable or has mistakes, each naming its key.
    """
    if path is None:
        return CheckConfig(ReconciliationConfig(DEFAULT_ACCOUNT))
    document = read_toml(path)
    problems: list[str] = []
    options = {"account_id": DEFAULT_ACCOUNT, **document}
    config: ReconciliationConfig | None = None
    try:
        config = config_from_table(options, where="the top level", ignore=(*_SIDES, "limits"))
    except ConfigError as exc:
        problems.extend(exc.problems)
    limits = StatementLimits()
    try:
        limits = _limits(document.get("limits", {}))
    except ConfigError as exc:
        problems.extend(exc.problems)
    sides: dict[str, SideSpec] = {}
    for side in _SIDES:
        try:
            sides[side] = _side(document.get(side, {}), side, path.parent)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems or config is None:
        raise ConfigError(*problems)
    return CheckConfig(config, sides["local"], sides["broker"], limits)


def _limits(table: Any) -> StatementLimits:
    known = tuple(field.name for field in attrs.fields(StatementLimits))
    values = _table(table, "limits")
    unknown = [f"limits.{key}: {unknown_key(key, known)}" for key in values if key not in known]
    if unknown:
        raise ConfigError(*unknown)
    try:
        return StatementLimits(**values)
    except (TypeError, ValueError) as exc:
        msg = f"limits.{getattr(exc, 'field', '')}: {exc}"
        raise ConfigError(msg) from None


def _side(table: Any, side: Side, base: Path) -> SideSpec:
    if not isinstance(table, dict):
        msg = f"{side}: expected a table [{side}], got {table!r}"
        raise ConfigError(msg)
    unknown = [f"{side}.{key}: {unknown_key(key, _SIDE_KEYS)}" for key in table if key not in _SIDE_KEYS]
    if unknown:
        raise ConfigError(*unknown)
    columns: dict[str, Any] = {
        key: None if value is False and key in _OPTIONAL_COLUMNS else value
        for key, value in table.items()
        if key in _COLUMN_KEYS
    }
    try:
        column_map = ColumnMap(**columns)
        balance_columns = BalanceColumns(
            **_table(table.get("balance_columns", {}), f"{side}.balance_columns")
        )
    except (TypeError, ValueError) as exc:
        msg = f"{side}: {exc}"
        raise ConfigError(msg) from None
    return SideSpec(column_map, _balances_of(table, side, base), balance_columns)


def _table(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        msg = f"{key}: expected a table, got {value!r}"
        raise ConfigError(msg)
    return value


def _balances_of(table: dict[str, Any], side: Side, base: Path) -> Balances | Path | None:
    figures = [key for key in ("cash", "total_equity") if key in table]
    if "balances" in table and figures:
        msg = f"{side}: give balances (a file) or cash and total_equity, not both"
        raise ConfigError(msg)
    if "balances" in table:
        if not isinstance(table["balances"], str) or not table["balances"]:
            msg = f"{side}.balances: expected the path of a balances file, got {table['balances']!r}"
            raise ConfigError(msg)
        return base / table["balances"]
    if not figures:
        return None
    return _figures(table.get("cash"), table.get("total_equity"), side)


def _figures(cash: Any, total_equity: Any, where: str) -> Balances:
    if cash is None or total_equity is None:
        msg = f"{where}: give both cash and total_equity"
        raise ConfigError(msg)
    try:
        return Balances(_exact(cash), _exact(total_equity))
    except (TypeError, ValueError) as exc:
        msg = f"{where}: {exc}"
        raise ConfigError(msg) from None


def _exact(value: Any) -> Any:
    """A TOML number as the digits written (a float's shortest text), like the runner's amounts."""
    return repr(value) if isinstance(value, float) else value


def sides_with_balances(
    check: CheckConfig,
    local: Balances | Path | None,
    broker: Balances | Path | None,
) -> CheckConfig:
    """The configuration with the command line's balances (which win), both sides or neither.

    Raises:
        ConfigError: one side has balances and the other none.
    """
    local_spec = attrs.evolve(check.local, balances=local) if local is not None else check.local
    broker_spec = attrs.evolve(check.broker, balances=broker) if broker is not None else check.broker
    if (local_spec.balances is None) != (broker_spec.balances is None):
        missing = "local" if local_spec.balances is None else "broker"
        msg = (
            f"the {missing} side has no balances: give both sides' (--{missing}-balances FILE, or "
            f"--{missing}-cash and --{missing}-equity) or neither (then only positions are compared)"
        )
        raise ConfigError(msg)
    return attrs.evolve(check, local=local_spec, broker=broker_spec)


def figures(cash: str | None, equity: str | None, side: Side) -> Balances | None:
    """The balances given as --SIDE-cash and --SIDE-equity, or None if neither was.

    Raises:
        ConfigError: only one of them, or not an exact number.
    """
    if cash is None and equity is None:
        return None
    if cash is None or equity is None:
        msg = f"give both --{side}-cash and --{side}-equity, or a --{side}-balances file"
        raise ConfigError(msg)
    return _figures(cash, equity, f"--{side}-cash/--{side}-equity")


def read_statements(check: CheckConfig, local: Path, broker: Path) -> tuple[StatementBook, StatementBroker]:
    """Both files read and checked, whole, before anything is compared.

    Raises:
        StatementError: a file is unreadable or has a bad row (named).
    """
    return (
        _statement(StatementBook, check, local, check.local),
        _statement(StatementBroker, check, broker, check.broker),
    )


def _statement(kind: type[_Statement], check: CheckConfig, path: Path, side: SideSpec) -> _Statement:
    return kind(
        check.config.account_id,
        path,
        side.balances or Balances(Decimal(0), Decimal(0)),
        columns=side.columns,
        balance_columns=side.balance_columns,
        limits=check.limits,
    )


def reconcile_once(
    check: CheckConfig,
    book: StatementBook,
    broker: StatementBroker,
    *,
    client: redis.Redis | redis.RedisCluster | None,
    now: dt.datetime,
) -> ReconciliationResult:
    """The one reconciliation: in-process, or through a service publishing to `client`.

    Raises:
        PublishError: with a client, the run was not delivered to Redis.
    """
    if client is not None:
        return asyncio.run(_through_a_service(check.config, book, broker, client))
    started = time.perf_counter()
    account_id = check.config.account_id
    snapshot = Snapshot(
        account_id,
        book.positions,
        book.get_account(account_id),
        broker.positions,
        broker.get_account(account_id),
        now,
    )
    found = compare(snapshot, check.config)
    return ReconciliationResult(
        uuid.uuid4(),
        account_id,
        now,
        found.discrepancies,
        found.positions_checked,
        duration_ms=(time.perf_counter() - started) * 1000,
        context={"trigger": "on_demand", "requested_by": "check"},
        netted=found.netted,
    )


async def _through_a_service(
    config: ReconciliationConfig, book: StatementBook, broker: StatementBroker, client: redis.Redis | redis.RedisCluster
) -> ReconciliationResult:
    from reconciliation._runtime.service import ReconciliationService  # noqa: PLC0415 - only with --redis-url

    service = ReconciliationService(book, broker, client, attrs.evolve(config, enabled=False))
    await service.start()
    try:
        result = await service.reconcile(requested_by="check")
    finally:
        await service.stop()
    health = service.publisher_health()
    if health.delivered_runs < 1:
        reason = health.last_error or "it was still queued when the service stopped"
        msg = f"the run was not published to Redis: {reason}"
        raise PublishError(msg)
    return result


def json_document(result: ReconciliationResult) -> str:
    """The run as its payloads: {"result": ..., "discrepancies": [...]} (docs/payloads.md)."""
    document = {
        "result": result_payload(result),
        "discrepancies": [discrepancy_payload(result, discrepancy) for discrepancy in result.discrepancies],
    }
    return json.dumps(document, indent=2)


def csv_document(result: ReconciliationResult) -> str:
    """One row per break: type, severity, symbol, asset type, currency, both values (exact).

    Every field is quoted, and a cell a spreadsheet would evaluate is neutralised
    (`spreadsheet_cell`: a symbol such as `=HYPERLINK(...)` opens as text)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(_CSV_FIELDS)
    for found in result.discrepancies:
        writer.writerow(
            spreadsheet_cell(cell)
            for cell in (
                found.type.value,
                found.severity.value,
                found.symbol or "",
                found.asset_type.value if found.asset_type else "",
                found.currency or "",
                decimal_text(found.local_value) or "",
                decimal_text(found.broker_value) or "",
            )
        )
    return text.getvalue()
