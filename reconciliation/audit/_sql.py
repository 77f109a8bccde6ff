"""The schema and the queries both audit backends share, and the store built on them.

One schema for SQLite and PostgreSQL: exact decimals as TEXT (a NUMERIC column would
lose a Decimal's exponent), times as fixed-width ISO 8601 UTC TEXT (so text order is
time order), UUIDs as TEXT. Each table's columns are listed once (`_Table`); they make
its INSERT and its SELECT, and rows are read back by column name. A backend only
supplies transactions and its lock.
"""

from __future__ import annotations

import abc
import datetime as dt
import enum
import json
import logging
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from uuid import UUID

import attrs

from reconciliation._domain.breaks import BreakState
from reconciliation._domain.correction import Correction, CorrectionEvent, CorrectionStatus
from reconciliation._domain.fills import Explanation
from reconciliation._domain.models import (
    AssetType,
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    NettedSymbol,
)
from reconciliation._wire.payloads import (
    encode,
    explanation_from,
    explanation_payload,
    fill_from,
    fill_payload,
)
from reconciliation.audit._errors import AuditSchemaError
from reconciliation.audit._records import BreakSighting, RecordedDiscrepancy, RunRecord

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from contextlib import AbstractContextManager

    from reconciliation._domain.ageing import AgeingUpdate
    from reconciliation._domain.models import ReconciliationResult

    class Row(Protocol):
        """A row read by column name: a `sqlite3.Row` or a psycopg `dict_row`."""

        def __getitem__(self, column: str, /) -> Any: ...

    Execute = Callable[[str, Sequence[object]], Sequence[Row]]
    """Run one statement (``?`` placeholders) in the current transaction; its rows, if any."""

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqlAuditStore", "to_text"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T", bound=attrs.AttrsInstance)

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
    (
        4,
        (
            # Why a run's broker answer was implausible (PlausibilityPolicy); NULL: it was not.
            "ALTER TABLE runs ADD COLUMN suspect TEXT",
        ),
    ),
    (
        5,
        (
            # The fills behind a position break, as its payload carries them (JSON); NULL: none read.
            "ALTER TABLE discrepancies ADD COLUMN explanation TEXT",
            # The broker's fills a correction books (JSON); NULL: a synthetic fill or no fill.
            "ALTER TABLE corrections ADD COLUMN fills TEXT",
        ),
    ),
)
"""Ordered schema versions; each is applied once, in one transaction, and recorded."""


SCHEMA_VERSION = MIGRATIONS[-1][0]

_CREATE_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
)


def to_text(value: dt.datetime) -> str:
    """Fixed-width UTC ISO 8601, so that comparing the text compares the times.

    Raises:
        ValueError: `value` is naive.
    """
    if value.utcoffset() is None:
        msg = f"a timezone-aware datetime is needed, not the naive {value.isoformat()}"
        raise ValueError(msg)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


_AS_IS = frozenset({str, int, float})


def _stored(value: object) -> object:  # noqa: PLR0911 - one answer per kind of value
    """`value` as its column holds it: a time as `to_text`, an enum as its value, a UUID or
    a decimal as its text, an explanation or fills as their payloads' JSON; None, text and
    numbers as they are."""
    if value is None or type(value) in _AS_IS:
        return value
    if isinstance(value, dt.datetime):
        return to_text(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, Explanation):
        return encode(explanation_payload(value))
    if isinstance(value, tuple):
        return json.dumps([fill_payload(fill) for fill in value], sort_keys=True) if value else None
    return value


def _insert_sql(table: _Table) -> str:
    values = ", ".join("?" for _ in table.columns)
    if table.update:
        changed = ", ".join(f"{c} = excluded.{c}" for c in table.columns if c not in table.key)
        on_conflict = f"DO UPDATE SET {changed}"
    else:
        on_conflict = "DO NOTHING"
    return (
        f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({values}) "  # noqa: S608
        f"ON CONFLICT ({', '.join(table.key)}) {on_conflict}"
    )


