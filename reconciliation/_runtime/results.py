"""How a run's ticket becomes its result: completed with a comparison, or failed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciliation._domain.models import ReconciliationResult

if TYPE_CHECKING:
    import datetime as dt

    from reconciliation._domain.compare import Comparison
    from reconciliation._runtime.messages import RunTicket

__all__ = ["completed_result", "failed_result"]


def _duration_ms(ticket: RunTicket, now: float) -> float:
    return round(max(now - ticket.started, 0.0) * 1000.0, 3)


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
    )
