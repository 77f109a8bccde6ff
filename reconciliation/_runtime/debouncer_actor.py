"""The fill debouncer, and the service's entry actor (`service.ref`).

Fills are the one hot message: the execution engine tells every one. They stop here,
one actor hop from the engine, and a burst of them becomes one post-fill run request.
Everything else told or asked of `service.ref` (on-demand requests, health) is the
supervisor's, and is handed to it.

The entry actor cannot be restarted — the engine holds its ref — so it never dies of
an error of its own: it logs it, reports it to the supervisor, forgets the bursts it
was debouncing, and goes on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from reconciliation._domain.debounce import DebounceWindow
from reconciliation._domain.error_text import describe_error
from reconciliation._domain.models import OrderFill
from reconciliation._domain.triggers import PostFill
from reconciliation._runtime.actor_base import FollowingFuture, PipelineActor, tell
from reconciliation._runtime.messages import ActorCrashed, DebounceDue, PeersChanged, RunRequested

if TYPE_CHECKING:
    import pykka

    from reconciliation._domain.models import ReconciliationConfig
    from reconciliation._runtime.clock import Clock, TimerHandle
    from reconciliation._runtime.messages import Peers

__all__ = ["FillDebouncer"]

logger = logging.getLogger(__name__)


class FillDebouncer(PipelineActor):
    role = "debouncer"

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return FollowingFuture()

    def __init__(
        self,
        supervisor: pykka.ActorRef[Any],
        peers: Peers | None,
        *,
        config: ReconciliationConfig,
        clock: Clock,
    ) -> None:
        super().__init__(supervisor, peers)
        self._config = config
        self._clock = clock
        self._enabled = config.enabled
        self._monotonic = clock.monotonic
        self._windows: dict[str, DebounceWindow] = {}
        self._timers: dict[str, TimerHandle] = {}

    def on_receive(self, message: Any) -> Any:
        try:
            if type(message) is OrderFill:
                self._on_fill(message)
                return None
            if isinstance(message, DebounceDue):
                self._on_due(message.account_id)
                return None
            if isinstance(message, PeersChanged):
                self.peers = message.peers
                return None
            return self.supervisor.ask(message, block=False)
        except Exception as exc:  # noqa: BLE001 - the entry outlives its own mistakes
            self._recover(exc)
            return None

    def _on_fill(self, fill: OrderFill) -> None:
        """The hot path: one per fill the engine tells, so it does as little as it can."""
        if not self._enabled:
            return
        window = self._windows.get(fill.account_id)
        if window is None:
            window = self._windows[fill.account_id] = DebounceWindow(
                self._config.post_fill_delay_seconds, self._config.post_fill_max_wait_seconds
            )
        if window.add(fill, self._monotonic()):
            self._arm(fill.account_id, window)

    def _on_due(self, account_id: str) -> None:
        window = self._windows.get(account_id)
        if window is None:
            return
        fill = window.take_if_due(self._monotonic())
        if fill is None:
            self._arm(account_id, window)
            return
        trigger = PostFill(order_id=fill.order_id, fill_id=fill.fill_id, symbol=fill.symbol)
        tell(self.peers.scheduler if self.peers else None, RunRequested(account_id, trigger))

    def _arm(self, account_id: str, window: DebounceWindow) -> None:
        due = window.due_at()
        if due is None:
            return
        me = self.actor_ref
        self._timers[account_id] = self._clock.call_later(
            due - self._monotonic(), lambda: tell(me, DebounceDue(account_id))
        )

    def _recover(self, error: Exception) -> None:
        logger.error(
            "The debouncer failed (%s); it forgets the bursts it was debouncing and goes on",
            describe_error(error),
            exc_info=error,
        )
        self._cancel_timers()
        self._windows.clear()
        tell(self.supervisor, ActorCrashed(self.role, describe_error(error), None))

    def on_stop(self) -> None:
        self._cancel_timers()

    def _cancel_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