@attrs.frozen
class _Table:
    """A table's columns, each with how its stored text or number is read back (NULL is None).

    A row is written from a mapping that holds a value under each column's name (see
    `_stored`) and read back as such a mapping.
    """

    name: str
    key: tuple[str, ...]
    """The primary key: a row already there under it is kept, or updated if `update`."""
    columns: Mapping[str, Callable[[Any], object]]
    update: bool = False
    _insert: str = attrs.field(init=False, default=attrs.Factory(_insert_sql, takes_self=True))

    def insert(self, execute: Execute, values: Mapping[str, object]) -> None:
        execute(self._insert, tuple(_stored(values[column]) for column in self.columns))

    def select(self, execute: Execute, clause: str, params: Sequence[object]) -> list[dict[str, Any]]:
        """The rows `clause` (WHERE, ORDER BY, LIMIT) selects, each read back."""
        rows = execute(f"SELECT {', '.join(self.columns)} FROM {self.name} {clause}", params)  # noqa: S608
        return [
            {column: None if row[column] is None else read(row[column]) for column, read in self.columns.items()}
            for row in rows
        ]


_RUNS = _Table(
    "runs",
    key=("run_id",),
    columns={
        "run_id": UUID,
        "account_id": str,
        "run_at": _time,
        "status": str,
        "error": str,
        "positions_checked": int,
        "duration_ms": float,
        "context": json.loads,
        "netted": json.loads,
        "discrepancy_count": int,
        "suspect": str,
    },
)

_DISCREPANCIES = _Table(
    "discrepancies",
    key=("run_id", "ordinal"),
    columns={
        "run_id": UUID,
        "ordinal": int,
        "account_id": str,
        "discrepancy_type": DiscrepancyType,
        "symbol": str,
        "severity": DiscrepancySeverity,
        "aged_severity": DiscrepancySeverity,
        "local_value": Decimal,
        "broker_value": Decimal,
        "observed_at": _time,
        "break_id": UUID,
        "first_seen": _time,
        "consecutive_runs": int,
        "asset_type": AssetType,
        "currency": str,
        "explanation": lambda text: explanation_from(json.loads(text)),
    },
)

_BREAKS = _Table(
    "breaks",
    key=("break_id",),
    update=True,
    columns={
        "break_id": UUID,
        "account_id": str,
        "discrepancy_type": DiscrepancyType,
        "symbol": str,
        "severity": DiscrepancySeverity,
        "local_value": Decimal,
        "broker_value": Decimal,
        "first_seen": _time,
        "last_seen": _time,
        "consecutive_runs": int,
        "first_run_id": UUID,
        "last_run_id": UUID,
        "halted_run_id": UUID,
        "resolved_at": _time,
        "resolved_run_id": UUID,
        "asset_type": AssetType,
        "currency": str,
    },
)

_CORRECTIONS = _Table(
    "corrections",
    key=("event_id",),
    columns={
        "event_id": UUID,
        "correction_id": UUID,
        "status": CorrectionStatus,
        "mode": str,
        "account_id": str,
        "break_id": UUID,
        "run_id": UUID,
        "discrepancy_type": DiscrepancyType,
        "symbol": str,
        "asset_type": AssetType,
        "currency": str,
        "local_value": Decimal,
        "broker_value": Decimal,
        "quantity": Decimal,
        "price": Decimal,
        "avg_cost": Decimal,
        "cash": Decimal,
        "notional": Decimal,
        "consecutive_runs": int,
        "confirm_after_runs": int,
        "severity": DiscrepancySeverity,
        "reason": str,
        "verification_run_id": UUID,
        "observed_at": _time,
        "event_at": _time,
        "actor": str,
        "fills": lambda text: tuple(fill_from(fill) for fill in json.loads(text)),
    },
)

_BREAK_ORDER = "ORDER BY first_seen, discrepancy_type, symbol, asset_type, currency, break_id"

_NEWEST_RUNS_FIRST = "ORDER BY run_at DESC, run_id DESC"

_NEWEST_CORRECTIONS_FIRST = (
    "ORDER BY event_at DESC, CASE status "
    + " ".join(f"WHEN '{status.value}' THEN {rank}" for rank, status in enumerate(CorrectionStatus))
    + " END DESC, event_id DESC"
)
"""Steps made at one moment (proposed and confirmed by one run) in the order of a correction's life."""


