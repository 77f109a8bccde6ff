"""The schema and the queries both audit backends share, and the store built on them.

One schema for SQLite and PostgreSQL: exact decimals as TEXT (a NUMERIC column would
lose a Decimal's exponent), times as fixed-width ISO 8601 UTC TEXT (so text order is
time order), UUIDs as TEXT. A backend only supplies transactions and its lock.
"""

from __future__ import annotations

import abc
import datetime as dt
import json
import logging
import threading
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from reconciliation._domain.breaks import BreakState
from reconciliation._domain.correction import Correction, CorrectionEvent, CorrectionStatus
from reconciliation._domain.models import (
    AssetType,
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    NettedSymbol,
)
from reconciliation.audit._errors import AuditSchemaError
from reconciliation.audit._records import BreakSighting, RecordedDiscrepancy, RunRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence
    from contextlib import AbstractContextManager

    from reconciliation._domain.ageing import AgeingUpdate
    from reconciliation._domain.models import ReconciliationResult

    Execute = Callable[[str, Sequence[object]], list[tuple[Any, ...]]]
    """Run one statement (``?`` placeholders) in the current transaction; its rows, if any."""

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqlAuditStore", "to_text"]

logger = logging.getLogger(__name__)

Row = tuple[Any, ...]

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE runs (
                run_id TEXT PRIMARY KEY,
                account_id TEXT NOT NULL,
                run_at TEXT NOT NULL,
                status TEXT NOT NULL,
                error TEXT,
                positions_checked INTEGER NOT NULL,
                duration_ms DOUBLE PRECISION NOT NULL,
                context TEXT NOT NULL,
                netted TEXT NOT NULL,
                discrepancy_count INTEGER NOT NULL
            )""",
            "CREATE INDEX runs_by_account_time ON runs (account_id, run_at)",
            """CREATE TABLE discrepancies (
                run_id TEXT NOT NULL REFERENCES runs (run_id),
                ordinal INTEGER NOT NULL,
                account_id TEXT NOT NULL,
                discrepancy_type TEXT NOT NULL,
                symbol TEXT,
                severity TEXT NOT NULL,
                aged_severity TEXT NOT NULL,
                local_value TEXT,
                broker_value TEXT,
                observed_at TEXT NOT NULL,
                break_id TEXT NOT NULL,
                first_seen TEXT NOT NULL,
                consecutive_runs INTEGER NOT NULL,
                PRIMARY KEY (run_id, ordinal)
            )""",
            """CREATE TABLE breaks (
                break_id TEXT PRIMARY KEY,
                account_id TEXT NOT NULL,
                discrepancy_type TEXT NOT NULL,
                symbol TEXT,
                severity TEXT NOT NULL,
                local_value TEXT,
                broker_value TEXT,
                first_seen TEXT NOT NULL,
                last_seen TEXT NOT NULL,
                consecutive_runs INTEGER NOT NULL,
                first_run_id TEXT NOT NULL,
                last_run_id TEXT NOT NULL,
                halted_run_id TEXT,
                resolved_at TEXT,
                resolved_run_id TEXT
            )""",
            """CREATE UNIQUE INDEX breaks_one_open_per_key
                ON breaks (account_id, discrepancy_type, (COALESCE(symbol, '')))
                WHERE resolved_at IS NULL""",
            "CREATE INDEX breaks_by_account_seen ON breaks (account_id, last_seen)",
        ),
    ),
    (
        2,
        (
            # Positions are identified by symbol and asset type, per-currency cash breaks
            # by their currency. Every position recorded before had the default asset
            # type, stock, as far as this store can tell: an open break of another asset
            # type is resolved by its next sighting and opened again under its own key.
            "ALTER TABLE discrepancies ADD COLUMN asset_type TEXT",
            "ALTER TABLE discrepancies ADD COLUMN currency TEXT",
            "ALTER TABLE breaks ADD COLUMN asset_type TEXT",
            "ALTER TABLE breaks ADD COLUMN currency TEXT",
            "UPDATE discrepancies SET asset_type = 'stock' WHERE symbol IS NOT NULL",
            "UPDATE breaks SET asset_type = 'stock' WHERE symbol IS NOT NULL",
            "DROP INDEX breaks_one_open_per_key",
            """CREATE UNIQUE INDEX breaks_one_open_per_key
                ON breaks (account_id, discrepancy_type, (COALESCE(symbol, '')),
                           (COALESCE(asset_type, '')), (COALESCE(currency, '')))
                WHERE resolved_at IS NULL""",
        ),
    ),
    (
        3,
        (
            # Every step of every correction (proposed, confirmed, applied, ...): what the
            # change was, when it happened (event_at) and who made it (actor).
            """CREATE TABLE corrections (
                event_id TEXT PRIMARY KEY,
                correction_id TEXT NOT NULL,
                status TEXT NOT NULL,
                mode TEXT NOT NULL,
                account_id TEXT NOT NULL,
                break_id TEXT NOT NULL,
                run_id TEXT NOT NULL,
                discrepancy_type TEXT NOT NULL,
                symbol TEXT,
                asset_type TEXT,
                currency TEXT,
                local_value TEXT,
                broker_value TEXT,
                quantity TEXT,
                price TEXT,
                avg_cost TEXT,
                cash TEXT,
                notional TEXT,
                consecutive_runs INTEGER NOT NULL,
                confirm_after_runs INTEGER NOT NULL,
                severity TEXT NOT NULL,
                reason TEXT,
                verification_run_id TEXT,
                observed_at TEXT NOT NULL,
                event_at TEXT NOT NULL,
                actor TEXT NOT NULL
            )""",
            "CREATE INDEX corrections_by_account_time ON corrections (account_id, event_at)",
            "CREATE INDEX corrections_by_break ON corrections (break_id)",
        ),
    ),
)
"""Ordered schema versions; each is applied once, in one transaction, and recorded."""

SCHEMA_VERSION = MIGRATIONS[-1][0]

_CREATE_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
)

_INSERT_RUN = """
    INSERT INTO runs (run_id, account_id, run_at, status, error, positions_checked, duration_ms,
                      context, netted, discrepancy_count)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (run_id) DO NOTHING"""

_INSERT_DISCREPANCY = """
    INSERT INTO discrepancies (run_id, ordinal, account_id, discrepancy_type, symbol, severity,
                               aged_severity, local_value, broker_value, observed_at, break_id,
                               first_seen, consecutive_runs, asset_type, currency)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (run_id, ordinal) DO NOTHING"""

_BREAK_COLUMNS = (
    "break_id",
    "account_id",
    "discrepancy_type",
    "symbol",
    "severity",
    "local_value",
    "broker_value",
    "first_seen",
    "last_seen",
    "consecutive_runs",
    "first_run_id",
    "last_run_id",
    "halted_run_id",
    "resolved_at",
    "resolved_run_id",
    "asset_type",
    "currency",
)

_UPSERT_BREAK = f"""
    INSERT INTO breaks ({", ".join(_BREAK_COLUMNS)})
    VALUES ({", ".join("?" for _ in _BREAK_COLUMNS)})
    ON CONFLICT (break_id) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in _BREAK_COLUMNS[1:])}"""  # noqa: S608

_SELECT_BREAKS = f"SELECT {', '.join(_BREAK_COLUMNS)} FROM breaks"  # noqa: S608

_BREAK_ORDER = " ORDER BY first_seen, discrepancy_type, symbol, asset_type, currency, break_id"

_RUN_COLUMNS = (
    "run_id, account_id, run_at, error, positions_checked, duration_ms, context, netted, discrepancy_count"
)

_DISCREPANCY_COLUMNS = (
    "run_id, account_id, discrepancy_type, symbol, severity, aged_severity, local_value, "
    "broker_value, observed_at, break_id, first_seen, consecutive_runs, asset_type, currency"
)


_CORRECTION_COLUMNS = (
    "event_id",
    "correction_id",
    "status",
    "mode",
    "account_id",
    "break_id",
    "run_id",
    "discrepancy_type",
    "symbol",
    "asset_type",
    "currency",
    "local_value",
    "broker_value",
    "quantity",
    "price",
    "avg_cost",
    "cash",
    "notional",
    "consecutive_runs",
    "confirm_after_runs",
    "severity",
    "reason",
    "verification_run_id",
    "observed_at",
    "event_at",
    "actor",
)

_INSERT_CORRECTION = f"""
    INSERT INTO corrections ({", ".join(_CORRECTION_COLUMNS)})
    VALUES ({", ".join("?" for _ in _CORRECTION_COLUMNS)})
    ON CONFLICT (event_id) DO NOTHING"""  # noqa: S608

_SELECT_CORRECTIONS = f"SELECT {', '.join(_CORRECTION_COLUMNS)} FROM corrections"  # noqa: S608

_NEWEST_CORRECTIONS_FIRST = (
    "ORDER BY event_at DESC, CASE status "
    + " ".join(f"WHEN '{status.value}' THEN {rank}" for rank, status in enumerate(CorrectionStatus))
    + " END DESC, event_id DESC"
)
"""Steps made at one moment (proposed and confirmed by one run) in the order of a correction's life."""


