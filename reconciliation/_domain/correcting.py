"""The life of a correction, run after run: propose, confirm, apply, verify. Pure, no I/O.

`CorrectionTracker` is fed each finished run of one account, in order, with its break
ageing and the books it compared, and answers what to do (`Decisions`): the events to
publish and record, the corrections to apply, the breaks to escalate. It is told how
each application went (`applied`, and `landed` for one that answered late) and what
the run after it found (`verified`).

The rules, for a break of a type the policy corrects:

- its correction is *proposed* when the break is first seen, and again whenever its
  figures change;
- once `confirm_after_runs` runs in a row have seen it, the correction is *confirmed*
  (once per figures); it is *refused*, and the break escalated to critical, when its
  value is unknown (no positive price on either side) or over its limit; in `apply`
  mode it is then applied, unless a limit on applied corrections (`CorrectionBudget`)
  or another runtime's lease holds it — applied later if the break persists; the first
  correction held in a spell is published as *held*, with why (the alert, once);
- an application that does not answer in time is *unknown*: nothing more is applied
  for that break until the call returns (*applied_late*, or *failed*);
- an application that fails leaves the break open: a later run that still confirms it
  tries again, with a fresh correction;
- an applied correction is checked by the next completed run: *verified* when that run
  no longer sees the break, *unresolved* otherwise — then the break is escalated to
  critical and never corrected again automatically (until it resolves; a break that
  comes back is a new one).

Exactly one application per break: while one is in flight or unknown its break is not
corrected again, and once one has ended the account is decided only by runs whose read of
the books started after it ended — a run read before then may show the book as it was. A failed run decides nothing, and a suspect
one (`ReconciliationResult.suspect`) derives, confirms and checks nothing.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import functools
import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

import attrs

from reconciliation._domain.correction import (
    Correction,
    CorrectionEvent,
    CorrectionStatus,
    propose_corrections,
)
from reconciliation._domain.models import DiscrepancySeverity
from reconciliation._domain.values import EXACT

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from reconciliation._domain.ageing import AgeingUpdate
    from reconciliation._domain.breaks import BreakKey
    from reconciliation._domain.models import (
        CorrectionLimits,
        CorrectionPolicy,
        Discrepancy,
        ReconciliationResult,
        Snapshot,
    )

__all__ = ["ApplyOutcome", "Budget", "CorrectionBudget", "CorrectionTracker", "Decisions", "Stage"]

logger = logging.getLogger(__name__)

_Figures = tuple["Decimal | None", "Decimal | None"]
_DAY = dt.timedelta(days=1)
_ZERO = Decimal(0)
_RUNS_KEPT = 16
"""Runs whose applications a budget still counts: an account's runs come one after another."""


class Stage(enum.Enum):
    OPEN = "open"
    APPLYING = "applying"
    UNKNOWN = "unknown"
    """Its application did not answer in time: whether it changed the book is not known."""
    VERIFYING = "verifying"
    BLOCKED = "blocked"
    """A correction did not resolve it: never corrected again automatically."""


@attrs.frozen
class ApplyOutcome:
    """How a call of the book's `apply_correction` ended.

    `error` is None when it returned. `timed_out`: it did not answer in time (`error` says
    so), and it may still land (`CorrectionTracker.landed`). `changed` is what a book that
    raised reports it changed anyway (a half-way application), if it says.
    """

    error: str | None = None
    timed_out: bool = False
    changed: str | None = None


class Budget(Protocol):
    """What may still be applied: asked before each application, told of each one made."""

    def refusal(self, correction: Correction, now: dt.datetime) -> str | None: ...

    def spend(self, correction: Correction, now: dt.datetime) -> None: ...


