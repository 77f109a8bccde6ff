"""The trigger scheduler: decides when each account runs, one run at a time.

It owns every run from request to result: it starts runs, coalesces triggers that
arrive while one is in flight into a single follow-up, answers the askers, hands each
result to the publisher exactly once, and fails a run nobody finished in time.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import attrs

from reconciliation._domain.breaks import BreakState
from reconciliation._domain.models import ReconciliationResult
from reconciliation._domain.triggers import Periodic, Trigger, most_specific
from reconciliation._runtime.actor_base import PipelineActor, tell
from reconciliation._runtime.clock import TimerHandle
from reconciliation._runtime.messages import (
    FetchSnapshot,
    PeriodicDue,
    Publish,
    Record,
    RunAborted,
    RunFinished,
    RunRequested,
    RunTicket,
    WatchdogDue,
)
from reconciliation._runtime.results import failed_result

if TYPE_CHECKING:
    from uuid import UUID

    import pykka

    from reconciliation._domain.ageing import BreakTracker
    from reconciliation._domain.models import ReconciliationConfig
    from reconciliation._runtime.clock import Clock
    from reconciliation._runtime.messages import Peers

__all__ = ["WATCHDOG_GRACE_SECONDS", "HaltCallback", "TriggerScheduler"]

logger = logging.getLogger(__name__)

HaltCallback = Callable[[BreakState, ReconciliationResult], object]
"""Called with the confirmed break and the run that confirmed it; must be quick (tell an actor)."""

WATCHDOG_GRACE_SECONDS = 10.0
"""How long past the broker timeout a run may take before it is reported failed."""


@attrs.define
class _AccountRuns:
    in_flight: RunTicket | None = None
    waiters: list[Future[ReconciliationResult]] = attrs.Factory(list)
    watchdog: TimerHandle | None = None
    follow_up: Trigger | None = None
    follow_up_waiters: list[Future[ReconciliationResult]] = attrs.Factory(list)


class TriggerScheduler(PipelineActor):
    role = "scheduler"

    def __init__(
        self,
        supervisor: pykka.ActorRef[Any],
        peers: Peers | None,
        *,
        config: ReconciliationConfig,
        clock: Clock,
        tracker: BreakTracker,
        on_halt: HaltCallback | None = None,
    ) -> None:
        super().__init__(supervisor, peers)
        self._config = config
        self._clock = clock
        self._tracker = tracker
        self._on_halt = on_halt
        self._accounts: dict[str, _AccountRuns] = {}
        self._periodic: TimerHandle | None = None
        self._generation = 0

    def on_start(self) -> None:
        self._arm_periodic()

    def handle(self, message: Any) -> Any:
        if isinstance(message, RunRequested):
            self._request(message)
        elif isinstance(message, RunFinished):
            self._finish(message.result)
        elif isinstance(message, RunAborted):
            self._fail(message.run_id, message.reason)
        elif isinstance(message, WatchdogDue):
            limit = self._config.broker_timeout_seconds + WATCHDOG_GRACE_SECONDS
            self._fail(message.run_id, f"the run produced no result within {limit:g} s and was abandoned")
        elif isinstance(message, PeriodicDue):
            if message.generation == self._generation:
                self._request(RunRequested(message.account_id, Periodic()))
        else:
            logger.warning("The scheduler ignored an unexpected %s", type(message).__name__)

    def _request(self, request: RunRequested) -> None:
        runs = self._accounts.setdefault(request.account_id, _AccountRuns())
        if runs.in_flight is None:
            self._start(request.account_id, runs, request.trigger, [request.reply] if request.reply else [])
            return
        runs.follow_up = most_specific(runs.follow_up, request.trigger)
        if request.reply is not None:
            runs.follow_up_waiters.append(request.reply)

    def _start(
        self,
        account_id: str,
        runs: _AccountRuns,
        trigger: Trigger,
        waiters: list[Future[ReconciliationResult]],
    ) -> None:
        ticket = RunTicket(
            run_id=uuid.uuid4(),
            account_id=account_id,
            trigger=trigger,
            started_at=self._clock.now(),
            started=self._clock.monotonic(),
        )
        runs.in_flight, runs.waiters = ticket, waiters
        me = self.actor_ref
        runs.watchdog = self._clock.call_later(
            self._config.broker_timeout_seconds + WATCHDOG_GRACE_SECONDS,
            lambda: tell(me, WatchdogDue(ticket.run_id)),
        )
        logger.debug("Run %s for %s started (%s)", ticket.run_id, account_id, trigger.context()["trigger"])
        if not tell(self.peers.fetcher if self.peers else None, FetchSnapshot(ticket)):
            self._fail(ticket.run_id, "the snapshot fetcher is not running")

    def _fail(self, run_id: UUID, reason: str) -> None:
        for runs in self._accounts.values():
            if runs.in_flight is not None and runs.in_flight.run_id == run_id:
                self._finish(failed_result(runs.in_flight, reason, self._clock.monotonic()))
                return

    def _finish(self, result: ReconciliationResult) -> None:
        runs = self._accounts.get(result.account_id)
        if runs is None or runs.in_flight is None or runs.in_flight.run_id != result.run_id:
            logger.debug("Ignored a late result for run %s: it was already reported", result.run_id)
            return
        ageing = self._tracker.observe(result)
        result = ageing.escalate(result)
        if runs.watchdog is not None:
            runs.watchdog.cancel()
        waiters = runs.waiters
        runs.in_flight, runs.waiters, runs.watchdog = None, [], None
        if result.account_id == self._config.account_id:
            self._arm_periodic()
        if not tell(self.peers.publisher if self.peers else None, Publish(result, ageing)):
            logger.error(
                "Run %s of %s was not published: the publisher is not running",
                result.run_id,
                result.account_id,
            )
        if self.peers is not None and self.peers.audit is not None:
            tell(self.peers.audit, Record(result, ageing))
        for waiter in waiters:
            _answer(waiter, result)
        for confirmed in ageing.halts:
            self._halt(confirmed, result)
        if runs.follow_up is not None:
            trigger, follow_up_waiters = runs.follow_up, runs.follow_up_waiters
            runs.follow_up, runs.follow_up_waiters = None, []
            self._start(result.account_id, runs, trigger, follow_up_waiters)

    def _halt(self, confirmed: BreakState, result: ReconciliationResult) -> None:
        logger.critical(
            "Kill switch: %s%s on %s has persisted %d runs since %s (run %s)",
            confirmed.type.value,
            f" {confirmed.symbol}" if confirmed.symbol else "",
            confirmed.account_id,
            confirmed.consecutive_runs,
            confirmed.first_seen.isoformat(),
            result.run_id,
        )
        if self._on_halt is None:
            return
        try:
            self._on_halt(confirmed, result)
        except Exception:
            logger.exception("The host's kill-switch callback failed for run %s", result.run_id)

    def _arm_periodic(self) -> None:
        """Next periodic run `interval_seconds` after now: runs never pile up."""
        if self._periodic is not None:
            self._periodic.cancel()
            self._periodic = None
        if not self._config.enabled:
            return
        self._generation += 1
        message = PeriodicDue(self._config.account_id, self._generation)
        me = self.actor_ref
        self._periodic = self._clock.call_later(self._config.interval_seconds, lambda: tell(me, message))

    def on_stop(self) -> None:
        self._abandon_all("the service stopped before the run completed")

    def on_failure(self, *exc_info: Any) -> None:
        reason = f"the scheduler failed: {exc_info[1]!r}"
        request = self.current_message
        if isinstance(request, RunRequested) and request.reply is not None and not request.reply.done():
            self._accounts.setdefault(request.account_id, _AccountRuns()).follow_up_waiters.append(
                request.reply
            )
            self._accounts[request.account_id].follow_up = most_specific(
                self._accounts[request.account_id].follow_up, request.trigger
            )
        self._abandon_all(reason)
        super().on_failure(*exc_info)

    def _abandon_all(self, reason: str) -> None:
        """Answer and publish every run this scheduler still holds; cancel its timers."""
        if self._periodic is not None:
            self._periodic.cancel()
        now = self._clock.monotonic()
        publisher = self.peers.publisher if self.peers else None
        for account_id, runs in self._accounts.items():
            if runs.watchdog is not None:
                runs.watchdog.cancel()
            pending: list[tuple[RunTicket, list[Future[ReconciliationResult]]]] = []
            if runs.in_flight is not None:
                pending.append((runs.in_flight, runs.waiters))
            if runs.follow_up is not None and runs.follow_up_waiters:
                ticket = RunTicket(uuid.uuid4(), account_id, runs.follow_up, self._clock.now(), now)
                pending.append((ticket, runs.follow_up_waiters))
            for ticket, waiters in pending:
                result = failed_result(ticket, reason, now)
                tell(publisher, Publish(result))
                for waiter in waiters:
                    _answer(waiter, result)
        self._accounts.clear()


def _answer(waiter: Future[ReconciliationResult], result: ReconciliationResult) -> None:
    if not waiter.done():
        waiter.set_result(result)
