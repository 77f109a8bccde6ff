"""The run log: every run at INFO (a failed one at ERROR), every discrepancy at WARNING.

A sink like Redis and the audit store, fed by a delivery actor of its own, so that
logging the 100,000 breaks of a bad day delays neither the askers nor the Redis alerts,
and never waits for Redis either. Records carry `extra` fields (run id, account, type,
symbol, severity) for structured logging.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from reconciliation._runtime.delivery import Sent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from reconciliation._domain.models import ReconciliationResult
    from reconciliation._runtime.messages import FinishedRun

__all__ = ["RUN_LOGGER", "LogSink", "log_result"]

RUN_LOGGER = "reconciliation.runs"

logger = logging.getLogger(RUN_LOGGER)


def log_result(result: ReconciliationResult) -> None:
    """Every discrepancy at WARNING, a failed run at ERROR, a clean one at INFO."""
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
    if logger.isEnabledFor(logging.WARNING):
        for d in result.discrepancies:
            logger.warning(
                "%s %s on %s%s: local %s, broker %s (run %s, trigger %s)",
                d.severity.value.upper(),
                d.type.value,
                result.account_id,
                f" {d.subject}" if d.subject else "",
                "none" if d.local_value is None else format(d.local_value, "f"),
                "none" if d.broker_value is None else format(d.broker_value, "f"),
                result.run_id,
                trigger,
                extra={**run, "type": d.type.value, "symbol": d.symbol, "severity": d.severity.value},
            )
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


class LogSink:
    """Logs each run as it is queued; there is nothing to deliver afterwards."""

    name = "log"

    def prepare(self, run: FinishedRun) -> None:
        log_result(run.result)

    def weight(self, item: None) -> int:  # noqa: ARG002 - the protocol's signature
        return 1

    def send(self, items: Sequence[None]) -> Sent:
        return Sent(delivered=len(items))

    def close(self) -> None:
        pass
