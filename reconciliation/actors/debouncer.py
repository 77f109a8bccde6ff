"""The fill debouncer: turns a burst of fills into one post-fill run request."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from reconciliation.actors._base import PipelineActor, tell
from reconciliation.debounce import DebounceWindow
from reconciliation.messages import DebounceDue, RunRequested
from reconciliation.models import OrderFill
from reconciliation.triggers import PostFill

if TYPE_CHECKING:
    import pykka

    from reconciliation.clock import Clock, TimerHandle
    from reconciliation.messages import Peers
    from reconciliation.models import ReconciliationConfig

__all__ = ["FillDebouncer"]

logger = logging.getLogger(__name__)


class FillDebouncer(PipelineActor):
    role = "debouncer"

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
        if type(message) is OrderFill:
            self._on_fill(message)
            return None
        return super().on_receive(message)

    def handle(self, message: Any) -> Any:
        if isinstance(message, DebounceDue):
            self._on_due(message.account_id)
        else:
            logger.warning("The debouncer ignored an unexpected %s", type(message).__name__)

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
        fill = window.take_if_due(self._clock.monotonic())
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
            due - self._clock.monotonic(), lambda: tell(me, DebounceDue(account_id))
        )

    def on_stop(self) -> None:
        self._cancel_timers()

    def on_failure(self, *exc_info: Any) -> None:
        self._cancel_timers()
        super().on_failure(*exc_info)

    def _cancel_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
