"""How a run's ticket becomes its result: completed with a comparison, or failed."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from reconciliation._domain.models import ReconciliationResult

if TYPE_CHECKING:
    from reconciliation._domain.compare import Comparison
    from reconciliation._runtime.messages import RunTicket

__all__ = ["completed_result", "failed_result"]


def _result(ticket: RunTicket, now: float, **fields: Any) -> ReconciliationResult:
    """The ticket's run ended at `now`: its duration and, with periodic runs, when the next is due."""
    elapsed = max(now - ticket.started, 0.0)
    every = ticket.next_periodic_seconds
    return ReconciliationResult(
        run_id=ticket.run_id,
        account_id=ticket.account_id,
        duration_ms=round(elapsed * 1000.0, 3),
        context=ticket.trigger.context(),
        next_run_due=None if every is None else ticket.started_at + dt.timedelta(seconds=elapsed + every),
        **fields,
    )


def completed_result(
    ticket: RunTicket, comparison: Comparison, taken_at: dt.datetime, now: float, *, suspect: str | None = None
) -> ReconciliationResult:
    """A compared run, stamped with the time its snapshot was taken, like its discrepancies;
    `suspect` says why the broker's answer was implausible, if it was."""
    return _result(
        ticket,
        now,
        timestamp=taken_at,
        discrepancies=comparison.discrepancies,
        positions_checked=comparison.positions_checked,
        netted=comparison.netted,
        suspect=suspect,
    )


def failed_result(ticket: RunTicket, reason: str, now: float) -> ReconciliationResult:
    """A run that could not compare, stamped with its start: `error` the operator-readable reason."""
    return _result(ticket, now, timestamp=ticket.started_at, error=reason)
