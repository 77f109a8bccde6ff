"""The trigger scheduler: decides when each account runs, one run at a time.

It starts runs, coalesces the triggers that arrive while one is in flight into a single
follow-up, arms each account's periodic timer and each run's watchdog. With several
accounts, their first periodic runs are spread over the interval (see `spread_phases`),
so that accounts started together do not come due together for good. It never finishes
a run itself: a run ends at the comparator (see `comparator_actor`), which sets the
ticket's `outcome`; that wakes the askers and tells the scheduler `RunEnded`.

It starts a run only for an account this runtime owns (the lease actor tells it
`LeaseHeld` / `LeaseNotHeld`); the run carries the lease's fence to every sink. An
account held as standby is not reconciled: its triggers are answered with a failed
result that says who owns it, published nowhere (the owner publishes the account). When
the account is taken over, its startup run starts at once.
"""

from __future__ import annotations

import functools
import logging
import uuid
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import attrs

from reconciliation._domain.fencing import Fence
from reconciliation._domain.models import ReconciliationConfig, ReconciliationResult
from reconciliation._domain.triggers import Periodic, Startup, Trigger, most_specific
from reconciliation._runtime.actor_base import ResilientActor, tell
from reconciliation._runtime.clock import TimerHandle
from reconciliation._runtime.messages import (
    AbandonRun,
    FetchSnapshot,
    InFlight,
    LeaseHeld,
    LeaseNotHeld,
    PeriodicDue,
    RunEnded,
    RunRequested,
    RunTicket,
    WatchdogDue,
)
from reconciliation._runtime.results import failed_result

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    import pykka

    from reconciliation._runtime.clock import Clock
    from reconciliation._runtime.health import HealthBoard
    from reconciliation._runtime.lease_actor import Ownership

__all__ = ["WATCHDOG_GRACE_SECONDS", "SchedulerActor"]

logger = logging.getLogger(__name__)

WATCHDOG_GRACE_SECONDS = 10.0
"""How long past the broker timeout a run may take before it is abandoned as failed."""

STOPPED_REASON = "the service stopped before the run completed"


@attrs.define
class _AccountRuns:
    config: ReconciliationConfig
    in_flight: RunTicket | None = None
    watchdog: TimerHandle | None = None
    follow_up: Trigger | None = None
    follow_up_waiters: list[Future[ReconciliationResult]] = attrs.Factory(list)
    periodic: TimerHandle | None = None
    generation: int = 0
    advance: float = 0.0
    """How much sooner than `interval_seconds` the first periodic run is due (its phase)."""
    explained: bool = False
    """Whether its runs read the fills behind their breaks (both books say them)."""
    fence: Fence | None = None
    """The lease its runs are made under (None: runs without a lease, as a runtime given none)."""
    standby: str | None = None
    """Why the account is not reconciled here (`standby (owned by NAME)`); None: it is."""

    @property
    def next_periodic_seconds(self) -> float | None:
        """How long after a run's end the next periodic run is due (`_arm_periodic`); None without periodic runs."""
        return self.config.interval_seconds - self.advance if self.config.enabled else None

    @property
    def limit(self) -> float:
        """How long a run may take before the watchdog abandons it: the book calls' limit,
        the fills' when they are read, and the grace."""
        explaining = self.config.explanations.timeout_seconds if self.explained else 0.0
        return self.config.broker_timeout_seconds + explaining + WATCHDOG_GRACE_SECONDS


def spread_phases(accounts: Mapping[str, ReconciliationConfig]) -> dict[str, float]:
    """How much sooner each account's first periodic run is due: the k-th of n accounts
    with periodic runs (by id) by k/n of its interval, so their periodic runs are spread
    evenly over the interval instead of coming due together, as all would after the
    startup runs. One account is never advanced: its runs are `interval_seconds` apart."""
    periodic = sorted(account_id for account_id, config in accounts.items() if config.enabled)
    return {
        account_id: accounts[account_id].interval_seconds * k / len(periodic)
        for k, account_id in enumerate(periodic)
    }