def to_text(value: dt.datetime) -> str:
    """Fixed-width UTC ISO 8601, so that comparing the text compares the times.

    Raises:
        ValueError: `value` is naive.
    """
    if value.utcoffset() is None:
        msg = f"a timezone-aware datetime is needed, not the naive {value.isoformat()}"
        raise ValueError(msg)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _optional_time_text(value: dt.datetime | None) -> str | None:
    return None if value is None else to_text(value)


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def _optional_time(text: str | None) -> dt.datetime | None:
    return None if text is None else _time(text)


def _decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _asset_type_text(value: AssetType | None) -> str | None:
    return None if value is None else value.value


def _asset_type(text: str | None) -> AssetType | None:
    return None if text is None else AssetType(text)


def _netted_text(netted: Sequence[NettedSymbol]) -> str:
    return json.dumps(
        [
            {"side": n.side, "symbol": n.symbol, "entries": n.entries, "asset_type": n.asset_type.value}
            for n in netted
        ]
    )


def _optional_uuid(text: str | None) -> UUID | None:
    return None if text is None else UUID(text)


def _optional_str(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def _break_row(state: BreakState) -> tuple[object, ...]:
    return (
        str(state.break_id),
        state.account_id,
        state.type.value,
        state.symbol,
        state.severity.value,
        _decimal_text(state.local_value),
        _decimal_text(state.broker_value),
        to_text(state.first_seen),
        to_text(state.last_seen),
        state.consecutive_runs,
        str(state.first_run_id),
        str(state.last_run_id),
        _optional_str(state.halted_run_id),
        _optional_time_text(state.resolved_at),
        _optional_str(state.resolved_run_id),
        _asset_type_text(state.asset_type),
        state.currency,
    )


def _break(row: Row) -> BreakState:
    return BreakState(
        break_id=UUID(row[0]),
        account_id=row[1],
        type=DiscrepancyType(row[2]),
        symbol=row[3],
        severity=DiscrepancySeverity(row[4]),
        local_value=_decimal(row[5]),
        broker_value=_decimal(row[6]),
        first_seen=_time(row[7]),
        last_seen=_time(row[8]),
        consecutive_runs=row[9],
        first_run_id=UUID(row[10]),
        last_run_id=UUID(row[11]),
        halted_run_id=_optional_uuid(row[12]),
        resolved_at=_optional_time(row[13]),
        resolved_run_id=_optional_uuid(row[14]),
        asset_type=_asset_type(row[15]),
        currency=row[16],
    )


def _recorded_discrepancy(row: Row) -> RecordedDiscrepancy:
    return RecordedDiscrepancy(
        discrepancy=Discrepancy(
            type=DiscrepancyType(row[2]),
            severity=DiscrepancySeverity(row[4]),
            symbol=row[3],
            local_value=_decimal(row[6]),
            broker_value=_decimal(row[7]),
            timestamp=_time(row[8]),
            account_id=row[1],
            asset_type=_asset_type(row[12]),
            currency=row[13],
        ),
        severity=DiscrepancySeverity(row[5]),
        break_id=UUID(row[9]),
        first_seen=_time(row[10]),
        consecutive_runs=row[11],
    )


def _run(row: Row, discrepancies: Sequence[RecordedDiscrepancy]) -> RunRecord:
    return RunRecord(
        run_id=UUID(row[0]),
        account_id=row[1],
        timestamp=_time(row[2]),
        error=row[3],
        positions_checked=row[4],
        duration_ms=row[5],
        context=json.loads(row[6]),
        netted=tuple(NettedSymbol(**entry) for entry in json.loads(row[7])),
        discrepancies=tuple(discrepancies),
        discrepancy_count=row[8],
    )


def _correction_row(event: CorrectionEvent) -> tuple[object, ...]:
    correction = event.correction
    return (
        str(event.event_id),
        str(correction.correction_id),
        event.status.value,
        event.mode,
        correction.account_id,
        str(correction.break_id),
        str(correction.run_id),
        correction.type.value,
        correction.symbol,
        _asset_type_text(correction.asset_type),
        correction.currency,
        _decimal_text(correction.local_value),
        _decimal_text(correction.broker_value),
        _decimal_text(correction.quantity),
        _decimal_text(correction.price),
        _decimal_text(correction.avg_cost),
        _decimal_text(correction.cash),
        _decimal_text(correction.notional),
        correction.consecutive_runs,
        event.confirm_after_runs,
        event.severity.value,
        event.reason,
        _optional_str(event.verification_run_id),
        to_text(correction.observed_at),
        to_text(event.timestamp),
        event.actor,
    )


def _correction_event(row: Row) -> CorrectionEvent:
    correction = Correction(
        break_id=UUID(row[5]),
        run_id=UUID(row[6]),
        account_id=row[4],
        type=DiscrepancyType(row[7]),
        symbol=row[8],
        asset_type=_asset_type(row[9]),
        currency=row[10],
        local_value=_decimal(row[11]),
        broker_value=_decimal(row[12]),
        observed_at=_time(row[23]),
        consecutive_runs=row[18],
        quantity=_decimal(row[13]),
        price=_decimal(row[14]),
        avg_cost=_decimal(row[15]),
        cash=_decimal(row[16]),
        notional=_decimal(row[17]),
    )
    return CorrectionEvent(
        status=CorrectionStatus(row[2]),
        correction=correction,
        mode=row[3],
        timestamp=_time(row[24]),
        actor=row[25],
        confirm_after_runs=row[19],
        severity=DiscrepancySeverity(row[20]),
        reason=row[21],
        verification_run_id=_optional_uuid(row[22]),
    )


def _in(column: str, values: Collection[object]) -> str:
    return f"{column} IN ({', '.join('?' for _ in values)})"


class SqlAuditStore(abc.ABC):
    """An `AuditStore` over SQL; a subclass supplies the connection and its transactions.

    Safe to share between threads: one call at a time runs on the one connection.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @abc.abstractmethod
    def _transaction(self, *, write: bool) -> AbstractContextManager[Execute]:
        """One transaction, committed when the block ends, rolled back if it raises.

        Raises:
            AuditStoreUnavailableError: the database could not be reached or stayed locked.
            AuditStoreError: any other database error.
        """

    @abc.abstractmethod
    def _lock_schema(self, execute: Execute) -> None:
        """Hold, until the transaction ends, a lock that one migrating process owns."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def migrate(self) -> None:
        """Bring the schema up to date; a no-op when it is. Safe from several processes.

        Raises:
            AuditSchemaError: the database has a newer schema than this code knows.
        """
        with self._transaction(write=True) as execute:
            self._lock_schema(execute)
            execute(_CREATE_VERSION_TABLE, ())
            current = execute("SELECT MAX(version) FROM schema_version", ())[0][0] or 0
            if current > SCHEMA_VERSION:
                msg = (
                    f"the audit database has schema version {current}; this code knows up to {SCHEMA_VERSION}"
                )
                raise AuditSchemaError(msg)
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    execute(statement, ())
                execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    (version, to_text(dt.datetime.now(dt.UTC))),
                )
                logger.info("Audit schema migrated to version %d", version)

    def schema_version(self) -> int:
        """The schema version of the database; 0 before the first `migrate`."""
        with self._transaction(write=True) as execute:
            execute(_CREATE_VERSION_TABLE, ())
            return int(execute("SELECT MAX(version) FROM schema_version", ())[0][0] or 0)

    def record_run(self, result: ReconciliationResult, aged: AgeingUpdate) -> None:
        """Write the run, its discrepancies and the break states after it, atomically.

        Recording the same run again changes nothing.

        Raises:
            ValueError: `aged` is not this run's update, or misses one of its discrepancies.
        """
        if aged.run_id != result.run_id:
            msg = f"the ageing update is for run {aged.run_id}, not {result.run_id}"
            raise ValueError(msg)
        run_id = str(result.run_id)
        discrepancy_rows = []
        for ordinal, discrepancy in enumerate(result.discrepancies):
            try:
                state = aged.state_of(discrepancy)
            except KeyError:
                msg = f"the ageing update of run {run_id} has no break for {discrepancy.key}"
                raise ValueError(msg) from None
            discrepancy_rows.append(
                (
                    run_id,
                    ordinal,
                    discrepancy.account_id,
                    discrepancy.type.value,
                    discrepancy.symbol,
                    discrepancy.severity.value,
                    state.severity.value,
                    _decimal_text(discrepancy.local_value),
                    _decimal_text(discrepancy.broker_value),
                    to_text(discrepancy.timestamp),
                    str(state.break_id),
                    to_text(state.first_seen),
                    state.consecutive_runs,
                    _asset_type_text(discrepancy.asset_type),
                    discrepancy.currency,
                )
            )
        run_row = (
            run_id,
            result.account_id,
            to_text(result.timestamp),
            result.status,
            result.error,
            result.positions_checked,
            result.duration_ms,
            json.dumps(dict(result.context), sort_keys=True),
            _netted_text(result.netted),
            len(result.discrepancies),
        )
        with self._transaction(write=True) as execute:
            execute(_INSERT_RUN, run_row)
            for row in discrepancy_rows:
                execute(_INSERT_DISCREPANCY, row)
            for state in (*aged.resolved, *aged.breaks):
                execute(_UPSERT_BREAK, _break_row(state))

    def load_open_breaks(self, account_id: str) -> list[BreakState]:
        with self._transaction(write=False) as execute:
            rows = execute(
                f"{_SELECT_BREAKS} WHERE account_id = ? AND resolved_at IS NULL{_BREAK_ORDER}", (account_id,)
            )
        return [_break(row) for row in rows]

    def list_breaks(
        self,
        account_id: str,
        *,
        open_only: bool,
        types: Collection[DiscrepancyType] | None = None,
        severities: Collection[DiscrepancySeverity] | None = None,
        since: dt.datetime | None = None,
    ) -> list[BreakState]:
        conditions = ["account_id = ?"]
        params: list[object] = [account_id]
        if open_only:
            conditions.append("resolved_at IS NULL")
        if types:
            conditions.append(_in("discrepancy_type", types))
            params.extend(t.value for t in types)
        if severities:
            conditions.append(_in("severity", severities))
            params.extend(s.value for s in severities)
        if since is not None:
            conditions.append("COALESCE(resolved_at, last_seen) >= ?")
            params.append(to_text(since))
        with self._transaction(write=False) as execute:
            rows = execute(f"{_SELECT_BREAKS} WHERE {' AND '.join(conditions)}{_BREAK_ORDER}", params)
        return [_break(row) for row in rows]

    def list_runs(
        self,
        account_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            msg = f"limit must be a whole number of at least 1, got {limit!r}"
            raise ValueError(msg)
        conditions = ["account_id = ?"]
        params: list[object] = [account_id]
        if since is not None:
            conditions.append("run_at >= ?")
            params.append(to_text(since))
        if until is not None:
            conditions.append("run_at < ?")
            params.append(to_text(until))
        selected = f"SELECT run_id FROM runs WHERE {' AND '.join(conditions)} ORDER BY run_at DESC, run_id DESC LIMIT ?"  # noqa: S608
        params.append(limit)
        with self._transaction(write=False) as execute:
            runs = execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id IN ({selected}) ORDER BY run_at DESC, run_id DESC",  # noqa: S608
                params,
            )
            found = execute(
                f"SELECT {_DISCREPANCY_COLUMNS} FROM discrepancies WHERE run_id IN ({selected}) ORDER BY run_id, ordinal",  # noqa: S608
                params,
            )
        by_run: dict[str, list[RecordedDiscrepancy]] = {}
        for row in found:
            by_run.setdefault(row[0], []).append(_recorded_discrepancy(row))
        return [_run(row, by_run.get(row[0], ())) for row in runs]

    def list_accounts(self) -> list[str]:
        """Every account with a recorded run or break, in order."""
        with self._transaction(write=False) as execute:
            rows = execute(
                "SELECT account_id FROM runs UNION SELECT account_id FROM breaks ORDER BY account_id", ()
            )
        return [row[0] for row in rows]

    def find_break(self, break_id: UUID) -> BreakState | None:
        """The break with this id, open or resolved; None if there is none."""
        with self._transaction(write=False) as execute:
            rows = execute(f"{_SELECT_BREAKS} WHERE break_id = ?", (str(break_id),))
        return _break(rows[0]) if rows else None

    def break_history(self, break_id: UUID, *, limit: int = 1000) -> list[BreakSighting]:
        """The runs that saw the break, oldest first: the latest `limit` of them."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            msg = f"limit must be a whole number of at least 1, got {limit!r}"
            raise ValueError(msg)
        with self._transaction(write=False) as execute:
            rows = execute(
                "SELECT run_id, observed_at, aged_severity, local_value, broker_value, consecutive_runs "
                "FROM discrepancies WHERE break_id = ? ORDER BY consecutive_runs DESC LIMIT ?",
                (str(break_id), limit),
            )
        return [
            BreakSighting(
                run_id=UUID(row[0]),
                seen_at=_time(row[1]),
                severity=DiscrepancySeverity(row[2]),
                local_value=_decimal(row[3]),
                broker_value=_decimal(row[4]),
                consecutive_runs=row[5],
            )
            for row in reversed(rows)
        ]

    def record_correction(self, event: CorrectionEvent) -> None:
        """Write one step of a correction; recording the same step again changes nothing."""
        with self._transaction(write=True) as execute:
            execute(_INSERT_CORRECTION, _correction_row(event))

    def list_corrections(
        self,
        account_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 100,
        types: Collection[DiscrepancyType] | None = None,
    ) -> list[CorrectionEvent]:
        """The account's correction events in [since, until), newest first, at most `limit`."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            msg = f"limit must be a whole number of at least 1, got {limit!r}"
            raise ValueError(msg)
        conditions = ["account_id = ?"]
        params: list[object] = [account_id]
        if since is not None:
            conditions.append("event_at >= ?")
            params.append(to_text(since))
        if until is not None:
            conditions.append("event_at < ?")
            params.append(to_text(until))
        if types:
            conditions.append(_in("discrepancy_type", types))
            params.extend(t.value for t in types)
        params.append(limit)
        with self._transaction(write=False) as execute:
            rows = execute(
                f"{_SELECT_CORRECTIONS} WHERE {' AND '.join(conditions)} {_NEWEST_CORRECTIONS_FIRST} LIMIT ?",
                params,
            )
        return [_correction_event(row) for row in rows]

    def load_blocked_breaks(self, account_id: str) -> list[UUID]:
        """The account's open breaks that a correction did not resolve: never to be corrected
        again automatically (read at start, with the open breaks)."""
        with self._transaction(write=False) as execute:
            rows = execute(
                "SELECT DISTINCT c.break_id FROM corrections c JOIN breaks b ON b.break_id = c.break_id "
                "WHERE c.account_id = ? AND c.status = ? AND b.resolved_at IS NULL ORDER BY c.break_id",
                (account_id, CorrectionStatus.UNRESOLVED.value),
            )
        return [UUID(row[0]) for row in rows]
