"""Break ageing and the kill switch: pure logic over a sequence of runs, no I/O.

`BreakTracker.observe` is fed every run's result, in order, and answers what changed:
each current discrepancy's break (first seen, last seen, consecutive runs, severity
after escalation), the breaks that resolved, and the breaks that just qualified for the
kill switch. Seeded with the store's open breaks, ageing survives a restart.

A run that failed (``result.error`` set) says nothing about the book: it neither ages
nor resolves anything. Only a run that completed without a break resolves it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from uuid import UUID

import attrs

from reconciliation._domain.breaks import BreakKey, BreakState, break_id_for, describe_key
from reconciliation._domain.models import AgeingPolicy

if TYPE_CHECKING:
    from collections.abc import Iterable

    from reconciliation._domain.models import Discrepancy, ReconciliationResult

__all__ = ["AgeingPolicy", "AgeingUpdate", "BreakTracker"]

logger = logging.getLogger(__name__)


@attrs.frozen
class AgeingUpdate:
    """What one run changed.

    `breaks` has one open break per discrepancy of the run, in the result's order;
    `resolved` the breaks that this run no longer saw; `halts` the breaks this run
    confirmed for the kill switch (each also in `breaks`). All empty for a failed run.
    """

    run_id: UUID
    account_id: str
    breaks: tuple[BreakState, ...] = ()
    resolved: tuple[BreakState, ...] = ()
    halts: tuple[BreakState, ...] = ()

    def state_of(self, discrepancy: Discrepancy) -> BreakState:
        """The break of one of this run's discrepancies.

        Raises:
            KeyError: the discrepancy is not one of this run's.
        """
        for state in self.breaks:
            if state.key == discrepancy.key:
                return state
        raise KeyError(discrepancy.key)

    def escalate(self, result: ReconciliationResult) -> ReconciliationResult:
        """`result` with each discrepancy's severity replaced by its break's, for publishing."""
        if result.run_id != self.run_id:
            msg = f"this update is for run {self.run_id}, not {result.run_id}"
            raise ValueError(msg)
        return attrs.evolve(
            result,
            discrepancies=tuple(
                attrs.evolve(d, severity=self.state_of(d).severity) for d in result.discrepancies
            ),
        )


class BreakTracker:
    """Follows breaks across runs. Not thread-safe: one owner (an actor) feeds it.

    Feed it the comparator's results (classified severities), never results already
    escalated by `AgeingUpdate.escalate`, or a break would be escalated twice.
    """

    def __init__(self, policy: AgeingPolicy | None = None, open_breaks: Iterable[BreakState] = ()) -> None:
        """Start from `open_breaks`, as `AuditStore.load_open_breaks` reads them back.

        Raises:
            ValueError: a break is resolved, or two open breaks share one key.
        """
        self._policy = policy or AgeingPolicy()
        self._open: dict[BreakKey, BreakState] = {}
        for state in open_breaks:
            if not state.is_open:
                msg = (
                    f"break {state.break_id} resolved at {state.resolved_at}: only open breaks seed a tracker"
                )
                raise ValueError(msg)
            if state.key in self._open:
                msg = f"two open breaks for {describe_key(state.key)}: {self._open[state.key].break_id} and {state.break_id}"
                raise ValueError(msg)
            self._open[state.key] = state

    @property
    def policy(self) -> AgeingPolicy:
        return self._policy

    def open_breaks(self, account_id: str) -> tuple[BreakState, ...]:
        return tuple(s for s in self._open.values() if s.account_id == account_id)

    def observe(self, result: ReconciliationResult) -> AgeingUpdate:
        """Age the breaks of `result`'s account by one run.

        Raises:
            ValueError: the result holds two discrepancies with one key.
        """
        if result.error is not None:
            return AgeingUpdate(run_id=result.run_id, account_id=result.account_id)
        current: dict[BreakKey, BreakState] = {}
        halts: list[BreakState] = []
        for discrepancy in result.discrepancies:
            if discrepancy.key in current:
                msg = f"run {result.run_id} reports {describe_key(discrepancy.key)} twice"
                raise ValueError(msg)
            previous = self._open.get(discrepancy.key)
            state = self._sighted(previous, discrepancy, result)
            current[discrepancy.key] = state
            if state.halted_run_id == result.run_id and (previous is None or previous.halted_run_id is None):
                halts.append(state)
        resolved = tuple(
            attrs.evolve(
                state, resolved_at=max(result.timestamp, state.last_seen), resolved_run_id=result.run_id
            )
            for key, state in self._open.items()
            if state.account_id == result.account_id and key not in current
        )
        for state in resolved:
            del self._open[state.key]
        self._open.update(current)
        return AgeingUpdate(
            run_id=result.run_id,
            account_id=result.account_id,
            breaks=tuple(current.values()),
            resolved=resolved,
            halts=tuple(halts),
        )

    def _sighted(
        self, previous: BreakState | None, discrepancy: Discrepancy, result: ReconciliationResult
    ) -> BreakState:
        if previous is None:
            first_seen, consecutive, first_run_id = result.timestamp, 1, result.run_id
            break_id, halted_run_id = break_id_for(result.run_id, discrepancy.key), None
            seen_at = result.timestamp
        else:
            first_seen, consecutive, first_run_id = (
                previous.first_seen,
                previous.consecutive_runs + 1,
                previous.first_run_id,
            )
            break_id, halted_run_id = previous.break_id, previous.halted_run_id
            seen_at = max(result.timestamp, previous.last_seen)
        severity = self._policy.severity_after(discrepancy.severity, consecutive, seen_at - first_seen)
        if halted_run_id is None and self._policy.halts(severity, consecutive):
            halted_run_id = result.run_id
        return BreakState(
            break_id=break_id,
            account_id=discrepancy.account_id,
            type=discrepancy.type,
            symbol=discrepancy.symbol,
            severity=severity,
            local_value=discrepancy.local_value,
            broker_value=discrepancy.broker_value,
            first_seen=first_seen,
            last_seen=seen_at,
            consecutive_runs=consecutive,
            first_run_id=first_run_id,
            last_run_id=result.run_id,
            halted_run_id=halted_run_id,
            asset_type=discrepancy.asset_type,
            currency=discrepancy.currency,
        )