class SchedulerActor(ResilientActor):
    component = "scheduler"

    def __init__(
        self,
        *,
        accounts: Mapping[str, ReconciliationConfig],
        fetcher: pykka.ActorRef[Any],
        comparator: pykka.ActorRef[Any],
        board: HealthBoard,
        clock: Clock,
        explained: Collection[str] = (),
        ownership: Mapping[str, Ownership] | None = None,
    ) -> None:
        """`explained`: the accounts whose runs read the fills behind their breaks.
        `ownership`: each account's lease at start — owned, unconfirmed (reconciled without a
        fence) or why it is held as standby (None: every account is reconciled here, without
        a lease)."""
        super().__init__(board=board, clock=clock)
        phases = spread_phases(accounts)
        owned = ownership or {}
        self._accounts: dict[str, _AccountRuns] = {}
        for account_id, config in accounts.items():
            lease = owned.get(account_id)
            self._accounts[account_id] = _AccountRuns(
                config,
                advance=phases.get(account_id, 0.0),
                explained=account_id in explained and config.explanations.enabled,
                fence=lease if isinstance(lease, Fence) else None,
                standby=lease if isinstance(lease, str) else None,
            )
        self._fetcher = fetcher
        self._comparator = comparator
        self._origin = 0.0
        """When the phases count from (`started`)."""

    def started(self) -> None:
        self._origin = self._clock.monotonic()
        for account_id, runs in self._accounts.items():
            self._arm_periodic(account_id, runs)

    def handle(self, message: Any) -> Any:
        if isinstance(message, RunRequested):
            self._request(message)
        elif isinstance(message, RunEnded):
            self._ended(message)
        elif isinstance(message, WatchdogDue):
            self._watchdog(message)
        elif isinstance(message, PeriodicDue):
            runs = self._accounts[message.account_id]
            if message.generation == runs.generation:
                self._request(RunRequested(message.account_id, Periodic()))
        elif isinstance(message, LeaseHeld):
            self._lease_held(message)
        elif isinstance(message, LeaseNotHeld):
            self._lease_not_held(message)
        elif isinstance(message, InFlight):
            return self._in_flight()
        else:
            logger.warning("The scheduler ignored an unexpected %s", type(message).__name__)
        return None

    def _lease_held(self, held: LeaseHeld) -> None:
        runs = self._accounts[held.account_id]
        taken_over, was_owned = runs.standby is not None, runs.fence is not None
        runs.fence, runs.standby = held.fence, None
        if held.fence is None:
            if was_owned or taken_over:
                logger.warning(
                    "The lease of %s cannot be confirmed (Redis does not answer): it is reconciled "
                    "without one, and nothing of it is corrected, until Redis answers",
                    held.account_id,
                    extra={"account_id": held.account_id},
                )
        elif taken_over or not was_owned:
            logger.info(
                "This runtime now owns %s (lease token %d): reconciling it",
                held.account_id,
                held.fence.token,
                extra={"account_id": held.account_id},
            )
        if taken_over and runs.config.enabled:
            self._request(RunRequested(held.account_id, Startup()))

    def _lease_not_held(self, lost: LeaseNotHeld) -> None:
        runs = self._accounts[lost.account_id]
        if runs.standby is None:
            logger.warning(
                "%s is held as standby: %s; it is not reconciled here",
                lost.account_id,
                lost.why,
                extra={"account_id": lost.account_id},
            )
        runs.standby, runs.fence = lost.why, None
        self._arm_periodic(lost.account_id, runs)

    def _in_flight(self) -> tuple[Future[ReconciliationResult], ...]:
        """The outcomes to wait for: each run in flight, and each follow-up's first waiter
        (a follow-up without waiters starts when its run ends, so the run's outcome covers it)."""
        outcomes: list[Future[ReconciliationResult]] = []
        for runs in self._accounts.values():
            if runs.in_flight is not None:
                outcomes.append(runs.in_flight.outcome)
            outcomes.extend(runs.follow_up_waiters)
        return tuple(outcomes)

    def _request(self, request: RunRequested) -> None:
        runs = self._accounts[request.account_id]
        waiters = [request.reply] if request.reply is not None else []
        if runs.in_flight is None:
            self._start(request.account_id, runs, request.trigger, waiters)
            return
        runs.follow_up = most_specific(runs.follow_up, request.trigger)
        runs.follow_up_waiters.extend(waiters)

    def _start(
        self,
        account_id: str,
        runs: _AccountRuns,
        trigger: Trigger,
        waiters: list[Future[ReconciliationResult]],
    ) -> None:
        if runs.standby is not None:
            self._answer_standby(account_id, runs.standby, trigger, waiters)
            return
        if isinstance(trigger, Startup) and runs.periodic is not None:  # its end arms the first periodic run
            runs.periodic.cancel()
            runs.periodic = None
        ticket = self._ticket(account_id, trigger, runs.fence)
        me = self.actor_ref
        monotonic = self._clock.monotonic
        # Before the waiters: whoever waited on the run and acts next finds RunEnded queued first.
        ticket.outcome.add_done_callback(lambda _: tell(me, RunEnded(account_id, ticket.run_id, monotonic())))
        _answer_with(ticket, waiters)
        runs.in_flight = ticket
        runs.watchdog = self._clock.call_later(runs.limit, lambda: tell(me, WatchdogDue(account_id, ticket.run_id)))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "Run %s for %s started (%s)",
                ticket.run_id,
                account_id,
                trigger.context()["trigger"],
                extra={"run_id": str(ticket.run_id), "account_id": account_id},
            )
        self._fetcher.tell(FetchSnapshot(ticket))

    def _ticket(self, account_id: str, trigger: Trigger, fence: Fence | None = None) -> RunTicket:
        runs = self._accounts.get(account_id)
        return RunTicket(
            run_id=uuid.uuid4(),
            account_id=account_id,
            trigger=trigger,
            started_at=self._clock.now(),
            started=self._clock.monotonic(),
            next_periodic_seconds=None if runs is None else runs.next_periodic_seconds,
            fence=fence,
        )

    def _answer_standby(
        self, account_id: str, why: str, trigger: Trigger, waiters: list[Future[ReconciliationResult]]
    ) -> None:
        """A trigger of an account held as standby: no run; an asker hears why, nobody else."""
        if not waiters:
            return
        result = failed_result(
            self._ticket(account_id, trigger), f"not reconciled here: {why}", self._clock.monotonic()
        )
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(result)

    def _ended(self, ended: RunEnded) -> None:
        runs = self._accounts[ended.account_id]
        if runs.in_flight is None or runs.in_flight.run_id != ended.run_id:
            return
        if runs.watchdog is not None:
            runs.watchdog.cancel()
        first_periodic = runs.advance and isinstance(runs.in_flight.trigger, Periodic)
        runs.in_flight, runs.watchdog = None, None
        self._arm_periodic(ended.account_id, runs, since=ended.ended)
        if first_periodic:  # its next run is at its phase; from then on, an interval after each run
            runs.advance = 0.0
        if runs.follow_up is not None:
            trigger, waiters = runs.follow_up, runs.follow_up_waiters
            runs.follow_up, runs.follow_up_waiters = None, []
            self._start(ended.account_id, runs, trigger, waiters)

    def _watchdog(self, due: WatchdogDue) -> None:
        runs = self._accounts[due.account_id]
        if runs.in_flight is None or runs.in_flight.run_id != due.run_id:
            return
        self._comparator.tell(
            AbandonRun(runs.in_flight, f"the run produced no result within {runs.limit:g} s and was abandoned")
        )

    def _arm_periodic(self, account_id: str, runs: _AccountRuns, since: float | None = None) -> None:
        """The next periodic run `interval_seconds` after `since` (the end of the last run;
        by default now); until its first periodic run has ended, the next time its phase comes round
        (counted from the scheduler's start), so that runs longer than the phase, such as
        the startup runs of many accounts, do not bunch the accounts up: runs never pile up.
        None for an account held as standby: its owner runs it."""
        if runs.periodic is not None:
            runs.periodic.cancel()
            runs.periodic = None
        if not runs.config.enabled or runs.standby is not None:
            return
        runs.generation += 1
        message = PeriodicDue(account_id, runs.generation)
        me = self.actor_ref
        interval = runs.config.interval_seconds
        if runs.advance:  # the first periodic run keeps its phase however long the runs before it took
            delay = (self._origin + interval - runs.advance - self._clock.monotonic()) % interval or interval
        else:
            delay = interval - (0.0 if since is None else self._clock.monotonic() - since)
        runs.periodic = self._clock.call_later(delay, lambda: tell(me, message))

    def fail_run(self, message: Any, reason: str) -> None:
        """A request that could not be scheduled is still a run: reported failed, asker answered."""
        if isinstance(message, RunRequested):
            ticket = self._ticket(message.account_id, message.trigger)
            _answer_with(ticket, [message.reply] if message.reply else [])
            self._comparator.tell(AbandonRun(ticket, reason))

    def stopping(self) -> None:
        """Every run still held is finished as failed, and every asker answered."""
        for account_id, runs in self._accounts.items():
            for timer in (runs.periodic, runs.watchdog):
                if timer is not None:
                    timer.cancel()
            if runs.in_flight is not None:
                self._comparator.tell(AbandonRun(runs.in_flight, STOPPED_REASON))
            if runs.follow_up is not None and runs.follow_up_waiters:
                ticket = self._ticket(account_id, runs.follow_up)
                _answer_with(ticket, runs.follow_up_waiters)
                self._comparator.tell(AbandonRun(ticket, STOPPED_REASON))


def _answer_with(ticket: RunTicket, waiters: list[Future[ReconciliationResult]]) -> None:
    """Each waiter receives the run's result once it is known."""
    for waiter in waiters:
        ticket.outcome.add_done_callback(functools.partial(_answer, waiter))


def _answer(waiter: Future[ReconciliationResult], outcome: Future[ReconciliationResult]) -> None:
    if not waiter.done():
        waiter.set_result(outcome.result())
