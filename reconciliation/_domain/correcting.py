"""The life of a correction, run after run: propose, confirm, apply, verify. Pure, no I/O.

`CorrectionTracker` is fed each finished run of one account, in order, with its break
ageing and the books it compared, and answers what to do (`Decisions`): the events to
publish and record, the corrections to apply, the breaks to escalate. It is told how
each application went (`applied`) and what the run after it found (`verified`).

The rules, for a break of a type the policy corrects:

- its correction is *proposed* when the break is first seen, and again whenever its
  figures change;
- once `confirm_after_runs` runs in a row have seen it, the correction is *confirmed*
  (once per figures): in `apply` mode it is then applied, unless its value exceeds
  `max_notional` — then it is *refused* and the break escalated to critical;
- an application that fails leaves the break open: a later run that still confirms it
  tries again, with a fresh correction;
- an applied correction is checked by the next completed run: *verified* when that run
  no longer sees the break, *unresolved* otherwise — then the break is escalated to
  critical and never corrected again automatically (until it resolves; a break that
  comes back is a new one).

A failed run decides nothing: it proposes nothing and checks nothing.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING
from uuid import UUID

import attrs

from reconciliation._domain.correction import (
    Correction,
    CorrectionEvent,
    CorrectionStatus,
    propose_corrections,
)
from reconciliation._domain.models import DiscrepancySeverity

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable, Mapping
    from decimal import Decimal

    from reconciliation._domain.ageing import AgeingUpdate
    from reconciliation._domain.breaks import BreakKey
    from reconciliation._domain.models import CorrectionPolicy, Discrepancy, ReconciliationResult, Snapshot

__all__ = ["CorrectionTracker", "Decisions", "Stage"]

logger = logging.getLogger(__name__)

_Figures = tuple["Decimal | None", "Decimal | None"]


class Stage(enum.Enum):
    OPEN = "open"
    APPLYING = "applying"
    VERIFYING = "verifying"
    BLOCKED = "blocked"
    """A correction did not resolve it: never corrected again automatically."""


@attrs.define
class _Memory:
    """What the tracker remembers of one open break."""

    severity: DiscrepancySeverity
    proposed: _Figures | None = None
    confirmed: _Figures | None = None
    """The figures last confirmed or refused: confirmed again only when they change."""
    stage: Stage = Stage.OPEN
    applied: Correction | None = None
    """The correction being applied or verified."""
    awaiting_run: bool = False
    """Its verification run failed: the next completed run decides."""
    ended: bool = False
    """It resolved while its correction was being applied."""


@attrs.frozen
class Decisions:
    """What to do after a step: publish and record `events`, apply `apply` (in order),
    escalate the breaks `escalate` to critical."""

    events: tuple[CorrectionEvent, ...] = ()
    apply: tuple[Correction, ...] = ()
    escalate: tuple[UUID, ...] = ()


class CorrectionTracker:
    """Follows the corrections of one account. Not thread-safe: one owner (an actor) feeds it.

    Args:
        policy: what may be corrected, when and how far.
        actor: who, in the events: the process deriving and applying them.
        blocked: breaks that a correction did not resolve (read back from the audit store).
    """

    def __init__(self, policy: CorrectionPolicy, *, actor: str, blocked: Iterable[UUID] = ()) -> None:
        self._policy = policy
        self._actor = actor
        self._memory: dict[UUID, _Memory] = {}
        self._blocked = set(blocked)

    @property
    def policy(self) -> CorrectionPolicy:
        return self._policy

    @property
    def blocked(self) -> frozenset[UUID]:
        """The open breaks never to be corrected again automatically."""
        return frozenset(self._blocked)

    def observe(
        self, result: ReconciliationResult, ageing: AgeingUpdate, snapshot: Snapshot | None, now: dt.datetime
    ) -> Decisions:
        """A run finished: propose, confirm, refuse and judge what it shows.

        `ageing` is the run's `BreakTracker` update; `snapshot` the books it compared.
        """
        if result.error is not None or snapshot is None:
            return Decisions()
        events: list[CorrectionEvent] = []
        escalate: list[UUID] = []
        for sighting in ageing.ended:
            self._blocked.discard(sighting.break_id)
            memory = self._memory.get(sighting.break_id)
            if memory is not None and memory.stage in {Stage.APPLYING, Stage.VERIFYING}:
                memory.ended = True
            else:
                self._memory.pop(sighting.break_id, None)
        found = {d.key: d for d in result.discrepancies}
        for memory in [m for m in self._memory.values() if m.awaiting_run]:
            self._judge(memory, found, result.run_id, now, events, escalate)
        pending = self._to_derive(result, ageing)
        apply: list[Correction] = []
        for correction in propose_corrections(snapshot, pending, run_id=result.run_id):
            self._decide(correction, now, events, apply, escalate)
        return Decisions(tuple(events), tuple(apply), tuple(escalate))

    def applied(self, correction: Correction, error: str | None, now: dt.datetime) -> Decisions:
        """The book's `apply_correction` returned (`error` None) or failed (`error` says how)."""
        memory = self._memory.get(correction.break_id)
        if memory is None or memory.applied != correction:
            logger.warning("An application of correction %s was not expected", correction.correction_id)
            return Decisions()
        if error is None:
            memory.stage = Stage.VERIFYING
            return Decisions((self._event(CorrectionStatus.APPLIED, correction, now, memory.severity),))
        event = self._event(CorrectionStatus.FAILED, correction, now, memory.severity, reason=error)
        if memory.ended:
            del self._memory[correction.break_id]
        else:
            memory.stage, memory.applied, memory.confirmed = Stage.OPEN, None, None
        return Decisions((event,))

    def verified(
        self, corrections: Iterable[Correction], result: ReconciliationResult | None, now: dt.datetime
    ) -> Decisions:
        """The run asked for after applying `corrections` ended with `result` (None: it could
        not be asked for). A run that failed leaves the verdict to the next completed run."""
        events: list[CorrectionEvent] = []
        escalate: list[UUID] = []
        found = {} if result is None else {d.key: d for d in result.discrepancies}
        for correction in corrections:
            memory = self._memory.get(correction.break_id)
            if memory is None or memory.stage is not Stage.VERIFYING or memory.applied != correction:
                continue
            if result is None or result.error is not None:
                memory.awaiting_run = True
                continue
            self._judge(memory, found, result.run_id, now, events, escalate)
        return Decisions(tuple(events), escalate=tuple(escalate))

    def _to_derive(
        self, result: ReconciliationResult, ageing: AgeingUpdate
    ) -> list[tuple[Discrepancy, UUID, int]]:
        """The breaks whose correction is to be proposed or confirmed now."""
        pending = []
        confirm_after = self._policy.confirm_after_runs
        for discrepancy, sighting in zip(result.discrepancies, ageing.sightings, strict=True):
            if discrepancy.type not in self._policy.types or sighting.break_id in self._blocked:
                continue
            memory = self._memory.get(sighting.break_id)
            if memory is None:
                memory = self._memory[sighting.break_id] = _Memory(sighting.severity)
            memory.severity = sighting.severity
            if memory.stage is not Stage.OPEN:
                continue
            figures = (discrepancy.local_value, discrepancy.broker_value)
            confirmed = sighting.consecutive_runs >= confirm_after
            if memory.proposed != figures or (confirmed and memory.confirmed != figures):
                pending.append((discrepancy, sighting.break_id, sighting.consecutive_runs))
        return pending

    def _decide(
        self,
        correction: Correction,
        now: dt.datetime,
        events: list[CorrectionEvent],
        apply: list[Correction],
        escalate: list[UUID],
    ) -> None:
        memory = self._memory[correction.break_id]
        figures = (correction.local_value, correction.broker_value)
        if memory.proposed != figures:
            memory.proposed = figures
            events.append(self._event(CorrectionStatus.PROPOSED, correction, now, memory.severity))
        if correction.consecutive_runs < self._policy.confirm_after_runs or memory.confirmed == figures:
            return
        memory.confirmed = figures
        limit = self._policy.max_notional
        if correction.exceeds(limit):
            value = "unknown" if correction.notional is None else f"{correction.notional:f}"
            reason = f"its value ({value}) exceeds max_notional ({limit:f}): never applied"
            events.append(
                self._event(
                    CorrectionStatus.REFUSED, correction, now, DiscrepancySeverity.CRITICAL, reason=reason
                )
            )
            escalate.append(correction.break_id)
            return
        events.append(self._event(CorrectionStatus.CONFIRMED, correction, now, memory.severity))
        if self._policy.mode == "apply":
            memory.stage, memory.applied = Stage.APPLYING, correction
            apply.append(correction)

    def _judge(
        self,
        memory: _Memory,
        found: Mapping[BreakKey, Discrepancy],
        run_id: UUID,
        now: dt.datetime,
        events: list[CorrectionEvent],
        escalate: list[UUID],
    ) -> None:
        correction = memory.applied
        if correction is None:
            return
        still = found.get(correction.key)
        if still is None:
            del self._memory[correction.break_id]
            events.append(
                self._event(
                    CorrectionStatus.VERIFIED, correction, now, memory.severity, verification_run_id=run_id
                )
            )
            return
        memory.stage, memory.awaiting_run = Stage.BLOCKED, False
        self._blocked.add(correction.break_id)
        escalate.append(correction.break_id)
        reason = (
            f"the run after it ({run_id}) still found the break (local {_text(still.local_value)}, "
            f"broker {_text(still.broker_value)}): never corrected again automatically"
        )
        events.append(
            self._event(
                CorrectionStatus.UNRESOLVED,
                correction,
                now,
                DiscrepancySeverity.CRITICAL,
                reason=reason,
                verification_run_id=run_id,
            )
        )

    def _event(
        self,
        status: CorrectionStatus,
        correction: Correction,
        now: dt.datetime,
        severity: DiscrepancySeverity,
        *,
        reason: str | None = None,
        verification_run_id: UUID | None = None,
    ) -> CorrectionEvent:
        return CorrectionEvent(
            status=status,
            correction=correction,
            mode=self._policy.mode,
            timestamp=now,
            actor=self._actor,
            confirm_after_runs=self._policy.confirm_after_runs,
            severity=severity,
            reason=reason,
            verification_run_id=verification_run_id,
        )


def _text(value: Decimal | None) -> str:
    return "none" if value is None else format(value, "f")
