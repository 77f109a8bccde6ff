"""The clock's timer thread serves every actor: nothing it is given may end it."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator

import pytest

from reconciliation._runtime.clock import ManualClock, SystemClock


@pytest.fixture
def clock() -> Iterator[SystemClock]:
    clock = SystemClock(name="test-timer")
    yield clock
    clock.close()


def fired_within(clock: SystemClock, delay: float, timeout: float = 5.0) -> bool:
    fired = threading.Event()
    clock.call_later(delay, fired.set)
    return fired.wait(timeout)


@pytest.mark.parametrize("raised", [RuntimeError("boom"), SystemExit(1), KeyboardInterrupt()])
def test_a_callback_that_raises_anything_does_not_end_the_timer_thread(
    clock: SystemClock, raised: BaseException
) -> None:
    def raising() -> None:
        raise raised

    clock.call_later(0, raising)
    assert fired_within(clock, 0.01)
    assert clock.is_running


@pytest.mark.parametrize("delay", [1e12, 1e300, math.inf], ids=["past TIMEOUT_MAX", "absurd", "infinite"])
def test_a_delay_longer_than_the_platform_can_wait_does_not_end_the_timer_thread(
    clock: SystemClock, delay: float
) -> None:
    clock.call_later(delay, lambda: None)
    assert fired_within(clock, 0.01)
    assert clock.is_running


def test_a_nan_delay_is_a_callers_bug_refused_at_once(clock: SystemClock) -> None:
    with pytest.raises(ValueError, match="NaN"):
        clock.call_later(math.nan, lambda: None)
    assert fired_within(clock, 0.01)


def test_a_closed_clock_says_it_is_not_running_and_fires_nothing() -> None:
    clock = SystemClock(name="test-timer")
    assert fired_within(clock, 0)
    clock.close()
    assert not clock.is_running
    assert not fired_within(clock, 0, timeout=0.2)


def test_the_manual_clock_fires_each_timer_at_its_own_deadline() -> None:
    clock = ManualClock()
    seen: list[float] = []
    for delay in (3, 1, 2):
        clock.call_later(delay, lambda: seen.append(clock.monotonic()))
    clock.advance(5)
    assert seen == [1, 2, 3]


def test_timers_set_in_any_order_fire_in_the_order_of_their_deadlines(clock: SystemClock) -> None:
    fired: list[str] = []
    done = threading.Event()
    clock.call_later(0.3, lambda: (fired.append("last"), done.set()))
    clock.call_later(0.5, lambda: fired.append("never waited for"))
    clock.call_later(0.2, lambda: fired.append("second"))
    clock.call_later(0.25, lambda: fired.append("third"))
    clock.call_later(0.05, lambda: fired.append("first"))
    assert done.wait(5)
    assert fired == ["first", "second", "third", "last"]