def _where(
    account_id: str,
    *,
    time: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    types: Collection[DiscrepancyType] | None = None,
    severities: Collection[DiscrepancySeverity] | None = None,
    open_only: bool = False,
) -> tuple[str, list[object]]:
    """The condition on an account's rows, and its parameters: `time` in [since, until),
    of these types and severities (None or empty: all), not resolved if `open_only`."""
    conditions = ["account_id = ?"]
    params: list[object] = [account_id]

    def add(condition: str, *values: object) -> None:
        conditions.append(condition)
        params.extend(_stored(value) for value in values)

    if open_only:
        add("resolved_at IS NULL")
    if since is not None:
        add(f"{time} >= ?", since)
    if until is not None:
        add(f"{time} < ?", until)
    if types:
        add(f"discrepancy_type IN ({', '.join('?' for _ in types)})", *types)
    if severities:
        add(f"severity IN ({', '.join('?' for _ in severities)})", *severities)
    return " AND ".join(conditions), params


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        msg = f"limit must be a whole number of at least 1, got {limit!r}"
        raise ValueError(msg)
    return limit


def _version(execute: Execute) -> int:
    return int(execute("SELECT MAX(version) AS version FROM schema_version", ())[0]["version"] or 0)


def _build(cls: type[_T], values: Mapping[str, Any], **given: Any) -> _T:
    """A `cls` from `given` and, for each of its other arguments, the value of that name in `values`."""
    return cls(**given, **{f.name: values[f.name] for f in attrs.fields(cls) if f.init and f.name not in given})


def _run(values: Mapping[str, Any], discrepancies: Sequence[RecordedDiscrepancy]) -> RunRecord:
    return _build(
        RunRecord,
        values,
        timestamp=values["run_at"],
        netted=tuple(NettedSymbol(**entry) for entry in values["netted"]),
        discrepancies=tuple(discrepancies),
    )


def _recorded_discrepancy(values: Mapping[str, Any]) -> RecordedDiscrepancy:
    discrepancy = _build(Discrepancy, values, type=values["discrepancy_type"], timestamp=values["observed_at"])
    return _build(RecordedDiscrepancy, values, discrepancy=discrepancy, severity=values["aged_severity"])


def _sighting(values: Mapping[str, Any]) -> BreakSighting:
    return _build(BreakSighting, values, seen_at=values["observed_at"], severity=values["aged_severity"])


def _break(values: Mapping[str, Any]) -> BreakState:
    return _build(BreakState, values, type=values["discrepancy_type"])


