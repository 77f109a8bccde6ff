"""Calling the host's books — portfolio and broker methods, plain or `async` — bounded in
time and in number.

Every call is made from the fetcher's event loop thread (from a fresh one after the
fetcher gave up on a loop that a blocking `async def` froze; a lock keeps the shared
bookkeeping right across the two):

- a plain method runs on a daemon worker thread; an `async` one on the fetcher's own
  loop, unless it belongs to another: a book object whose `event_loop` attribute is a
  loop is run there, and one whose coroutine fails with asyncio's "attached to a
  different loop" is run, from then on, on the loop the service was started from
  (the engine's). Never on the engine's loop by default: an engine that blocks its
  loop thread on `ref.ask(...)` would deadlock against its own broker;
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
import itertools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from reconciliation._domain.error_text import describe_error
from reconciliation._runtime.observers import BookCallTiming

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Callable

    from reconciliation._runtime.workers import DaemonWorkers

__all__ = ["BookCallError", "BookCallTimeoutError", "BookCalls"]

logger = logging.getLogger(__name__)


class BookCallError(Exception):
    """A call failed, timed out, or could not be made; the message is for an operator."""


class BookCallTimeoutError(BookCallError):
    """A call did not answer within its limit; it runs on, and may still return."""


class _Returned:
    """When the host's code of one call really returned, and with what error (None: it
    returned a value): told to whoever watches, even if it returned before they looked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._error: BaseException | None = None
        self._watcher: Callable[[BaseException | None], object] | None = None

    def finish(self, error: BaseException | None) -> None:
        with self._lock:
            if self._done:
                return
            self._done, self._error, watcher = True, error, self._watcher
        if watcher is not None:
            watcher(error)

    def watch(self, watcher: Callable[[BaseException | None], object]) -> None:
        with self._lock:
            self._watcher, done, error = watcher, self._done, self._error
        if done:
            watcher(error)


