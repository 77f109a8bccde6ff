"""How a run's ticket becomes its result: completed with a comparison, or failed."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from reconciliation._domain.models import ReconciliationResult

if TYPE_CHECKING:
    from reconciliation._domain.compare import Comparison
    from reconciliation._runtime.messages import RunTicket

__all__ = ["completed_result", "failed_result"]


def _duration_ms(ticket: RunTicket, now: float) -> float:
    return round(max(now - ticket.started, 0.0) * 1000.0, 3)


def _next_run_due(ticket: RunTicket, now: float) -> dt.datetime | None:
    """The wall time the account's next periodic run is due: its delay after the run's end (now)."""
    if ticket.next_periodic_seconds is None:
        return None
    return ticket.started_at + dt.timedelta(seconds=max(now - ticket.started, 0.0) + ticket.next_periodic_seconds)


def completed_result(
    ticket: RunTicket, comparison: Comparison, taken_at: dt.datetime, now: float, *, suspect: str | None = None
) -> ReconciliationResult:
    """A compared run, stamped with the time its snapshot was taken, like its discrepancies;
    `suspect` says why the broker's answer was implausible, if it was."""
    return ReconciliationResult(
        run_id=ticket.run_id,
        account_id=ticket.account_id,
        timestamp=taken_at,
        discrepancies=comparison.discrepancies,
        positions_checked=comparison.positions_checked,
        duration_ms=_duration_ms(ticket, now),
        context=ticket.trigger.context(),
        netted=comparison.netted,
        suspect=suspect,
        next_run_due=_next_run_due(ticket, now),
    )


def failed_result(ticket: RunTicket, reason: str, now: float) -> ReconciliationResult:
    """A run that could not compare, stamped with its start: `error` the operator-readable reason."""
    return ReconciliationResult(
        run_id=ticket.run_id,
        account_id=ticket.account_id,
        timestamp=ticket.started_at,
        duration_ms=_duration_ms(ticket, now),
        context=ticket.trigger.context(),
        error=reason,
        next_run_due=_next_run_due(ticket, now),
    )
