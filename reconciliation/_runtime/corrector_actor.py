"""The corrector: proposes, applies and checks corrections of the local book
(docs/architecture.md, "Auto-correction: the corrector").

The comparator tells it every finished run of the accounts that have a `CorrectionPolicy`;
each account's `CorrectionTracker` decides, and the corrector carries the decisions out:
every event goes to the account's delivery actors; confirmed corrections are applied one
at a time per account through `links.apply` (within `CorrectionBudget`s, and only while
`links.may_apply` says this runtime is the account's one writer); once they are done,
one run is asked for through `links.verify` to judge them; breaks to escalate go through
`links.escalate`. The links reach actors upstream, bound after every actor has started;
nothing here waits on another actor.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs

from reconciliation._domain.correcting import ApplyOutcome, CorrectionBudget, CorrectionTracker, Decisions
from reconciliation._domain.correction import Correction
from reconciliation._domain.error_text import describe_error
from reconciliation._domain.fencing import Fence
from reconciliation._domain.models import ReconciliationResult
from reconciliation._domain.sinks import FinishedRun
from reconciliation._runtime.actor_base import ResilientActor, tell
from reconciliation._runtime.messages import Application, InFlight
from reconciliation._runtime.observers import PROCESS_OBSERVERS, Observers

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable, Mapping, Sequence

    from reconciliation._domain.models import CorrectionLimits, ReconciliationConfig
    from reconciliation._runtime.actor_base import Teller
    from reconciliation._runtime.clock import Clock
    from reconciliation._runtime.health import HealthBoard

__all__ = ["CorrectionLinks", "CorrectorActor"]

logger = logging.getLogger(__name__)

STOPPED_BEFORE = "the service stopped before it was applied"
STOPPED_DURING = "the service stopped before apply_correction answered"


@attrs.frozen
class CorrectionLinks:
    """How the corrector reaches upstream: apply a correction to its account's book, ask for
    a run of an account now, hold a break at CRITICAL; and whether this runtime may apply to
    an account now, given the lease the run that confirmed it was made under (None: it may;
    else why not: another runtime holds its lease, or this one holds a newer lease)."""

    apply: Callable[[Correction], Application]
    verify: Callable[[str], Future[ReconciliationResult]]
    escalate: Callable[[str, UUID], None]
    may_apply: Callable[[str, Fence | None], str | None] = lambda _account_id, _fence: None


@attrs.frozen
class _Ended:
    """An application answered (`outcome`), or, `late`, one that had not answered in time
    returned after all (`outcome.error`: None, or what it raised)."""

    correction: Correction
    outcome: ApplyOutcome
    late: bool = False


@attrs.frozen
class _Verified:
    account_id: str
    corrections: tuple[Correction, ...]
    result: ReconciliationResult | None


@attrs.define
class _Applications:
    """One account's corrections on their way to the book: one at a time, then one check."""

    waiting: collections.deque[Correction] = attrs.Factory(collections.deque)
    applying: Correction | None = None
    applied: list[Correction] = attrs.Factory(list)
    """Applied since the last check was asked for."""


class _Budgets:
    """An account's budget and, when the runtime has limits of its own, the runtime's."""

    def __init__(self, account: CorrectionBudget, runtime: CorrectionBudget | None) -> None:
        self._budgets = (account,) if runtime is None else (account, runtime)

    def refusal(self, correction: Correction, now: dt.datetime) -> str | None:
        return next((why for budget in self._budgets if (why := budget.refusal(correction, now))), None)

    def spend(self, correction: Correction, now: dt.datetime) -> None:
        for budget in self._budgets:
            budget.spend(correction, now)


