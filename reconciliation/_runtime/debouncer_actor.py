"""The fill debouncer, the actor behind the service's entry (`service.ref`, see `entry`).

Fills are the one hot message: the execution engine tells every one. They stop here,
one actor hop from the engine, and a burst of them becomes one post-fill run request
(the rule is `_domain.debounce`). An on-demand `ReconcileRequest` is handed to the
scheduler, and the asker gets the run's result.
"""

from __future__ import annotations

import concurrent.futures
import logging
from typing import TYPE_CHECKING, Any

from reconciliation._domain.debounce import DebounceWindow
from reconciliation._domain.models import OrderFill, ReconciliationResult
from reconciliation._domain.triggers import OnDemand, PostFill
from reconciliation._runtime.actor_base import ResilientActor, tell
from reconciliation._runtime.entry import Refusal, check_request
from reconciliation._runtime.messages import DebounceDue, RunRequested

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pykka

    from reconciliation._domain.models import ReconciliationConfig
    from reconciliation._runtime.clock import Clock, TimerHandle
    from reconciliation._runtime.health import HealthBoard

__all__ = ["DebouncerActor"]

logger = logging.getLogger(__name__)

MAX_LOGGED_UNKNOWN_ACCOUNTS = 100
"""Fills for unknown accounts are logged once per account, for this many accounts."""


class DebouncerActor(ResilientActor):
    component = "debouncer"

    def __init__(
        self,
        *,
        accounts: Mapping[str, ReconciliationConfig],
        scheduler: pykka.ActorRef[Any],
        board: HealthBoard,
        clock: Clock,
    ) -> None:
        super().__init__(board=board, clock=clock)
        self.accounts = accounts
        self._scheduler = scheduler
        self._monotonic = clock.monotonic
        self._windows: dict[str, DebounceWindow] = {}
        self._timers: dict[str, TimerHandle] = {}
        self._refused_fills = 0
        self._unknown_logged: set[str] = set()

    def handle(self, message: Any) -> Any:
        if type(message) is OrderFill:
            self._on_fill(message)
            return None
        if isinstance(message, DebounceDue):
            self._on_due(message.account_id)
            return None
        try:
            check_request(message, self.accounts)
        except (TypeError, ValueError) as refused:
            logger.warning("The reconciliation service refused a message: %s", refused)
            return Refusal(refused)
        if isinstance(message, OrderFill):
            self._on_fill(message)
            return None
        reply: concurrent.futures.Future[ReconciliationResult] = concurrent.futures.Future()
        self._scheduler.tell(RunRequested(message.account_id, OnDemand(message.requested_by), reply))
        return reply

    def _on_fill(self, fill: OrderFill) -> None:
        """The hot path: one per fill the engine tells, so it does as little as it can."""
        window = self._windows.get(fill.account_id)
        if window is None:
            config = self.accounts.get(fill.account_id)
            if config is None:
                self._refuse(fill)
                return
            if not config.enabled:
                return
            window = self._windows[fill.account_id] = DebounceWindow(
                config.post_fill_delay_seconds, config.post_fill_max_wait_seconds
            )
        if window.add(fill, self._monotonic()):
            self._arm(fill.account_id, window)

    def _refuse(self, fill: OrderFill) -> None:
        """A fill for an account this service does not reconcile: counted, no state kept."""
        self._refused_fills += 1
        self._board.count("refused_fills", self._refused_fills)
        if len(self._unknown_logged) < MAX_LOGGED_UNKNOWN_ACCOUNTS and fill.account_id not in self._unknown_logged:
            self._unknown_logged.add(fill.account_id)
            logger.warning(
                "Refused fill %s for account %r: this service reconciles %s (further fills for it are "
                "counted in health, not logged)",
                fill.fill_id,
                fill.account_id[:100],
                ", ".join(sorted(self.accounts)[:5]),
            )

    def _on_due(self, account_id: str) -> None:
        window = self._windows.get(account_id)
        if window is None:
            return
        fill = window.take_if_due(self._monotonic())
        if fill is None:
            self._arm(account_id, window)
            return
        trigger = PostFill(order_id=fill.order_id, fill_id=fill.fill_id, symbol=fill.symbol)
        self._scheduler.tell(RunRequested(account_id, trigger))

    def _arm(self, account_id: str, window: DebounceWindow) -> None:
        """Have the burst's run requested when it is due. A burst due already (a delay of
        0) needs no timer: its run is requested now if no fill waits in the inbox, else
        once the fills queued meanwhile have joined it (a `DebounceDue` behind them)."""
        due = window.due_at()
        if due is None:
            return
        me = self.actor_ref
        delay = due - self._monotonic()
        if delay > 0:
            self._timers[account_id] = self._clock.call_later(delay, lambda: tell(me, DebounceDue(account_id)))
        elif self.actor_inbox.empty():
            self._on_due(account_id)
        else:
            me.tell(DebounceDue(account_id))

    def fail_run(self, message: Any, reason: str) -> None:
        """A failure on a fill: forget that account's burst rather than keep a broken one."""
        if isinstance(message, OrderFill | DebounceDue):
            self._windows.pop(message.account_id, None)
            timer = self._timers.pop(message.account_id, None)
            if timer is not None:
                timer.cancel()
            logger.error("The debouncer forgot the open burst of %s: %s", message.account_id, reason)

    def stopping(self) -> None:
        open_bursts = sum(1 for window in self._windows.values() if window.is_open)
        if open_bursts:
            logger.info("Stopping with %d post-fill runs still debouncing: they will not run", open_bursts)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
