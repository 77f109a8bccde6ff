"""The debouncer actor: a burst of fills is one post-fill run carrying its last fill; a
burst due at once (no delay) needs no timer."""

from __future__ import annotations

import threading
from typing import Any

import pykka
from helpers import eventually
from service_fixtures import ACCOUNT, make_fill

from reconciliation._domain.models import ReconciliationConfig
from reconciliation._domain.triggers import PostFill
from reconciliation._runtime.actor_base import actor_of
from reconciliation._runtime.clock import ManualClock
from reconciliation._runtime.debouncer_actor import DebouncerActor
from reconciliation._runtime.health import HealthBoard
from reconciliation._runtime.messages import Barrier, RunRequested


class Scheduler(pykka.ThreadingActor):
    """Records the run requests; asked anything, answers those it has had."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[RunRequested] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RunRequested):
            self.requests.append(message)
        return list(self.requests)


def debouncer(clock: ManualClock, delay: float) -> tuple[pykka.ActorRef[Any], pykka.ActorRef[Any]]:
    scheduler = Scheduler.start()
    config = ReconciliationConfig(ACCOUNT, post_fill_delay_seconds=delay, post_fill_max_wait_seconds=60)
    entry = DebouncerActor.start(accounts={ACCOUNT: config}, scheduler=scheduler, board=HealthBoard(), clock=clock)
    return entry, scheduler


def post_fill(request: RunRequested) -> tuple[str, str, str]:
    assert isinstance(request.trigger, PostFill)
    return request.trigger.order_id, request.trigger.fill_id, request.trigger.symbol


def test_a_fill_with_no_delay_requests_its_run_without_a_timer() -> None:
    clock = ManualClock()
    entry, scheduler = debouncer(clock, delay=0)
    entry.ask(make_fill(1, symbol="MSFT"), timeout=5)
    requests = scheduler.ask("requests", timeout=5)
    assert [post_fill(request) for request in requests] == [("ORD-1", "FILL-1", "MSFT")]
    assert clock.pending() == 0


def test_a_burst_queued_behind_its_first_fill_is_one_run_carrying_the_last_fill() -> None:
    clock = ManualClock()
    entry, scheduler = debouncer(clock, delay=0)
    actor = actor_of(entry)
    assert actor is not None
    handled = threading.Event()
    release = threading.Event()
    handle = actor.handle

    def held(message: Any) -> Any:
        handled.set()
        release.wait(5)
        return handle(message)

    actor.handle = held  # type: ignore[method-assign]
    entry.tell(make_fill(1))
    assert handled.wait(5)
    for n in range(2, 6):
        entry.tell(make_fill(n))
    actor.handle = handle  # type: ignore[method-assign]
    release.set()
    eventually(lambda: scheduler.ask("requests", timeout=5), what="the burst's run")
    entry.ask(Barrier(), timeout=5)
    requests = scheduler.ask("requests", timeout=5)
    assert [post_fill(request) for request in requests] == [("ORD-5", "FILL-5", "AAPL")]
    assert clock.pending() == 0


def test_a_fill_with_a_delay_waits_for_its_timer() -> None:
    clock = ManualClock()
    entry, scheduler = debouncer(clock, delay=1)
    entry.ask(make_fill(1), timeout=5)
    assert scheduler.ask("requests", timeout=5) == []
    clock.advance(1)
    entry.ask(make_fill(2), timeout=5)
    clock.advance(1)
    entry.ask(make_fill(3), timeout=5)
    assert [post_fill(request)[1] for request in scheduler.ask("requests", timeout=5)] == ["FILL-1", "FILL-2"]