class BookCalls:
    """Makes the calls of every run, at most one outstanding per account and method."""

    def __init__(
        self,
        workers: DaemonWorkers,
        *,
        monotonic: Callable[[], float],
        home_loop: asyncio.AbstractEventLoop | None = None,
        on_hung: Callable[[int], object] = lambda _: None,
        on_call: Callable[[BookCallTiming], object] = lambda _: None,
    ) -> None:
        """`on_hung(n)` is told how many calls hang (outlived their limit) whenever that
        changes; `on_call` how each call went (see `BookCallTiming`)."""
        self._on_call = on_call
        self._workers = workers
        self._monotonic = monotonic
        self._home_loop = home_loop
        self._on_hung = on_hung
        self._lock = threading.Lock()
        self._outstanding: dict[tuple[str, str], tuple[int, float, bool]] = {}
        """(account, call) -> (token, when called, whether it runs on a loop as a coroutine)."""
        self._tokens = itertools.count()
        self._hung: set[tuple[str, str]] = set()
        self._bound: set[tuple[str, str]] = set()
        self._threads: dict[tuple[str, str], concurrent.futures.Future[Any]] = {}
        """The worker running each plain call in progress, to release it if it hangs."""

    @property
    def hung(self) -> int:
        """Calls still running past their limit."""
        return len(self._hung)

    def hang(self, account_id: str) -> None:
        """Count the account's coroutine calls in progress as hung (their loop froze, so no
        limit fired for them)."""
        with self._lock:
            self._hung.update(
                key for key, (_, _, coroutine) in self._outstanding.items() if key[0] == account_id and coroutine
            )
        self._on_hung(len(self._hung))

    def in_progress(self, account_id: str, *, coroutines_only: bool = False) -> list[tuple[str, float]]:
        """The account's calls not returned yet, longest first: (name, seconds since called)."""
        now = self._monotonic()
        with self._lock:
            calls = [
                (name, now - started)
                for (account, name), (_, started, coroutine) in self._outstanding.items()
                if account == account_id and (coroutine or not coroutines_only)
            ]
        return sorted(calls, key=lambda call: -call[1])

    async def call(
        self,
        method: Callable[..., Any],
        account_id: str,
        *,
        name: str,
        limit: float,
        arguments: tuple[object, ...] | None = None,
        on_late: Callable[[BaseException | None], object] | None = None,
    ) -> Any:
        """`method(account_id)` — or `method(*arguments)` — awaited if it is a coroutine,
        within `limit` seconds. `on_late`, for a call that did not answer in time, is told
        (from any thread) what it ended with once the host's code returns, if it ever does
        (a coroutine is cancelled at its limit: it ends then, with `CancelledError`).

        Raises:
            BookCallTimeoutError: it did not answer in time.
            BookCallError: it raised, or still hangs from an earlier run.
        """
        key = (account_id, name)
        with self._lock:
            outstanding = self._outstanding.get(key)
        if outstanding is not None:
            self._on_call(BookCallTiming(account_id, name, 0.0, "still_hung"))
            msg = (
                f"{name} is still running from an earlier run (called {self._monotonic() - outstanding[1]:.0f} s "
                "ago, it never returned); it is not called again until it does"
            )
            raise BookCallError(msg)
        started = self._monotonic()
        waited_from = time.perf_counter()
        args = (account_id,) if arguments is None else arguments
        returned = _Returned()
        running = self._begin(method, args, name, key, returned)
        done, _ = await asyncio.wait({running}, timeout=limit)
        if done and self._belongs_to_home_loop(running, key):
            returned = _Returned()
            running = self._begin(method, args, name, key, returned)
            done, _ = await asyncio.wait({running}, timeout=max(limit - (self._monotonic() - started), 0.0))
        waited = time.perf_counter() - waited_from
        if not done:
            self._on_call(BookCallTiming(account_id, name, waited, "timeout"))
            running.cancel()
            with self._lock:
                hanging = key in self._outstanding
                if hanging:
                    self._hung.add(key)
                thread = self._threads.get(key)
            if thread is not None:
                self._workers.release(thread)
            if hanging:
                self._on_hung(len(self._hung))
            elsewhere = self._loop_of(method, key) is not None
            where = " (on the event loop it belongs to: is that loop blocked?)" if elsewhere else ""
            if on_late is not None:
                returned.watch(on_late)
            msg = f"{name} did not answer within {limit:g} s{where}"
            raise BookCallTimeoutError(msg)
        if running.cancelled():
            self._on_call(BookCallTiming(account_id, name, waited, "failed"))
            msg = f"{name} was cancelled"
            raise BookCallError(msg)
        error = running.exception()
        self._on_call(BookCallTiming(account_id, name, waited, "ok" if error is None else "failed"))
        if error is not None:
            cause = error.__cause__ if isinstance(error, _HostRaised) else error
            msg = f"{name} failed: {describe_error(cause)}"
            raise BookCallError(msg) from cause
        return running.result()

    def _belongs_to_home_loop(self, done: asyncio.Future[Any], key: tuple[str, str]) -> bool:
        """Whether the call just failed because its futures belong to the engine's loop
        (and that loop is there to run it): remembered for the account and method."""
        if done.cancelled() or key in self._bound or not _on_another_loop(done.exception()):
            return False
        home = self._home_loop
        if home is None or not home.is_running():
            return False
        logger.info(
            "%s of %s belongs to the event loop the service was started from; it is called there from now on",
            key[1],
            key[0],
        )
        self._bound.add(key)
        return True

    def _begin(
        self,
        method: Callable[..., Any],
        args: tuple[object, ...],
        name: str,
        key: tuple[str, str],
        returned: _Returned,
    ) -> asyncio.Future[Any]:
        """Mark the call outstanding and start it; the mark goes when the host's code returns."""
        token = next(self._tokens)
        with self._lock:
            self._outstanding[key] = (token, self._monotonic(), inspect.iscoroutinefunction(method))

        def release(error: BaseException | None = None) -> None:
            self._returned(key, token)
            returned.finish(error)

        try:
            return self._start(method, args, name, release, key)
        except BaseException as error:
            release(error)
            raise

    def _returned(self, key: tuple[str, str], token: int) -> None:
        with self._lock:
            if self._outstanding.get(key, (None,))[0] != token:
                return
            del self._outstanding[key]
            self._threads.pop(key, None)
            was_hung = key in self._hung
            self._hung.discard(key)
        if was_hung:
            self._on_hung(len(self._hung))

    def _start(
        self,
        method: Callable[..., Any],
        args: tuple[object, ...],
        name: str,
        release: Callable[[BaseException | None], None],
        key: tuple[str, str],
    ) -> asyncio.Future[Any]:
        """Start the call; `release` runs once the host's code has really returned (or raised)."""
        loop = asyncio.get_running_loop()
        target = self._loop_of(method, key)
        if inspect.iscoroutinefunction(method):
            return _run_on(_contained(method(*args), release), target, loop)
        return self._start_plain(method, args, name, release, target, key)

    def _start_plain(
        self,
        method: Callable[..., Any],
        args: tuple[object, ...],
        name: str,
        release: Callable[[BaseException | None], None],
        target: asyncio.AbstractEventLoop | None,
        key: tuple[str, str],
    ) -> asyncio.Future[Any]:
        """A plain method on a worker thread (and, if it returns an awaitable, that awaited)."""
        call = _PlainCall(name, release, target)
        worker = self._workers.submit(lambda: _contained_call(method, args))
        with self._lock:
            self._threads[key] = worker
        worker.add_done_callback(call.finished)
        return call.waiting

    def _loop_of(self, method: Callable[..., Any], key: tuple[str, str]) -> asyncio.AbstractEventLoop | None:
        """The loop the method's coroutines belong to, when it is not ours."""
        declared = getattr(getattr(method, "__self__", None), "event_loop", None)
        if isinstance(declared, asyncio.AbstractEventLoop):
            return declared
        return self._home_loop if key in self._bound else None


