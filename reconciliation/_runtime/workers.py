"""Daemon threads: a bounded pool for plain (blocking) broker and book calls, and one-off
threads for blocking work a coroutine must not do on its event loop.

The pool runs at most `size` calls at a time, whatever the number of accounts; more
wait their turn. A call that hangs must not take a turn from every account behind it:
when its run gives up on it (`release`), its thread stops counting against the size —
another is started if calls are waiting — and, once the call finally returns, the thread
ends, or takes its place again if the pool is short. With at most one outstanding call
per method and account (`BookCalls`), the threads are bounded by `size` plus the calls
that hang. Being daemons, they cannot keep the process from exiting.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import threading
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DEFAULT_POOL_SIZE", "DaemonWorkers", "call_in_daemon_thread"]

T = TypeVar("T")

DEFAULT_POOL_SIZE = 16
"""Plain book calls running at once, across every account of a runtime."""

_Job = tuple["Callable[[], Any]", "concurrent.futures.Future[Any]"]


class DaemonWorkers:
    """Runs calls on at most `size` counted daemon threads; see the module docstring."""

    def __init__(self, name: str, size: int = DEFAULT_POOL_SIZE) -> None:
        if size < 1:
            msg = f"a worker pool needs at least one thread, not {size}"
            raise ValueError(msg)
        self._name = name
        self._size = size
        self._lock = threading.Condition()
        self._jobs: collections.deque[_Job] = collections.deque()
        self._counted = 0
        """Threads that count against the size (all but those released while hung)."""
        self._idle = 0
        self._released: set[concurrent.futures.Future[Any]] = set()
        self._closed = False

    @property
    def threads(self) -> int:
        """Threads alive now, counted or released."""
        with self._lock:
            return self._counted + len(self._released)

    def submit(self, call: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run `call` on a worker when one is free.

        Raises:
            RuntimeError: after `close()`.
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                msg = f"{self._name} workers are closed"
                raise RuntimeError(msg)
            self._jobs.append((call, future))
            self._grow()
            self._lock.notify()
        return future

    def release(self, future: concurrent.futures.Future[Any]) -> None:
        """The run gave up on this call: a call still waiting is not made at all; a running
        one's thread no longer counts against the size."""
        if future.cancel():
            return
        with self._lock:
            if future.done() or future in self._released or not future.running():
                return
            self._released.add(future)
            self._counted -= 1
            self._grow()

    def close(self) -> None:
        """No more calls; idle threads end, busy ones when their call returns."""
        with self._lock:
            self._closed = True
            self._jobs.clear()
            self._lock.notify_all()

    def _grow(self) -> None:
        """With the lock held: start a thread if calls wait and the pool is short."""
        if len(self._jobs) > self._idle and self._counted < self._size:
            self._counted += 1
            threading.Thread(target=self._work, name=self._name, daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
                while not self._jobs and not self._closed:
                    self._lock.wait()
                self._idle -= 1
                if self._closed:
                    self._counted -= 1
                    return
                call, future = self._jobs.popleft()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call())
                except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
                    future.set_exception(exc)
            with self._lock:
                if future in self._released:
                    self._released.discard(future)
                    if self._closed or self._counted >= self._size:
                        return
                    self._counted += 1


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