class CorrectionBudget:
    """Applied corrections under `CorrectionLimits`: per run and per rolling 24 hours, a count
    and a total notional, for one account or for a whole runtime (`scope` names which).
    Not thread-safe: the corrector owns it."""

    def __init__(self, limits: CorrectionLimits, *, scope: str) -> None:
        self._limits = limits
        self._scope = scope
        self._day: collections.deque[tuple[dt.datetime, Decimal]] = collections.deque()
        self._runs: dict[UUID, tuple[int, Decimal]] = {}

    def refusal(self, correction: Correction, now: dt.datetime) -> str | None:
        limits, notional = self._limits, correction.notional or _ZERO
        while self._day and self._day[0][0] <= now - _DAY:
            self._day.popleft()
        count, total = self._runs.get(correction.run_id, (0, _ZERO))
        day_total = functools.reduce(EXACT.add, (amount for _, amount in self._day), _ZERO)
        after: tuple[tuple[str, int | Decimal | None, int | Decimal], ...] = (
            ("per_run", limits.per_run, count + 1),
            ("per_day", limits.per_day, len(self._day) + 1),
            ("notional_per_run", limits.notional_per_run, EXACT.add(total, notional)),
            ("notional_per_day", limits.notional_per_day, EXACT.add(day_total, notional)),
        )
        for name, limit, used in after:
            if limit is not None and used > limit:
                frees = ""
                if name.endswith("per_day") and self._day:
                    frees = f"; room again from {(self._day[0][0] + _DAY).isoformat(timespec='seconds')}"
                return f"{self._scope}'s limit {name} ({limit}) on applied corrections is reached{frees}"
        return None

    def spend(self, correction: Correction, now: dt.datetime) -> None:
        notional = correction.notional or _ZERO
        self._day.append((now, notional))
        count, total = self._runs.get(correction.run_id, (0, _ZERO))
        self._runs[correction.run_id] = (count + 1, EXACT.add(total, notional))
        while len(self._runs) > _RUNS_KEPT:
            del self._runs[next(iter(self._runs))]


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
    held: str | None = None
    """Why its confirmed correction is held (a limit, another runtime's lease)."""


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
        budget: the limits on applied corrections (the account's, and the runtime's).
    """

    def __init__(
        self,
        policy: CorrectionPolicy,
        *,
        actor: str,
        blocked: Iterable[UUID] = (),
        budget: Budget | None = None,
    ) -> None:
        self._policy = policy
        self._actor = actor
        self._memory: dict[UUID, _Memory] = {}
        self._blocked = set(blocked)
        self._budget = budget
        self._held: str | None = None
        """Why applications are held, through a spell of runs that each hold one: the first held
        correction of the spell says it (once)."""
        self._holding = False
        self._settled_at: dt.datetime | None = None
        """When the account's last application ended: a run read before then decides nothing."""

    @property
    def policy(self) -> CorrectionPolicy:
        return self._policy

    @property
    def blocked(self) -> frozenset[UUID]:
        """The open breaks never to be corrected again automatically."""
        return frozenset(self._blocked)

    @property
    def held(self) -> str | None:
        """Why confirmed corrections are held now (a limit, another runtime's lease), if they are."""
        return self._held

    def observe(
        self,
        result: ReconciliationResult,
        ageing: AgeingUpdate,
        snapshot: Snapshot | None,
        now: dt.datetime,
        *,
        withheld: str | None = None,
    ) -> Decisions:
        """A run finished: propose, confirm, refuse and judge what it shows.

        `ageing` is the run's `BreakTracker` update; `snapshot` the books it compared;
        `withheld` why this runtime may not apply now (another holds the account's lease).
        """
        if result.error is not None or snapshot is None:
            return Decisions()
        for sighting in ageing.ended:
            self._blocked.discard(sighting.break_id)
            memory = self._memory.get(sighting.break_id)
            if memory is not None and memory.stage in {Stage.APPLYING, Stage.UNKNOWN, Stage.VERIFYING}:
                memory.ended = True
            else:
                self._memory.pop(sighting.break_id, None)
        read = snapshot.read_started_at
        if result.suspect is not None or (self._settled_at is not None and read < self._settled_at):
            return Decisions()
        events: list[CorrectionEvent] = []
        escalate: list[UUID] = []
        found = {d.key: d for d in result.discrepancies}
        for memory in [m for m in self._memory.values() if m.awaiting_run]:
            self._judge(memory, found, result.run_id, now, events, escalate)
        pending = self._to_derive(result, ageing)
        apply: list[Correction] = []
        self._holding = False
        for correction in propose_corrections(snapshot, pending, run_id=result.run_id):
            self._decide(correction, now, withheld, events, apply, escalate)
        if not self._holding:
            self._held = None
        return Decisions(tuple(events), tuple(apply), tuple(escalate))

    def applied(self, correction: Correction, outcome: ApplyOutcome, now: dt.datetime) -> Decisions:
        """The book's `apply_correction` returned, failed, or did not answer in time."""
        memory = self._memory.get(correction.break_id)
        if memory is None or memory.applied != correction or memory.stage is not Stage.APPLYING:
            logger.warning("An application of correction %s was not expected", correction.correction_id)
            return Decisions()
        if outcome.timed_out:
            memory.stage = Stage.UNKNOWN
            reason = f"{outcome.error}: whether it changed the book is unknown until it returns"
            return Decisions((self._event(CorrectionStatus.UNKNOWN, correction, now, memory.severity, reason=reason),))
        return self._ended(memory, correction, outcome.error, outcome.changed, now, CorrectionStatus.APPLIED)

    def landed(self, correction: Correction, error: str | None, now: dt.datetime) -> Decisions:
        """An application that had not answered in time returned after all (`error` None) or raised."""
        memory = self._memory.get(correction.break_id)
        if memory is None or memory.applied != correction or memory.stage is not Stage.UNKNOWN:
            logger.warning("A late answer of correction %s was not expected", correction.correction_id)
            return Decisions()
        reason = None if error is None else f"it answered late: {error}"
        return self._ended(memory, correction, reason, None, now, CorrectionStatus.APPLIED_LATE)

    def verified(
        self, corrections: Iterable[Correction], result: ReconciliationResult | None, now: dt.datetime
    ) -> Decisions:
        """The run asked for after applying `corrections` ended with `result` (None: it could
        not be asked for). A run that failed, or is suspect, leaves the verdict to the next
        completed run."""
        events: list[CorrectionEvent] = []
        escalate: list[UUID] = []
        found = {} if result is None else {d.key: d for d in result.discrepancies}
        for correction in corrections:
            memory = self._memory.get(correction.break_id)
            if memory is None or memory.stage is not Stage.VERIFYING or memory.applied != correction:
                continue
            if result is None or result.error is not None or result.suspect is not None:
                memory.awaiting_run = True
                continue
            self._judge(memory, found, result.run_id, now, events, escalate)
        return Decisions(tuple(events), escalate=tuple(escalate))

    def _ended(
        self,
        memory: _Memory,
        correction: Correction,
        error: str | None,
        changed: str | None,
        now: dt.datetime,
        applied: CorrectionStatus,
    ) -> Decisions:
        """An application ended: applied (then verified by a run read after now) or failed."""
        self._settled_at = now if self._settled_at is None else max(self._settled_at, now)
        if error is None:
            memory.stage = Stage.VERIFYING
            return Decisions((self._event(applied, correction, now, memory.severity),))
        reason = error if changed is None else f"{error}; the book reports it changed: {changed}"
        event = self._event(CorrectionStatus.FAILED, correction, now, memory.severity, reason=reason)
        if memory.ended:
            del self._memory[correction.break_id]
        else:
            memory.stage, memory.applied, memory.confirmed = Stage.OPEN, None, None
        return Decisions((event,))

    def _to_derive(self, result: ReconciliationResult, ageing: AgeingUpdate) -> list[tuple[Discrepancy, UUID, int]]:
        """The breaks whose correction is to be proposed or confirmed now."""
        pending = []
        confirm_after = self._policy.confirm_after_runs
        for discrepancy, sighting in zip(result.discrepancies, ageing.sightings, strict=True):
            if discrepancy.type not in self._policy.types or sighting.break_id in self._blocked:
                continue
            explanation = discrepancy.explanation
            if self._policy.unexplained == "leave" and explanation is not None and explanation.verdict != "explained":
                continue
            memory = self._memory.get(sighting.break_id)
            if memory is None:
                memory = self._memory[sighting.break_id] = _Memory(sighting.severity)
            memory.severity = sighting.severity
            if memory.stage is not Stage.OPEN:
                continue
            figures = (discrepancy.local_value, discrepancy.broker_value)
            confirmed = sighting.consecutive_runs >= confirm_after
            if memory.proposed != figures or (confirmed and (memory.confirmed != figures or memory.held)):
                pending.append((discrepancy, sighting.break_id, sighting.consecutive_runs))
        return pending

    def _decide(
        self,
        correction: Correction,
        now: dt.datetime,
        withheld: str | None,
        events: list[CorrectionEvent],
        apply: list[Correction],
        escalate: list[UUID],
    ) -> None:
        memory = self._memory[correction.break_id]
        figures = (correction.local_value, correction.broker_value)
        if memory.proposed != figures:
            memory.proposed = figures
            events.append(self._event(CorrectionStatus.PROPOSED, correction, now, memory.severity))
        if correction.consecutive_runs < self._policy.confirm_after_runs:
            return
        if memory.confirmed != figures:
            memory.confirmed, memory.held = figures, None
            refusal = correction.refusal(self._policy)
            if refusal is not None:
                events.append(
                    self._event(CorrectionStatus.REFUSED, correction, now, DiscrepancySeverity.CRITICAL, reason=refusal)
                )
                escalate.append(correction.break_id)
                return
            events.append(self._event(CorrectionStatus.CONFIRMED, correction, now, memory.severity))
        elif memory.held is None:
            return
        if self._policy.mode == "propose":
            return
        held = withheld or (None if self._budget is None else self._budget.refusal(correction, now))
        if held is not None:
            if self._held is None:
                events.append(self._event(CorrectionStatus.HELD, correction, now, memory.severity, reason=held))
            memory.held = self._held = held
            self._holding = True
            return
        if self._budget is not None:
            self._budget.spend(correction, now)
        memory.stage, memory.applied, memory.held = Stage.APPLYING, correction, None
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
