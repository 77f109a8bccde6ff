"""The audit store interface, and `open_store`, which picks a backend from a URL or a path.

Every call either completes or raises an `AuditStoreError`; the transient kind,
`AuditStoreUnavailableError` (a locked file, a server that is down), means nothing was
written and the same call can be retried later.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from reconciliation._domain.redaction import redact_url
from reconciliation.audit._postgres import PostgresAuditStore
from reconciliation.audit._sqlite import SqliteAuditStore

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Collection
    from uuid import UUID

    from reconciliation._domain.ageing import AgeingUpdate
    from reconciliation._domain.breaks import BreakState
    from reconciliation._domain.correction import CorrectionEvent
    from reconciliation._domain.models import DiscrepancySeverity, DiscrepancyType, ReconciliationResult
    from reconciliation.audit._records import BreakSighting, RunRecord

__all__ = ["AuditStore", "open_store"]

_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})


@runtime_checkable
class AuditStore(Protocol):
    def migrate(self) -> None:
        """Create or upgrade the schema; a no-op when it is current. Safe from several processes."""
        ...

    def record_run(self, result: ReconciliationResult, aged: AgeingUpdate) -> None:
        """Write a run (context, error), each of its discrepancies, and the break states after it.

        `aged` is what `BreakTracker.observe(result)` returned. All or nothing; recording
        the same run twice changes nothing.
        """
        ...

    def load_open_breaks(self, account_id: str) -> list[BreakState]:
        """The account's open breaks, to seed a `BreakTracker` after a restart."""
        ...

    def record_correction(self, event: CorrectionEvent) -> None:
        """Write one step of a correction (who, when, what); recording it twice changes nothing."""
        ...

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
        ...

    def load_blocked_breaks(self, account_id: str) -> list[UUID]:
        """The account's open breaks a correction did not resolve: never corrected again automatically."""
        ...

    def list_runs(
        self,
        account_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        """The account's latest runs in [since, until), newest first, at most `limit`."""
        ...

    def list_breaks(
        self,
        account_id: str,
        *,
        open_only: bool,
        types: Collection[DiscrepancyType] | None = None,
        severities: Collection[DiscrepancySeverity] | None = None,
        since: dt.datetime | None = None,
    ) -> list[BreakState]:
        """The account's breaks, oldest first.

        Args:
            open_only: only the breaks not yet resolved.
            types: only these types; None or empty for all.
            severities: only these severities (after escalation); None or empty for all.
            since: only breaks still seen, or resolved, at or after this time.
        """
        ...

    def list_accounts(self) -> list[str]:
        """Every account with a recorded run or break, in order."""
        ...

    def find_break(self, break_id: UUID) -> BreakState | None:
        """The break with this id, open or resolved; None if there is none."""
        ...

    def break_history(self, break_id: UUID, *, limit: int = 1000) -> list[BreakSighting]:
        """The runs that saw the break, oldest first: the latest `limit` of them."""
        ...

    def close(self) -> None: ...


def open_store(
    target: str | os.PathLike[str], *, timeout_seconds: float = 5.0, read_only: bool = False
) -> AuditStore:
    """The store at `target`: ``postgresql://...`` (or ``postgres://``), or a SQLite file.

    A SQLite file is a bare path or a ``sqlite:///relative/path`` or
    ``sqlite:////absolute/path`` URL (the SQLAlchemy convention). Nothing is opened yet:
    the store connects at its first call, usually `migrate()`.

    Args:
        timeout_seconds: the longest a call waits for a lock or a server before it
            raises `AuditStoreUnavailableError`.
        read_only: only read (`history`, the board): a SQLite file is opened without
            changing it or creating a file beside it (see `SqliteAuditStore`).

    Raises:
        ValueError: an unknown URL scheme, or a sqlite URL without a path.
        AuditStoreError: a PostgreSQL URL, and psycopg is not installed.
    """
    if isinstance(target, os.PathLike) or "://" not in target:
        return SqliteAuditStore(target, timeout_seconds=timeout_seconds, read_only=read_only)
    scheme, _, rest = target.partition("://")
    if scheme.lower() in _POSTGRES_SCHEMES:
        return PostgresAuditStore(target, timeout_seconds=timeout_seconds)
    if scheme.lower() == "sqlite":
        path = rest.removeprefix("/")
        if path == rest or not path:
            msg = f"a sqlite URL is sqlite:///relative/path or sqlite:////absolute/path, not {redact_url(target)!r}"
            raise ValueError(msg)
        return SqliteAuditStore(path, timeout_seconds=timeout_seconds, read_only=read_only)
    msg = f"unknown audit store URL scheme {scheme!r} in {redact_url(target)!r}: use postgresql://, sqlite:/// or a file path"
    raise ValueError(msg)
