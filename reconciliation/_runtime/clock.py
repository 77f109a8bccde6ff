"""Time for the actors: what time it is, and "tell me in N seconds".

pykka has no timers. `SystemClock` runs one timer thread whose callbacks tell actors;
`ManualClock` lets tests move time by hand, so trigger and debounce tests need no sleeps.

The timer thread must outlive anything it is given: a delay too long for the platform
(`threading.TIMEOUT_MAX`), an infinite one, or a callback that raises — even a
`SystemExit` or `KeyboardInterrupt` from host code.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

import attrs

__all__ = ["MAX_WAIT_SECONDS", "Clock", "ManualClock", "SystemClock", "TimerHandle"]

logger = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 3600.0
"""The timer thread wakes at least this often, so no wait exceeds what the platform allows."""


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; for durations and deadlines."""

    def now(self) -> dt.datetime:
        """The current time, timezone-aware UTC; for timestamps."""

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        """Run `callback` (which must be quick: it should only tell an actor) after `delay` s."""

    @property
    def is_running(self) -> bool:
        """Whether timers still fire."""


@attrs.define(eq=False)
class _Timer:
    deadline: float
    callback: Callable[[], object]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class _TimerQueue:
    """Deadlines in order; ties fire in the order they were set."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()

    def add(self, now: float, delay: float, callback: Callable[[], object]) -> _Timer:
        """A timer due `delay` s after `now` (a negative delay: now; NaN is a caller's bug)."""
        if math.isnan(delay):
            msg = "a timer delay cannot be NaN"
            raise ValueError(msg)
        timer = _Timer(now + max(delay, 0.0), callback)
        heapq.heappush(self._heap, (timer.deadline, next(self._order), timer))
        return timer

    def next_deadline(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> _Timer | None:
        deadline = self.next_deadline()
        if deadline is None or deadline > now:
            return None
        return heapq.heappop(self._heap)[2]


def _fire(timer: _Timer) -> None:
    try:
        timer.callback()
    except BaseException:
        logger.exception("A timer callback failed; the timer thread goes on")


class SystemClock:
    """Wall time, and one daemon timer thread, started by the first `call_later`.

    `close()` cancels what is pending and ends the thread.
    """

    def __init__(self, name: str = "reconciliation-timer") -> None:
        self._name = name
        self._queue = _TimerQueue()
        self._wakeup = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    @property
    def is_running(self) -> bool:
        """False once closed, or if the timer thread ended (it should never)."""
        return not self._closed and (self._thread is None or self._thread.is_alive())

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        with self._wakeup:
            timer = self._queue.add(time.monotonic(), delay, callback)
            if self._closed:
                timer.cancel()
                return timer
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            if self._queue.next_deadline() == timer.deadline:  # a later one is seen in time without a wake
                self._wakeup.notify()
        return timer

    def close(self, timeout: float = 5.0) -> None:
        """Cancel every pending timer and end the thread. Idempotent."""
        with self._wakeup:
            self._closed = True
            self._queue = _TimerQueue()
            self._wakeup.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._wakeup:
                if self._closed:
                    return
                due = self._queue.pop_due(time.monotonic())
                if due is None:
                    deadline = self._queue.next_deadline()
                    wait = MAX_WAIT_SECONDS if deadline is None else deadline - time.monotonic()
                    self._wakeup.wait(min(max(wait, 0.0), MAX_WAIT_SECONDS))
                    continue
            if not due.cancelled:
                _fire(due)


class ManualClock:
    """A clock that moves only when a test calls `advance`; timers fire inside `advance`."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._start = start or dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.UTC)
        self._elapsed = 0.0
        self._queue = _TimerQueue()
        self._lock = threading.RLock()

    @property
    def is_running(self) -> bool:
        return True

    def monotonic(self) -> float:
        return self._elapsed

    def now(self) -> dt.datetime:
        return self._start + dt.timedelta(seconds=self._elapsed)

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        with self._lock:
            return self._queue.add(self._elapsed, delay, callback)

    def pending(self) -> int:
        """How many timers are set and not yet fired or cancelled."""
        with self._lock:
            return sum(1 for _, _, timer in self._queue._heap if not timer.cancelled)  # noqa: SLF001

    def advance(self, seconds: float) -> None:
        """Move time forward, firing each timer that falls due, at its own deadline."""
        with self._lock:
            target = self._elapsed + seconds
            while (due := self._queue.pop_due(target)) is not None:
                self._elapsed = max(self._elapsed, due.deadline)
                if not due.cancelled:
                    _fire(due)
            self._elapsed = target