class CorrectorActor(ResilientActor):
    component = "corrector"

    def __init__(  # noqa: PLR0913 - its collaborators, each a keyword
        self,
        *,
        accounts: Mapping[str, ReconciliationConfig],
        sinks: Mapping[str, Sequence[Teller]],
        links: CorrectionLinks,
        board: HealthBoard,
        clock: Clock,
        actor: str,
        blocked: Mapping[str, Iterable[UUID]],
        observers: Observers,
        limits: CorrectionLimits | None,
    ) -> None:
        """Corrects the `accounts` that have a `CorrectionPolicy`; `sinks` are each account's
        delivery actors; `actor` names this process in the events; `blocked` are the breaks
        each account must never correct again (from the audit store); `observers` are told
        every event, after `PROCESS_OBSERVERS`; `limits` bound what all accounts apply together."""
        super().__init__(board=board, clock=clock)
        shared = None if limits is None else CorrectionBudget(limits, scope="the runtime")
        self._trackers = {
            account_id: CorrectionTracker(
                config.correction,
                actor=actor,
                blocked=blocked.get(account_id, ()),
                budget=_Budgets(CorrectionBudget(config.correction.limits, scope=f"account {account_id}"), shared),
            )
            for account_id, config in accounts.items()
            if config.correction is not None
        }
        self._applications = {account_id: _Applications() for account_id in self._trackers}
        self._sinks = sinks
        self._links = links
        self._observers = observers
        self._checks = 0
        """Runs asked for to check applied corrections, whose verdict is not in yet."""
        self._idle: Future[None] | None = None
        """Set once the applications in progress are done and their checks' verdicts told."""
        self._fences: dict[str, Fence | None] = {}
        """The lease each account's last run was made under: its steps carry it."""

    def handle(self, message: Any) -> Any:
        if isinstance(message, FinishedRun):
            self._run_finished(message)
        elif isinstance(message, _Ended):
            self._application_ended(message)
        elif isinstance(message, _Verified):
            self._verified(message)
        elif isinstance(message, InFlight):  # what `Runtime.settle` waits for: see `_idle`
            return () if self._idle is None or self._idle.done() else (self._idle,)
        else:
            logger.warning("The corrector ignored an unexpected %s", type(message).__name__)
        return None

    def _run_finished(self, run: FinishedRun) -> None:
        account_id = run.result.account_id
        tracker = self._trackers.get(account_id)
        if tracker is None:
            return
        self._fences[account_id] = run.fence
        withheld = self._links.may_apply(account_id, run.fence) if tracker.policy.mode == "apply" else None
        decisions = tracker.observe(run.result, run.ageing, run.snapshot, self._clock.now(), withheld=withheld)
        self._carry_out(account_id, decisions)
        self._board.note("corrections_held", {a: t.held for a, t in self._trackers.items() if t.held})

    def _application_ended(self, ended: _Ended) -> None:
        correction, account_id = ended.correction, ended.correction.account_id
        applications, tracker = self._applications[account_id], self._trackers[account_id]
        now = self._clock.now()
        if not ended.late and applications.applying == correction:
            applications.applying = None
        if ended.outcome.error is None:
            applications.applied.append(correction)
        try:
            if ended.late:
                decisions = tracker.landed(correction, ended.outcome.error, now)
            else:
                decisions = tracker.applied(correction, ended.outcome, now)
            self._carry_out(account_id, decisions)
        finally:
            self._next(account_id)

    def _verified(self, message: _Verified) -> None:
        self._checks -= 1
        tracker = self._trackers[message.account_id]
        try:
            self._carry_out(
                message.account_id, tracker.verified(message.corrections, message.result, self._clock.now())
            )
        finally:
            self._settle_if_idle()

    def _carry_out(self, account_id: str, decisions: Decisions) -> None:
        fence = self._fences.get(account_id)
        for event in decisions.events:
            event = attrs.evolve(event, fence=fence)  # noqa: PLW2901 - the step as it leaves, under its lease
            PROCESS_OBSERVERS.correction_event(event)
            self._observers.correction_event(event)
            for sink in self._sinks[account_id]:
                sink.tell(event)
        for break_id in decisions.escalate:
            self._links.escalate(account_id, break_id)
        if decisions.apply:
            self._applications[account_id].waiting.extend(decisions.apply)
            self._next(account_id)

    def _next(self, account_id: str) -> None:
        """Apply the account's next waiting correction; when none waits, ask for the check."""
        applications = self._applications[account_id]
        if applications.applying is not None:
            return
        if not applications.waiting:
            if applications.applied:
                batch = tuple(applications.applied)
                applications.applied.clear()
                self._verify(account_id, batch)
            self._settle_if_idle()
            return
        correction = applications.waiting.popleft()
        applications.applying = correction
        if self._idle is None or self._idle.done():
            self._idle = Future()
        try:
            application = self._links.apply(correction)
        except Exception as error:  # noqa: BLE001 - the application failed; the break stays open
            application = Application()
            application.outcome.set_result(ApplyOutcome(error=describe_error(error)))
        me = self.actor_ref
        application.outcome.add_done_callback(lambda done: tell(me, _Ended(correction, done.result())))
        application.landed.add_done_callback(
            lambda done: tell(me, _Ended(correction, ApplyOutcome(error=done.result()), late=True))
        )

    def _verify(self, account_id: str, batch: tuple[Correction, ...]) -> None:
        self._checks += 1
        try:
            reply = self._links.verify(account_id)
        except Exception as error:  # noqa: BLE001 - no run now: the next completed run decides
            logger.warning(
                "The run checking %d corrections of %s could not be asked for (%s); the next run decides",
                len(batch),
                account_id,
                describe_error(error),
            )
            self._verified(_Verified(account_id, batch, None))
            return
        me = self.actor_ref
        reply.add_done_callback(
            lambda done: tell(
                me, _Verified(account_id, batch, None if done.cancelled() or done.exception() else done.result())
            )
        )

    def _settle_if_idle(self) -> None:
        idle = self._idle
        busy = self._checks or any(a.applying is not None or a.waiting for a in self._applications.values())
        if idle is not None and not idle.done() and not busy:
            idle.set_result(None)

    def stopping(self) -> None:
        """The corrections not applied yet are reported failed; nothing is applied any more."""
        now = self._clock.now()
        for account_id, applications in self._applications.items():
            tracker = self._trackers[account_id]
            unapplied = [(correction, ApplyOutcome(error=STOPPED_BEFORE)) for correction in applications.waiting]
            if applications.applying is not None:
                unapplied.insert(0, (applications.applying, ApplyOutcome(error=STOPPED_DURING, timed_out=True)))
            applications.waiting.clear()
            applications.applying = None
            for correction, outcome in unapplied:
                self._carry_out(account_id, tracker.applied(correction, outcome, now))
        if self._idle is not None and not self._idle.done():
            self._idle.set_result(None)
