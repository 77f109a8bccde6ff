"""Daemon threads: a bounded pool for plain (blocking) broker and book calls, and one-off
threads for blocking work a coroutine must not do on its event loop.

The pool runs at most `size` calls at a time, whatever the number of accounts; more
wait their turn, and the turns go round the accounts: each account (the `key` a call is
submitted with) has a queue of its own, and a free worker takes the next call of the
next account in turn, so an account that submits many calls delays another's by one
call at most, never by its whole queue.

A call that is slow or hangs must not take a turn from every account behind it:

- when its run gives up on it (`release`), its thread stops counting against the size —
  another is started if calls are waiting — and, once the call finally returns, the
  thread ends, or takes its place again if the pool is short;
- when calls wait and every counted thread has been busy on one call for `slow_seconds`,
  those threads stop counting too (as if released), up to `max_threads` threads in all:
  slow but compliant brokers cannot hold every other account's calls in the queue.

With at most one outstanding call per method and account (`BookCalls`), the threads are
bounded by `size` plus the calls that are slow or hang, and never exceed `max_threads`.
Being daemons, they cannot keep the process from exiting.

Time a call spends waiting here is not the call's: `BookCalls` starts a call's limit
when a worker starts the call.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DEFAULT_MAX_THREADS",
    "DEFAULT_POOL_SIZE",
    "SLOW_CALL_SECONDS",
    "DaemonWorkers",
    "call_in_daemon_thread",
]

T = TypeVar("T")

DEFAULT_POOL_SIZE = 16
"""Plain book calls running at once, across every account of a runtime."""

SLOW_CALL_SECONDS = 0.25
"""How long a call may keep a counted worker while others wait for one."""

DEFAULT_MAX_THREADS = 128
"""Threads of a pool at most, slow and released ones included: past it, calls wait."""

_Job = tuple["Callable[[], Any]", "concurrent.futures.Future[Any]"]


class DaemonWorkers:
    """Runs calls on at most `size` counted daemon threads, in turn by account; see the
    module docstring."""

    def __init__(
        self,
        name: str,
        size: int = DEFAULT_POOL_SIZE,
        *,
        slow_seconds: float = SLOW_CALL_SECONDS,
        max_threads: int = DEFAULT_MAX_THREADS,
    ) -> None:
        if size < 1:
            msg = f"a worker pool needs at least one thread, not {size}"
            raise ValueError(msg)
        if max_threads < size:
            msg = f"a worker pool of {size} threads cannot be capped at {max_threads}"
            raise ValueError(msg)
        self._name = name
        self._size = size
        self._slow_seconds = slow_seconds
        self._max_threads = max_threads
        self._lock = threading.Condition()
        self._queues: dict[str, collections.deque[_Job]] = {}
        """Each account's calls waiting, in the order submitted."""
        self._turns: collections.deque[str] = collections.deque()
        """The accounts with calls waiting, in the order they are served."""
        self._waiting = 0
        self._counted = 0
        """Threads that count against the size (all but those released or slow)."""
        self._idle = 0
        self._running: dict[concurrent.futures.Future[Any], float] = {}
        """The calls on counted threads, and when each started."""
        self._released: set[concurrent.futures.Future[Any]] = set()
        self._timer: threading.Timer | None = None
        self._closed = False

    @property
    def threads(self) -> int:
        """Threads alive now, counted, released or slow."""
        with self._lock:
            return self._counted + len(self._released)

    @property
    def at_cap(self) -> bool:
        """Whether the pool has `max_threads` threads: a call waiting gets no new one."""
        with self._lock:
            return self._threads_locked() >= self._max_threads

    def submit(self, call: Callable[[], T], key: str = "") -> concurrent.futures.Future[T]:
        """Run `call` on a worker when one is free and it is `key`'s turn.

        Raises:
            RuntimeError: after `close()`.
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                msg = f"{self._name} workers are closed"
                raise RuntimeError(msg)
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = collections.deque()
                self._turns.append(key)
            queue.append((call, future))
            self._waiting += 1
            self._grow()
            self._lock.notify()
        return future

    def release(self, future: concurrent.futures.Future[Any]) -> None:
        """The run gave up on this call: a call still waiting is not made at all; a running
        one's thread no longer counts against the size."""
        if future.cancel():
            return
        with self._lock:
            if future not in self._running:
                return
            self._uncount(future)
            self._grow()

    def close(self) -> None:
        """No more calls: those waiting are cancelled; idle threads end, busy ones when their
        call returns."""
        with self._lock:
            self._closed = True
            for queue in self._queues.values():
                for _, future in queue:
                    future.cancel()
            self._queues.clear()
            self._turns.clear()
            self._waiting = 0
            if self._timer is not None:
                self._timer.cancel()
            self._lock.notify_all()

    def _uncount(self, future: concurrent.futures.Future[Any]) -> None:
        """With the lock held: the thread running `future` stops counting against the size."""
        del self._running[future]
        self._released.add(future)
        self._counted -= 1

    def _grow(self) -> None:
        """With the lock held: start a thread if calls wait and the pool is short; if it is
        full, watch for its calls turning slow."""
        if self._waiting <= self._idle or self._threads_locked() >= self._max_threads:
            return
        if self._counted < self._size:
            self._start_thread()
        elif self._timer is None and self._running:
            due = min(self._running.values()) + self._slow_seconds - time.monotonic()
            self._timer = threading.Timer(max(due, 0.0), self._demote_slow)
            self._timer.daemon = True
            self._timer.start()

    def _threads_locked(self) -> int:
        return self._counted + len(self._released)

    def _demote_slow(self) -> None:
        """Calls wait: threads busy on one call for `slow_seconds` stop counting, oldest
        first, one for each call waiting, and as many threads start."""
        with self._lock:
            self._timer = None
            if self._closed:
                return
            now = time.monotonic()
            slow = sorted((started, id(future), future) for future, started in self._running.items())
            wanted = self._waiting - self._idle
            for started, _, future in slow:
                if wanted <= 0 or now - started < self._slow_seconds:
                    break
                if self._threads_locked() >= self._max_threads:
                    return
                self._uncount(future)
                self._start_thread()
                wanted -= 1
            self._grow()

    def _take(self) -> _Job:
        """With the lock held and a call waiting: the next account's next call."""
        key = self._turns.popleft()
        queue = self._queues[key]
        job = queue.popleft()
        if queue:
            self._turns.append(key)
        else:
            del self._queues[key]
        self._waiting -= 1
        return job

    def _start_thread(self) -> None:
        """With the lock held: a counted thread, idle from the start (so a call waiting is
        seen as taken care of while the thread starts)."""
        self._counted += 1
        self._idle += 1
        threading.Thread(target=self._work, name=self._name, daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closed:
                    self._lock.wait()
                self._idle -= 1
                if self._closed:
                    self._counted -= 1
                    return
                call, future = self._take()
                self._running[future] = time.monotonic()
                self._grow()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call())
                except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
                    future.set_exception(exc)
            with self._lock:
                if self._running.pop(future, None) is None:
                    self._released.discard(future)
                    if self._closed or self._counted >= self._size:
                        return
                    self._counted += 1
                self._idle += 1


def call_in_daemon_thread(function: Callable[[], T]) -> asyncio.Future[T]:
    """Run a plain (possibly blocking) call off the event loop, in a thread that cannot
    keep the process alive if the call never returns."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)  # type: ignore[arg-type]

    def run() -> None:
        try:
            value, error = function(), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side
            value, error = None, exc
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=run, name="reconciliation-call", daemon=True).start()
    return future