def _run_on(
    coroutine: Any, target: asyncio.AbstractEventLoop | None, loop: asyncio.AbstractEventLoop
) -> asyncio.Future[Any]:
    """Run `coroutine` on `target` (another loop) or, when None or that loop, on `loop`."""
    if target is not None and target is not loop:
        if target.is_closed():
            coroutine.close()
            msg = "the event loop this book belongs to is closed"
            raise BookCallError(msg)
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, target), loop=loop)
    task: asyncio.Future[Any] = asyncio.ensure_future(coroutine)
    return task


def _on_another_loop(error: BaseException | None) -> bool:
    """asyncio's complaint when a coroutine awaits a future of another loop."""
    cause = error.__cause__ if isinstance(error, _HostRaised) else error
    return isinstance(cause, RuntimeError) and "attached to a different loop" in str(cause)


class _PlainCall:
    """A plain call's way back from its worker thread to the loop that awaits it."""

    def __init__(
        self, name: str, release: Callable[[BaseException | None], None], target: asyncio.AbstractEventLoop | None
    ) -> None:
        self._name = name
        self._release = release
        self._target = target
        self._loop = asyncio.get_running_loop()
        self._answered: asyncio.Future[Any] = self._loop.create_future()
        self.waiting: asyncio.Future[Any] = asyncio.ensure_future(self._then_await())

    async def _then_await(self) -> Any:
        answer = await self._answered
        if inspect.isawaitable(answer):
            logger.debug("%s returned an awaitable; awaiting it", self._name)
            return await _run_on(_contained(answer, self._release), self._target, self._loop)
        return answer

    def finished(self, done: concurrent.futures.Future[Any]) -> None:
        """In the worker's thread: a plain answer frees the gate at once, whatever the loop is doing."""
        if done.cancelled():
            self._release(asyncio.CancelledError())
        elif (error := done.exception()) is not None:
            self._release(error.__cause__ if isinstance(error, _HostRaised) else error)
        elif not inspect.isawaitable(done.result()):
            self._release(None)
        _call_soon(self._loop, self._returned, done)

    def _returned(self, done: concurrent.futures.Future[Any]) -> None:
        """On the loop: hand the answer over, or drop it if nobody waits any more."""
        answer = None if done.cancelled() or done.exception() is not None else done.result()
        if done.cancelled() or self.waiting.done():
            if inspect.iscoroutine(answer):
                answer.close()
            self._release(asyncio.CancelledError() if inspect.isawaitable(answer) else None)
            if not self._answered.done():
                self._answered.cancel()
            return
        if inspect.isawaitable(answer):
            self._answered.set_result(answer)
        elif done.exception() is not None:
            self._answered.set_exception(done.exception())  # type: ignore[arg-type]
        else:
            self._answered.set_result(answer)


class _HostRaised(Exception):  # noqa: N818 - a carrier, never seen outside this module
    """A `BaseException` of the host's, carried as an ordinary exception (its `__cause__`)."""


async def _contained(awaitable: Any, release: Callable[[BaseException | None], None]) -> Any:
    ended: BaseException | None = None
    try:
        return await awaitable
    except (asyncio.CancelledError, GeneratorExit) as error:
        ended = error
        raise
    except BaseException as error:
        ended = error
        raise _HostRaised from error
    finally:
        release(ended)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object) -> None:
    with contextlib.suppress(RuntimeError):  # the loop closed: the service has stopped
        loop.call_soon_threadsafe(callback, *args)


def _contained_call(method: Callable[..., Any], args: tuple[object, ...]) -> Any:
    try:
        return method(*args)
    except BaseException as error:
        raise _HostRaised from error
