"""Recording runs into the audit store in order, without ever losing one silently.

Like the publisher's outbox: `submit` only queues; `record` writes what is queued,
oldest first, and says when to try again if the store is unavailable. A store error
that retrying cannot fix is logged at ERROR with the run, counted, and the run is
set aside so the runs behind it are still recorded.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import random
from typing import TYPE_CHECKING

import attrs

from reconciliation._domain.error_text import describe_error
from reconciliation.audit._errors import AuditStoreError, AuditStoreUnavailableError

if TYPE_CHECKING:
    from reconciliation._domain.ageing import AgeingUpdate
    from reconciliation._domain.models import ReconciliationResult
    from reconciliation._runtime.clock import Clock
    from reconciliation.audit._store import AuditStore

__all__ = ["AuditHealth", "AuditRecorder"]

logger = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 0.5


@attrs.frozen
class AuditHealth:
    backlog: int
    recorded_runs: int
    dropped_runs: int
    """Runs pushed out of a full backlog while the store was unavailable."""
    failed_runs: int
    """Runs the store refused for a reason retrying cannot fix (each logged at ERROR)."""
    last_error: str | None
    last_error_at: dt.datetime | None
    store_available: bool


class AuditRecorder:
    """Owned by one actor; never called concurrently."""

    def __init__(
        self, store: AuditStore, *, max_backlog: int, retry_max_seconds: float, clock: Clock
    ) -> None:
        self._store = store
        self._backlog: collections.deque[tuple[ReconciliationResult, AgeingUpdate]] = collections.deque()
        self._max_backlog = max_backlog
        self._retry_max = retry_max_seconds
        self._clock = clock
        self._migrated = False
        self._failures_in_a_row = 0
        self._recorded = self._dropped = self._failed = 0
        self._last_error: str | None = None
        self._last_error_at: dt.datetime | None = None

    def submit(self, result: ReconciliationResult, ageing: AgeingUpdate) -> None:
        if len(self._backlog) >= self._max_backlog:
            lost, _ = self._backlog.popleft()
            self._dropped += 1
            logger.error(
                "The audit backlog is full (%d runs): run %s of %s was dropped unrecorded (%d dropped so far)",
                self._max_backlog,
                lost.run_id,
                lost.account_id,
                self._dropped,
            )
        self._backlog.append((result, ageing))

    def record(self) -> float | None:
        """Write the backlog in order; None when it is empty, else seconds until the next try."""
        while self._backlog:
            result, ageing = self._backlog[0]
            try:
                if not self._migrated:
                    self._store.migrate()
                    self._migrated = True
                self._store.record_run(result, ageing)
            except AuditStoreUnavailableError as exc:
                return self._unavailable(exc)
            except AuditStoreError as exc:
                self._backlog.popleft()
                self._failed += 1
                self._note(exc)
                logger.exception("Run %s of %s could not be recorded", result.run_id, result.account_id)
                continue
            self._backlog.popleft()
            self._recorded += 1
            if self._failures_in_a_row:
                logger.info(
                    "The audit store is available again; recording the %d runs that waited",
                    len(self._backlog) + 1,
                )
                self._failures_in_a_row = 0
        return None

    def health(self) -> AuditHealth:
        return AuditHealth(
            backlog=len(self._backlog),
            recorded_runs=self._recorded,
            dropped_runs=self._dropped,
            failed_runs=self._failed,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            store_available=self._failures_in_a_row == 0,
        )

    def close(self) -> None:
        if self._backlog:
            logger.error(
                "Stopping with %d runs not recorded in the audit store: %s",
                len(self._backlog),
                self._last_error,
            )
        self._store.close()

    def _unavailable(self, error: AuditStoreUnavailableError) -> float:
        self._failures_in_a_row += 1
        self._note(error)
        log = logger.warning if self._failures_in_a_row == 1 else logger.debug
        log("The audit store is unavailable (%s); %d runs wait to be recorded", error, len(self._backlog))
        ceiling = min(self._retry_max, RETRY_BASE_SECONDS * 2 ** (self._failures_in_a_row - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography

    def _note(self, error: Exception) -> None:
        self._last_error = describe_error(error)
        self._last_error_at = self._clock.now()
