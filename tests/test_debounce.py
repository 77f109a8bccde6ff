"""The post-fill debounce rule: trailing quiet period, bounded by a maximum wait."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from reconciliation._domain.debounce import DebounceWindow
from reconciliation._domain.models import OrderFill


def fill(n: int) -> OrderFill:
    return OrderFill(
        f"O{n}", f"F{n}", "ACC-1", "AAPL", 1, Decimal(10), dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    )


def test_a_single_fill_is_due_after_the_delay() -> None:
    window = DebounceWindow(delay=5.0, max_wait=60.0)
    window.add(fill(1), now=0.0)
    assert window.take_if_due(4.99) is None
    assert window.take_if_due(5.0) == fill(1)


def test_a_burst_gives_one_run_with_the_last_fill() -> None:
    window = DebounceWindow(delay=5.0, max_wait=60.0)
    for n, at in enumerate([0.0, 1.0, 2.0]):
        window.add(fill(n), now=at)
    assert window.take_if_due(6.9) is None
    assert window.take_if_due(7.0) == fill(2)
    assert window.take_if_due(100.0) is None


def test_a_steady_stream_of_fills_cannot_postpone_past_the_maximum_wait() -> None:
    window = DebounceWindow(delay=5.0, max_wait=12.0)
    for n in range(12):
        window.add(fill(n), now=float(n))
    assert window.due_at() == 12.0
    assert window.take_if_due(12.0) == fill(11)


def test_only_the_first_fill_of_a_burst_opens_it() -> None:
    window = DebounceWindow(delay=5.0, max_wait=60.0)
    assert window.add(fill(1), now=0.0) is True
    assert window.add(fill(2), now=1.0) is False
    window.take_if_due(10.0)
    assert window.add(fill(3), now=11.0) is True


def test_zero_delay_is_due_at_once() -> None:
    window = DebounceWindow(delay=0.0, max_wait=0.0)
    window.add(fill(1), now=3.0)
    assert window.take_if_due(3.0) == fill(1)


class DebounceMachine(RuleBasedStateMachine):
    """Any interleaving of fills and time: a run exactly when quiet period or max wait is reached."""

    def __init__(self) -> None:
        super().__init__()
        self.delay = 5.0
        self.max_wait = 20.0
        self.window = DebounceWindow(self.delay, self.max_wait)
        self.now = 0.0
        self.burst: list[tuple[float, OrderFill]] = []
        self.count = 0

    @rule()
    def a_fill_arrives(self) -> None:
        self.count += 1
        booked = fill(self.count)
        self.window.add(booked, self.now)
        self.burst.append((self.now, booked))

    @rule(seconds=st.floats(min_value=0.0, max_value=30.0, allow_nan=False))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def the_timer_checks(self) -> None:
        taken = self.window.take_if_due(self.now)
        if not self.burst:
            assert taken is None
            return
        first_at, last_at = self.burst[0][0], self.burst[-1][0]
        due = min(last_at + self.delay, first_at + self.max_wait)
        if self.now >= due:
            assert taken == self.burst[-1][1]
            self.burst.clear()
        else:
            assert taken is None

    @invariant()
    def open_exactly_while_fills_are_waiting(self) -> None:
        assert self.window.is_open == bool(self.burst)


TestDebounceMachine = DebounceMachine.TestCase
