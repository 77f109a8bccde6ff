"""The run log: every run at INFO (a failed one at ERROR), every discrepancy at WARNING,
every step of a correction (`log_correction`).

A sink like Redis and the audit store, fed by a delivery actor of its own, so that
logging the 100,000 breaks of a bad day delays neither the askers nor the Redis alerts,
and never waits for Redis either. Records carry `extra` fields (run id, account, type,
symbol, severity) for structured logging.

A run's first `LOGGED_ONE_BY_ONE` discrepancies get a WARNING record each; the others, on a
bad day thousands, are logged together in one more WARNING record whose line counts them by
type and severity and whose `discrepancies` field holds every one of them. Building a record
costs more than the comparison found the break (issue 27: 37 % of a 10,000-break run), so
a bad day costs the host a dozen records, not 10,000; and none at all when the
`reconciliation.runs` logger is not enabled for WARNING.
"""

from __future__ import annotations

import logging
from collections import Counter
from operator import attrgetter
from typing import TYPE_CHECKING

from reconciliation._domain.correction import CorrectionEvent, CorrectionStatus
from reconciliation._domain.sinks import Sent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from reconciliation._domain.models import ReconciliationResult
    from reconciliation._domain.sinks import Delivery

__all__ = ["LOGGED_ONE_BY_ONE", "RUN_LOGGER", "LogSink", "log_correction", "log_result"]

RUN_LOGGER = "reconciliation.runs"

LOGGED_ONE_BY_ONE = 10
"""How many of a run's discrepancies get a WARNING record each; the rest share one."""

logger = logging.getLogger(RUN_LOGGER)


def log_result(result: ReconciliationResult) -> None:
    """Every discrepancy at WARNING (past `LOGGED_ONE_BY_ONE`, together in one record), a failed
    run at ERROR, and then the run at INFO."""
    trigger = result.trigger
    run = {"run_id": str(result.run_id), "account_id": result.account_id, "trigger": trigger}
    if result.error is not None:
        logger.error(
            "Reconciliation of %s failed (run %s, trigger %s): %s",
            result.account_id,
            result.run_id,
            trigger,
            result.error,
            extra=run,
        )
        return
    if result.discrepancies and logger.isEnabledFor(logging.WARNING):
        _log_discrepancies(result, run)
    logger.info(
        "Reconciled %s: %s, %d positions checked in %.1f ms (run %s, trigger %s)",
        result.account_id,
        "clean" if result.is_clean else f"{len(result.discrepancies)} discrepancies",
        result.positions_checked,
        result.duration_ms,
        result.run_id,
        trigger,
        extra=run,
    )


def _log_discrepancies(result: ReconciliationResult, run: dict[str, str]) -> None:
    """The first `LOGGED_ONE_BY_ONE` discrepancies a record each, the rest in one record."""
    for d in result.discrepancies[:LOGGED_ONE_BY_ONE]:
        logger.warning(
            "%s %s on %s%s: local %s, broker %s (run %s, trigger %s)",
            d.severity.value.upper(),
            d.type.value,
            result.account_id,
            f" {d.subject}" if d.subject else "",
            "none" if d.local_value is None else format(d.local_value, "f"),
            "none" if d.broker_value is None else format(d.broker_value, "f"),
            result.run_id,
            result.trigger,
            extra={**run, "type": d.type.value, "symbol": d.symbol, "severity": d.severity.value},
        )
    rest = result.discrepancies[LOGGED_ONE_BY_ONE:]
    if not rest:
        return
    by_type = Counter(map(attrgetter("type"), rest))
    by_severity = Counter(map(attrgetter("severity"), rest))
    logger.warning(
        "%s more discrepancies on %s: %s; %s (run %s, trigger %s; each one in this record's `discrepancies`)",
        f"{len(rest):,}",
        result.account_id,
        ", ".join(f"{count:,} {kind.value}" for kind, count in by_type.most_common()),
        ", ".join(f"{count:,} {severity.value}" for severity, count in by_severity.most_common()),
        result.run_id,
        result.trigger,
        extra={
            **run,
            "discrepancies": rest,
            "types": {kind.value: count for kind, count in by_type.items()},
            "severities": {severity.value: count for severity, count in by_severity.items()},
        },
    )


_CORRECTION_LEVEL = {
    CorrectionStatus.PROPOSED: logging.INFO,
    CorrectionStatus.CONFIRMED: logging.INFO,
    CorrectionStatus.VERIFIED: logging.INFO,
    CorrectionStatus.HELD: logging.WARNING,
    CorrectionStatus.APPLIED: logging.WARNING,
    CorrectionStatus.APPLIED_LATE: logging.WARNING,
    CorrectionStatus.UNKNOWN: logging.ERROR,
    CorrectionStatus.FAILED: logging.ERROR,
    CorrectionStatus.REFUSED: logging.ERROR,
    CorrectionStatus.UNRESOLVED: logging.CRITICAL,
}
"""A change to the book is worth a warning; one that could not be made or did not work, more."""


def log_correction(event: CorrectionEvent) -> None:
    """`Correction applied to ACC-1: buy 10 MSFT at 415.30 (quantity_mismatch, break ..., run ...)`."""
    correction = event.correction
    logger.log(
        _CORRECTION_LEVEL[event.status],
        "Correction %s%s to %s: %s (%s, break %s, run %s, %s mode)%s",
        event.status.value,
        " (not applied)" if event.mode == "propose" and event.status is CorrectionStatus.CONFIRMED else "",
        correction.account_id,
        correction.describe(),
        correction.type.value,
        correction.break_id,
        correction.run_id,
        event.mode,
        "" if event.reason is None else f": {event.reason}",
        extra={
            "run_id": str(correction.run_id),
            "account_id": correction.account_id,
            "type": correction.type.value,
            "symbol": correction.symbol,
            "break_id": str(correction.break_id),
            "correction": event.status.value,
        },
    )


class LogSink:
    """Logs each run and each correction event as it is queued; there is nothing to deliver afterwards."""

    name = "log"

    def prepare(self, run: Delivery) -> None:
        if isinstance(run, CorrectionEvent):
            log_correction(run)
        else:
            log_result(run.result)

    def weight(self, item: None) -> int:  # noqa: ARG002 - the protocol's signature
        return 1

    def send(self, items: Sequence[None]) -> Sent:
        return Sent(delivered=len(items))

    def close(self) -> None:
        pass
