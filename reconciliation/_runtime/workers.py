"""Daemon threads: for plain (blocking) broker and portfolio calls, kept for the next run,
and for one-off blocking work a coroutine must not do on its event loop.

A thread is started only when no kept one is idle, so a call that hangs holds its own
thread and never queues the next run behind it; being a daemon, it cannot keep the
process from exiting either. Reusing idle threads saves starting four per run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DaemonWorkers", "call_in_daemon_thread"]

T = TypeVar("T")

_Job = tuple["Callable[[], Any]", "concurrent.futures.Future[Any]"]


class DaemonWorkers:
    """Runs calls on daemon threads; `close()` lets the idle ones end, the busy ones end
    when their call returns."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._closed = False

    def submit(self, call: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run `call` on an idle thread, or on a new one if none is idle.

        Raises:
            RuntimeError: after `close()`.
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                msg = f"{self._name} workers are closed"
                raise RuntimeError(msg)
            if self._idle:
                self._idle -= 1
            else:
                threading.Thread(target=self._work, name=self._name, daemon=True).start()
        self._jobs.put((call, future))
        return future

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, 0
        for _ in range(idle):
            self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            call, future = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call())
                except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
                    future.set_exception(exc)
            with self._lock:
                if self._closed:
                    return
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
