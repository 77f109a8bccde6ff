"""Calling the host's books — portfolio and broker methods, plain or `async` — bounded in
time and in number.

Every call runs on the fetcher's event loop thread, which is the only thread that
touches a `BookCalls`:

- a plain method runs on a daemon worker thread, an `async` one as a task on the loop
  it belongs to (the host's loop the service was started on, while it runs, else the
  fetcher's own);
- the run waits at most its limit; a call that has not returned by then is not
  cancelled (a thread cannot be) but left to finish, and until it does no second call
  of that method for that account is made: the next run fails at once, saying so. So a
  broker that hangs holds one thread per method, never one per run;
- whatever the host's code raises, `BaseException` included, becomes a `BookCallError`:
  a `SystemExit` from a broker must not end our loop thread, nor reach pykka, which
  would stop every actor in the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import TYPE_CHECKING, Any

from reconciliation._domain.error_text import describe_error

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Callable

    from reconciliation._runtime.workers import DaemonWorkers

__all__ = ["BookCallError", "BookCalls"]

logger = logging.getLogger(__name__)


class BookCallError(Exception):
    """A call failed, timed out, or could not be made; the message is for an operator."""


class BookCalls:
    """Makes the calls of every run, at most one outstanding per account and method."""

    def __init__(
        self,
        workers: DaemonWorkers,
        *,
        monotonic: Callable[[], float],
        home_loop: asyncio.AbstractEventLoop | None = None,
        on_hung: Callable[[int], object] = lambda _: None,
    ) -> None:
        """`on_hung(n)` is told how many calls hang (outlived their limit) whenever that changes."""
        self._workers = workers
        self._monotonic = monotonic
        self._home_loop = home_loop
        self._on_hung = on_hung
        self._outstanding: dict[tuple[str, str], float] = {}
        self._hung: set[tuple[str, str]] = set()

    @property
    def hung(self) -> int:
        """Calls still running past their limit."""
        return len(self._hung)

    async def call(self, method: Callable[[str], Any], account_id: str, *, name: str, limit: float) -> Any:
        """`method(account_id)`, awaited if it is a coroutine, within `limit` seconds.

        Raises:
            BookCallError: it raised, did not answer in time, or still hangs from an earlier run.
        """
        key = (account_id, name)
        started = self._outstanding.get(key)
        if started is not None:
            msg = (
                f"{name} is still running from an earlier run (called {self._monotonic() - started:.0f} s "
                "ago, it never returned); it is not called again until it does"
            )
            raise BookCallError(msg)
        self._outstanding[key] = self._monotonic()
        loop = asyncio.get_running_loop()

        def release() -> None:
            _call_soon(loop, self._returned, key)

        running = self._start(method, account_id, name, release)
        done, _ = await asyncio.wait({running}, timeout=limit)
        if not done:
            running.cancel()
            if key in self._outstanding:
                self._hung.add(key)
                self._on_hung(len(self._hung))
            msg = f"{name} did not answer within {limit:g} s"
            raise BookCallError(msg)
        if running.cancelled():
            msg = f"{name} was cancelled"
            raise BookCallError(msg)
        error = running.exception()
        if error is not None:
            cause = error.__cause__ if isinstance(error, _HostRaised) else error
            msg = f"{name} failed: {describe_error(cause)}"
            raise BookCallError(msg) from cause
        return running.result()

    def _returned(self, key: tuple[str, str]) -> None:
        self._outstanding.pop(key, None)
        if key in self._hung:
            self._hung.discard(key)
            self._on_hung(len(self._hung))

    def _start(
        self, method: Callable[[str], Any], account_id: str, name: str, release: Callable[[], None]
    ) -> asyncio.Future[Any]:
        """Start the call; `release` runs once the host's code has really returned (or raised)."""
        loop = asyncio.get_running_loop()
        if inspect.iscoroutinefunction(method):
            return self._on_home_loop(_contained(method(account_id), release), loop)
        answered: asyncio.Future[Any] = loop.create_future()

        async def then_await() -> Any:
            answer = await answered
            if inspect.isawaitable(answer):
                logger.debug("%s returned an awaitable; awaiting it", name)
                return await self._on_home_loop(_contained(answer, release), loop)
            return answer

        waiting = asyncio.ensure_future(then_await())

        def returned(done: concurrent.futures.Future[Any]) -> None:
            """On the loop thread, once the worker's call has returned or raised."""
            error = done.exception()
            answer = None if error is not None else done.result()
            if waiting.done():
                if inspect.iscoroutine(answer):
                    answer.close()
                release()
                return
            if not inspect.isawaitable(answer):
                release()
            if error is not None:
                answered.set_exception(error)
            else:
                answered.set_result(answer)

        worker = self._workers.submit(lambda: _contained_call(method, account_id))
        worker.add_done_callback(lambda done: _call_soon(loop, returned, done))
        return waiting

    def _on_home_loop(self, coroutine: Any, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
        home = self._home_loop
        if home is not None and home is not loop and home.is_running() and not home.is_closed():
            return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, home), loop=loop)
        task: asyncio.Future[Any] = asyncio.ensure_future(coroutine)
        return task


class _HostRaised(Exception):  # noqa: N818 - a carrier, never seen outside this module
    """A `BaseException` of the host's, carried as an ordinary exception (its `__cause__`)."""


async def _contained(awaitable: Any, release: Callable[[], None]) -> Any:
    try:
        return await awaitable
    except asyncio.CancelledError:
        raise
    except BaseException as error:
        raise _HostRaised from error
    finally:
        release()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object) -> None:
    with contextlib.suppress(RuntimeError):  # the loop closed: the service has stopped
        loop.call_soon_threadsafe(callback, *args)


def _contained_call(method: Callable[[str], Any], account_id: str) -> Any:
    try:
        return method(account_id)
    except BaseException as error:
        raise _HostRaised from error
