"""Time for the actors: what time it is, and "tell me in N seconds".

pykka has no timers. `SystemClock` runs one timer thread whose callbacks tell actors;
`ManualClock` lets tests move time by hand, so trigger and debounce tests need no sleeps.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import attrs

__all__ = ["Clock", "ManualClock", "SystemClock", "TimerHandle"]

logger = logging.getLogger(__name__)


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; for durations and deadlines."""
        ...

    def now(self) -> dt.datetime:
        """The current time, timezone-aware UTC; for timestamps."""
        ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        """Run `callback` (which must be quick: it should only tell an actor) after `delay` s."""
        ...


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

    def push(self, timer: _Timer) -> None:
        heapq.heappush(self._heap, (timer.deadline, next(self._order), timer))

    def next_deadline(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> _Timer | None:
        deadline = self.next_deadline()
        if deadline is None or deadline > now:
            return None
        return heapq.heappop(self._heap)[2]

    def clear(self) -> None:
        self._heap.clear()


def _fire(timer: _Timer) -> None:
    try:
        timer.callback()
    except Exception:
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

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        timer = _Timer(time.monotonic() + max(delay, 0.0), callback)
        with self._wakeup:
            if self._closed:
                timer.cancelled = True
                return timer
            self._queue.push(timer)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._wakeup.notify()
        return timer

    def close(self, timeout: float = 5.0) -> None:
        """Cancel every pending timer and end the thread. Idempotent."""
        with self._wakeup:
            self._closed = True
            self._queue.clear()
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
                    self._wakeup.wait(None if deadline is None else deadline - time.monotonic())
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

    def monotonic(self) -> float:
        return self._elapsed

    def now(self) -> dt.datetime:
        return self._start + dt.timedelta(seconds=self._elapsed)

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        with self._lock:
            timer = _Timer(self._elapsed + max(delay, 0.0), callback)
            self._queue.push(timer)
            return timer

    def pending(self) -> int:
        """How many timers are set and not yet fired or cancelled."""
        with self._lock:
            return sum(1 for _, _, t in self._queue._heap if not t.cancelled)  # noqa: SLF001

    def advance(self, seconds: float) -> None:
        """Move time forward, firing each timer that falls due, at its own deadline."""
        with self._lock:
            target = self._elapsed + seconds
            while (due := self._queue.pop_due(target)) is not None:
                self._elapsed = max(self._elapsed, due.deadline)
                if not due.cancelled:
                    _fire(due)
            self._elapsed = target