def _correction_event(values: Mapping[str, Any]) -> CorrectionEvent:
    correction = _build(Correction, values, type=values["discrepancy_type"])
    return _build(CorrectionEvent, values, correction=correction, timestamp=values["event_at"], fence=None)


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
            current = _version(execute)
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
            return _version(execute)

    def record_run(self, result: ReconciliationResult, aged: AgeingUpdate) -> None:
        """Write the run, its discrepancies and the break states after it, atomically.

        Recording the same run again changes nothing.

        Raises:
            ValueError: `aged` is not this run's update, or misses one of its discrepancies.
        """
        if aged.run_id != result.run_id:
            msg = f"the ageing update is for run {aged.run_id}, not {result.run_id}"
            raise ValueError(msg)
        discrepancies = []
        for ordinal, discrepancy in enumerate(result.discrepancies):
            try:
                state = aged.state_of(discrepancy)
            except KeyError:
                msg = f"the ageing update of run {result.run_id} has no break for {discrepancy.key}"
                raise ValueError(msg) from None
            discrepancies.append(
                {
                    **attrs.asdict(discrepancy, recurse=False),
                    "run_id": result.run_id,
                    "ordinal": ordinal,
                    "discrepancy_type": discrepancy.type,
                    "aged_severity": state.severity,
                    "observed_at": discrepancy.timestamp,
                    "break_id": state.break_id,
                    "first_seen": state.first_seen,
                    "consecutive_runs": state.consecutive_runs,
                }
            )
        run = {
            **attrs.asdict(result, recurse=False),
            "run_at": result.timestamp,
            "status": result.status,
            "context": json.dumps(dict(result.context), sort_keys=True),
            "netted": json.dumps([attrs.asdict(netted) for netted in result.netted], default=_stored),
            "discrepancy_count": len(result.discrepancies),
        }
        with self._transaction(write=True) as execute:
            _RUNS.insert(execute, run)
            for values in discrepancies:
                _DISCREPANCIES.insert(execute, values)
            for state in (*aged.resolved, *aged.breaks):
                _BREAKS.insert(execute, {**attrs.asdict(state, recurse=False), "discrepancy_type": state.type})

    def load_open_breaks(self, account_id: str) -> list[BreakState]:
        return self.list_breaks(account_id, open_only=True)

    def list_breaks(
        self,
        account_id: str,
        *,
        open_only: bool,
        types: Collection[DiscrepancyType] | None = None,
        severities: Collection[DiscrepancySeverity] | None = None,
        since: dt.datetime | None = None,
    ) -> list[BreakState]:
        where, params = _where(
            account_id,
            time="COALESCE(resolved_at, last_seen)",
            since=since,
            types=types,
            severities=severities,
            open_only=open_only,
        )
        with self._transaction(write=False) as execute:
            found = _BREAKS.select(execute, f"WHERE {where} {_BREAK_ORDER}", params)
        return [_break(values) for values in found]

    def list_runs(
        self,
        account_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        _limit(limit)
        where, params = _where(account_id, time="run_at", since=since, until=until)
        latest = f"SELECT run_id FROM runs WHERE {where} {_NEWEST_RUNS_FIRST} LIMIT ?"  # noqa: S608
        params.append(limit)
        with self._transaction(write=False) as execute:
            runs = _RUNS.select(execute, f"WHERE run_id IN ({latest}) {_NEWEST_RUNS_FIRST}", params)
            found = _DISCREPANCIES.select(execute, f"WHERE run_id IN ({latest}) ORDER BY run_id, ordinal", params)
        by_run: dict[UUID, list[RecordedDiscrepancy]] = {}
        for values in found:
            by_run.setdefault(values["run_id"], []).append(_recorded_discrepancy(values))
        return [_run(values, by_run.get(values["run_id"], ())) for values in runs]

    def list_accounts(self) -> list[str]:
        with self._transaction(write=False) as execute:
            rows = execute(
                "SELECT account_id FROM runs UNION SELECT account_id FROM breaks ORDER BY account_id", ()
            )
        return [row["account_id"] for row in rows]

    def find_break(self, break_id: UUID) -> BreakState | None:
        with self._transaction(write=False) as execute:
            found = _BREAKS.select(execute, "WHERE break_id = ?", (str(break_id),))
        return _break(found[0]) if found else None

    def break_history(self, break_id: UUID, *, limit: int = 1000) -> list[BreakSighting]:
        with self._transaction(write=False) as execute:
            found = _DISCREPANCIES.select(
                execute,
                "WHERE break_id = ? ORDER BY consecutive_runs DESC LIMIT ?",
                (str(break_id), _limit(limit)),
            )
        return [_sighting(values) for values in reversed(found)]

    def record_correction(self, event: CorrectionEvent) -> None:
        values = {
            **attrs.asdict(event.correction, recurse=False),
            **attrs.asdict(event, recurse=False),
            "discrepancy_type": event.correction.type,
            "event_at": event.timestamp,
        }
        with self._transaction(write=True) as execute:
            _CORRECTIONS.insert(execute, values)

    def list_corrections(
        self,
        account_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 100,
        types: Collection[DiscrepancyType] | None = None,
    ) -> list[CorrectionEvent]:
        _limit(limit)
        where, params = _where(account_id, time="event_at", since=since, until=until, types=types)
        params.append(limit)
        with self._transaction(write=False) as execute:
            found = _CORRECTIONS.select(execute, f"WHERE {where} {_NEWEST_CORRECTIONS_FIRST} LIMIT ?", params)
        return [_correction_event(values) for values in found]

    def load_blocked_breaks(self, account_id: str) -> list[UUID]:
        with self._transaction(write=False) as execute:
            rows = execute(
                "SELECT DISTINCT c.break_id AS break_id FROM corrections c JOIN breaks b ON b.break_id = c.break_id "
                "WHERE c.account_id = ? AND c.status = ? AND b.resolved_at IS NULL ORDER BY c.break_id",
                (account_id, CorrectionStatus.UNRESOLVED.value),
            )
        return [UUID(row["break_id"]) for row in rows]
