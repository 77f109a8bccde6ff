"""Calling the host's books — portfolio and broker methods, plain or `async` — bounded in
time and in number.

Every call is made from the fetcher's event loop thread (from a fresh one after the
fetcher gave up on a loop that a blocking `async def` froze; a lock keeps the shared
bookkeeping right across the two):

- a plain method runs on a daemon worker thread — a run's plain calls one after another
  in one worker job (`call_all`), so that a run costs one thread hop, not four; a call
  that has not answered within `ALONE_AFTER_SECONDS` has the calls behind it moved to
  jobs of their own, so a slow book still has its calls made together. `start_all`
  submits that job from the caller's thread and takes its answers on the worker: the
  loop watches the job only once it has run `ALONE_AFTER_SECONDS` (the loop's beat, or a
  timer for a limit shorter than a beat, hands it over), so a quick run never crosses
  the loop's thread. An `async` one runs on the fetcher's own loop, unless it belongs to
  another: a book object whose `event_loop` attribute is a loop is run there, and one
  whose coroutine fails with asyncio's "attached to a different loop" is run, from then
  on, on the loop the service was started from (the engine's). Never on the engine's
  loop by default: an engine that blocks its loop thread on `ref.ask(...)` would
  deadlock against its own broker;
- the run waits at most its limit for each call, counted from when the call starts: time
  spent waiting for a worker is not the book's (see `DaemonWorkers`, which serves the
  accounts in turn). Only when the pool is at its cap of threads and a call has waited
  its limit for one is it given up on, not made, with an error that says so. A call that
  has not returned by then is not cancelled (a thread cannot be) but left to finish, and
  until it does no second call of that method for that account is made: the next run
  fails at once, saying so. So a broker that hangs holds one thread per method, never
  one per run;
- whatever the host's code raises, `BaseException` included, becomes a `BookCallError`:
  a `SystemExit` from a broker must not end our loop thread, nor reach pykka, which
  would stop every actor in the process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import itertools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from reconciliation._domain.error_text import describe_error
from reconciliation._runtime.observers import BookCallTiming

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from reconciliation._runtime.clock import TimerHandle
    from reconciliation._runtime.workers import DaemonWorkers

    PlainCalls = Sequence[tuple[str, Callable[..., Any], tuple[object, ...]]]
    """A run's plain calls: (name, method, arguments) each."""

__all__ = ["ALONE_AFTER_SECONDS", "BookCallError", "BookCallTimeoutError", "BookCalls"]

logger = logging.getLogger(__name__)


ALONE_AFTER_SECONDS = 0.05
"""How long a plain call may keep the calls behind it in its job waiting."""


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
        self._started: set[_Started] = set()
        """The jobs of `start_all` that `sweep` hands over once they have run `ALONE_AFTER_SECONDS`."""

    @property
    def hung(self) -> int:
        """Calls still running past their limit."""
        return len(self._hung)

    def hang(self, account_id: str) -> list[tuple[str, float]]:
        """Count the account's coroutine calls in progress as hung (their loop froze, so no
        limit fired for them): each (name, seconds since called), longest first."""
        now = self._monotonic()
        with self._lock:
            stuck = {
                key: now - started
                for key, (_, started, coroutine) in self._outstanding.items()
                if key[0] == account_id and coroutine
            }
            self._hung.update(stuck)
        self._on_hung(len(self._hung))
        return sorted(((name, age) for (_, name), age in stuck.items()), key=lambda call: -call[1])

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
        args = (account_id,) if arguments is None else arguments
        if not inspect.iscoroutinefunction(method):
            [plain] = await self._call_plain(account_id, [(name, method, args)], limit)
            if isinstance(plain.result, BookCallTimeoutError) and on_late is not None:
                plain.returned.watch(on_late)
            if isinstance(plain.result, BookCallError):
                raise plain.result
            return plain.result
        self._refuse_if_hung(account_id, name)
        started = self._monotonic()
        waited_from = time.perf_counter()
        returned = _Returned()
        running = self._begin(method, args, key, returned)
        done, _ = await asyncio.wait({running}, timeout=limit)
        if done and self._belongs_to_home_loop(running, key):
            returned = _Returned()
            running = self._begin(method, args, key, returned)
            done, _ = await asyncio.wait({running}, timeout=max(limit - (self._monotonic() - started), 0.0))
        waited = time.perf_counter() - waited_from
        if not done:
            self._on_call(BookCallTiming(account_id, name, waited, "timeout"))
            running.cancel()
            self._mark_hung(key)
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

    async def call_all(self, account_id: str, calls: PlainCalls, *, limit: float) -> list[Any]:
        """Each of `calls` — (name, plain method, arguments) — made on a worker, one after
        another in one job (see the module docstring), each within `limit` seconds from
        when it starts: its answer, or the `BookCallError` it ended with, in order."""
        return [plain.result for plain in await self._call_plain(account_id, calls, limit)]

    def start_all(
        self,
        account_id: str,
        calls: PlainCalls,
        *,
        limit: float,
        loop: asyncio.AbstractEventLoop,
        call_later: Callable[[float, Callable[[], object]], TimerHandle] | None = None,
    ) -> concurrent.futures.Future[list[Any]]:
        """`call_all` started from a thread that is not `loop`'s: the answers arrive on the
        worker's thread when the job ends within `ALONE_AFTER_SECONDS` and every answer is
        plain; otherwise `loop` watches the job and settles the calls, as `call_all` does.
        The job is handed over `ALONE_AFTER_SECONDS` after it started by a timer of
        `call_later`; without one, by the first `sweep` after that (the loop's beat: a
        limit shorter than the beat's period needs the timer).

        Raises:
            RuntimeError: the workers are closed (no call is made).
        """
        plains = self._prepared(account_id, calls)
        made = [plain for plain in plains if not plain.settled]
        if not made:
            answered: concurrent.futures.Future[list[Any]] = concurrent.futures.Future()
            answered.set_result([plain.result for plain in plains])
            return answered
        try:
            job = self._submit(made)
        except BaseException as error:
            for plain in made:
                plain.release(error)
            raise
        started = _Started(self, plains, job, limit, loop)
        if call_later is None:
            with self._lock:
                self._started.add(started)
        else:
            started.timer = call_later(ALONE_AFTER_SECONDS, started.slow)
        assert job.worker is not None  # noqa: S101 - `_submit` set it
        job.worker.add_done_callback(started.ended)
        return started.answers

    async def watched(self, plains: list[_Plain], job: _Job, limit: float) -> list[Any]:
        """The answers of a job submitted already, watched and settled on the running loop as
        `call_all` does."""
        await self._run_jobs([plain for plain in plains if not plain.settled], limit, [job])
        return [plain.result for plain in plains]

    def sweep(self) -> None:
        """Hand each job of `start_all` that has run `ALONE_AFTER_SECONDS` and still goes
        to its loop (called at each beat of the fetch loop)."""
        now = self._monotonic()
        with self._lock:
            due = [started for started in self._started if now - started.since >= ALONE_AFTER_SECONDS]
        for started in due:
            started.slow()

    def forget(self, started: _Started) -> None:
        """A job of `start_all` taken by its end or its watch: no sweep looks at it again."""
        with self._lock:
            self._started.discard(started)

    def _refuse_if_hung(self, account_id: str, name: str) -> None:
        """Raises: BookCallError: the method's call of an earlier run has not returned."""
        with self._lock:
            outstanding = self._outstanding.get((account_id, name))
        if outstanding is None:
            return
        self._on_call(BookCallTiming(account_id, name, 0.0, "still_hung"))
        msg = (
            f"{name} is still running from an earlier run (called {self._monotonic() - outstanding[1]:.0f} s "
            "ago, it never returned); it is not called again until it does"
        )
        raise BookCallError(msg)

    async def _call_plain(self, account_id: str, calls: PlainCalls, limit: float) -> list[_Plain]:
        plains = self._prepared(account_id, calls)
        made = [plain for plain in plains if not plain.settled]
        if made:
            await self._run_jobs(made, limit)
        return plains

    def _prepared(self, account_id: str, calls: PlainCalls) -> list[_Plain]:
        """The calls, each marked outstanding — or settled already, refused as still hung."""
        plains = [_Plain(method, args, (account_id, name)) for name, method, args in calls]
        for plain in plains:
            try:
                self._refuse_if_hung(account_id, plain.key[1])
            except BookCallError as error:
                plain.result, plain.settled = error, True
                continue
            token = next(self._tokens)
            with self._lock:
                self._outstanding[plain.key] = (token, self._monotonic(), False)
            plain.release = functools.partial(self._plain_returned, plain, token)
        return plains

    def _plain_returned(self, plain: _Plain, token: int, error: BaseException | None) -> None:
        self._returned(plain.key, token)
        plain.returned.finish(error)

    async def _run_jobs(self, made: list[_Plain], limit: float, jobs: list[_Job] | None = None) -> None:
        """Make the calls (unless their `jobs` are submitted already) and wait for each,
        within its limit from its start; a job's call that is slow has the calls behind it
        moved to jobs of their own."""
        loop = asyncio.get_running_loop()
        jobs = jobs or [self._submit(made)]
        waiting = set(jobs)
        try:
            while waiting:
                wake = self._watch(waiting, jobs, limit)
                if waiting:
                    await asyncio.wait(
                        {job.watched_from(loop) for job in waiting}, timeout=wake, return_when="FIRST_COMPLETED"
                    )
                    waiting -= {job for job in waiting if job.watched_from(loop).done()}
        except BaseException:
            for job in jobs:
                for plain in job.detach():
                    plain.release(asyncio.CancelledError())
                if job.worker is not None:
                    self._workers.release(job.worker)
            raise
        for plain in made:
            if not plain.settled:
                await self._settle(plain, limit)

    def _watch(self, waiting: set[_Job], jobs: list[_Job], limit: float) -> float:
        """Time out the calls past their limit, move the calls behind a slow one to jobs of
        their own; how long to wait before looking again."""
        now = self._monotonic()
        wake = min(limit, ALONE_AFTER_SECONDS)
        for job in list(waiting):
            current = job.current()
            if current is None or current.started is None:
                if job.queued_for(now) >= limit and self._workers.at_cap:
                    self._not_called(job, waiting, limit)
                continue
            age = now - current.started
            if age >= limit:
                waiting.discard(job)
                self._time_out(job, current, limit)
            elif age < ALONE_AFTER_SECONDS:
                wake = min(wake, ALONE_AFTER_SECONDS - age)
                continue
            else:
                wake = min(wake, limit - age)
            rest = job.detach()
            if rest:
                alone = [self._submit([plain]) for plain in rest]
                jobs += alone
                waiting.update(alone)
        return max(wake, 0.0)

    def _not_called(self, job: _Job, waiting: set[_Job], limit: float) -> None:
        """No worker took the job within the limit, and the pool is at its cap of threads (so
        none will be started for it): its calls are not made, and the run is told why — not
        a fault of the book's."""
        for plain in job.detach():
            plain.release(None)
            plain.result = BookCallError(
                f"{plain.key[1]} was not called: no worker was free for {limit:g} s (every one was busy "
                "with other calls, the pool at its cap); the book was not asked"
            )
            plain.settled = True
        if job.queued_for(self._monotonic()) > 0:  # it did not start after all: nothing to wait for
            waiting.discard(job)
            if job.worker is not None:
                self._workers.release(job.worker)

    def _submit(self, calls: list[_Plain]) -> _Job:
        job = _Job(calls, self._monotonic)
        job.worker = self._workers.submit(job.run, calls[0].key[0])
        return job

    def _time_out(self, job: _Job, plain: _Plain, limit: float) -> None:
        account_id, name = plain.key
        self._on_call(BookCallTiming(account_id, name, self._monotonic() - (plain.started or 0.0), "timeout"))
        if job.worker is not None:
            self._workers.release(job.worker)
        self._mark_hung(plain.key)
        plain.result, plain.settled = BookCallTimeoutError(f"{name} did not answer within {limit:g} s"), True

    def _mark_hung(self, key: tuple[str, str]) -> None:
        """The call outlived its limit: counted as hung until it returns, if it has not already."""
        with self._lock:
            hanging = key in self._outstanding
            if hanging:
                self._hung.add(key)
        if hanging:
            self._on_hung(len(self._hung))

    async def _settle(self, plain: _Plain, limit: float) -> None:
        """The run's answer of a call that ended on its worker: an awaitable it returned is
        awaited, within what is left of its limit."""
        account_id, name = plain.key
        took = plain.took
        answer = plain.answer
        if plain.error is None and inspect.isawaitable(answer):
            logger.debug("%s returned an awaitable; awaiting it", name)
            try:
                running = _run_on(
                    _contained(answer, plain.release),
                    self._loop_of(plain.method, plain.key),
                    asyncio.get_running_loop(),
                )
            except BookCallError as error:
                plain.release(error)
                plain.error = error
            else:
                done, _ = await asyncio.wait({running}, timeout=max(limit - took, 0.0))
                took = self._monotonic() - (plain.started or 0.0)
                if not done:
                    running.cancel()
                    self._on_call(BookCallTiming(account_id, name, took, "timeout"))
                    plain.result = BookCallTimeoutError(f"{name} did not answer within {limit:g} s")
                    plain.settled = True
                    return
                if running.cancelled():
                    self._on_call(BookCallTiming(account_id, name, took, "failed"))
                    plain.result = BookCallError(f"{name} was cancelled")
                    plain.settled = True
                    return
                raised = running.exception()
                plain.error = raised.__cause__ if isinstance(raised, _HostRaised) else raised
                answer = None if raised is not None else running.result()
        plain.answer = answer
        self.settle_answered(plain, took)

    def settle_answered(self, plain: _Plain, took: float) -> None:
        """The run's answer of a call that answered (or raised) in `took` seconds."""
        account_id, name = plain.key
        self._on_call(BookCallTiming(account_id, name, took, "ok" if plain.error is None else "failed"))
        plain.settled = True
        if plain.error is None:
            plain.result = plain.answer
            return
        plain.result = BookCallError(f"{name} failed: {describe_error(plain.error)}")
        plain.result.__cause__ = plain.error

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
            return _run_on(
                _contained(method(*args), release), self._loop_of(method, key), asyncio.get_running_loop()
            )
        except BaseException as error:
            release(error)
            raise

    def _returned(self, key: tuple[str, str], token: int) -> None:
        with self._lock:
            if self._outstanding.get(key, (None,))[0] != token:
                return
            del self._outstanding[key]
            was_hung = key in self._hung
            self._hung.discard(key)
        if was_hung:
            self._on_hung(len(self._hung))

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


class _Plain:
    """One plain call of a run: what to call, and (from its worker) how it went."""

    def __init__(self, method: Callable[..., Any], args: tuple[object, ...], key: tuple[str, str]) -> None:
        self.method = method
        self.args = args
        self.key = key
        self.returned = _Returned()
        self.release: Callable[[BaseException | None], None] = lambda _: None
        self.started: float | None = None
        self.ended: float | None = None
        self.answer: Any = None
        self.error: BaseException | None = None
        self.result: Any = None
        """What the run gets: the answer, or the `BookCallError` it ended with, once `settled`."""
        self.settled = False

    @property
    def took(self) -> float:
        """How long the host's code ran on the worker (0 for a call not made)."""
        return (self.ended or 0.0) - (self.started or 0.0)

    def make(self) -> None:
        """On the worker: call the host's code; a plain answer frees the method's gate at once."""
        try:
            self.answer = self.method(*self.args)
        except BaseException as error:  # noqa: BLE001 - handed to the run as a failed call
            self.error = error
            self.release(error)
        else:
            if not inspect.isawaitable(self.answer):
                self.release(None)


class _Started:
    """A job of `BookCalls.start_all`: answered on its worker if it ends before it is
    handed to the loop (by a sweep or a timer); whichever comes first takes it."""

    def __init__(
        self, calls: BookCalls, plains: list[_Plain], job: _Job, limit: float, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._calls = calls
        self._plains = plains
        self._job = job
        self._limit = limit
        self._loop = loop
        self._taken = threading.Lock()
        self.since = job.submitted
        self.timer: TimerHandle | None = None
        self.answers: concurrent.futures.Future[list[Any]] = concurrent.futures.Future()

    def ended(self, _: object) -> None:
        """On the worker (or the thread that cancelled the job): the job has ended."""
        if not self._taken.acquire(blocking=False):
            return
        self._calls.forget(self)
        if self.timer is not None:
            self.timer.cancel()
        made = [plain for plain in self._plains if not plain.settled]
        if not all(plain.ended is not None and not inspect.isawaitable(plain.answer) for plain in made):
            self._watch_on_loop()
            return
        for plain in made:
            self._calls.settle_answered(plain, plain.took)
        self.answers.set_result([plain.result for plain in self._plains])

    def slow(self) -> None:
        """On the timer's thread, or the loop's at a sweep: the job is still going; the loop
        watches it from now on."""
        if self._taken.acquire(blocking=False):
            self._calls.forget(self)
            self._watch_on_loop()

    def _watch_on_loop(self) -> None:
        watching = self._calls.watched(self._plains, self._job, self._limit)
        try:
            watched = asyncio.run_coroutine_threadsafe(watching, self._loop)
        except RuntimeError:  # the loop is closed: the service is stopping
            watching.close()
            self.answers.set_exception(BookCallError("the calls were abandoned: the service is stopping"))
            return
        watched.add_done_callback(functools.partial(_pass_on, self.answers))


class _Job:
    """Plain calls of one account, made one after another on one worker."""

    def __init__(self, calls: list[_Plain], monotonic: Callable[[], float]) -> None:
        self._calls = calls
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._next = 0
        """The calls before it have started."""
        self._end = len(calls)
        """The calls from it on are not this job's (moved, or given up on)."""
        self.worker: concurrent.futures.Future[None] | None = None
        self._finished: asyncio.Future[None] | None = None
        self.submitted = monotonic()

    def watched_from(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """A future of `loop`, done once the job has ended (from its first watch on)."""
        if self._finished is None:
            finished = self._finished = loop.create_future()
            assert self.worker is not None  # noqa: S101 - submitted before it is watched
            self.worker.add_done_callback(lambda _: _call_soon(loop, _set_done, finished))
        return self._finished

    def queued_for(self, now: float) -> float:
        """How long the job has waited for a worker; 0 once it has started a call."""
        with self._lock:
            return 0.0 if self._next else now - self.submitted

    def run(self) -> None:
        while True:
            with self._lock:
                if self._next >= self._end:
                    return
                call = self._calls[self._next]
                self._next += 1
                call.started = self._monotonic()
            call.make()
            call.ended = self._monotonic()

    def current(self) -> _Plain | None:
        """The call in progress, if one is."""
        with self._lock:
            call = self._calls[self._next - 1] if self._next else None
        return call if call is not None and call.ended is None else None

    def detach(self) -> list[_Plain]:
        """The calls not started yet, taken out of the job."""
        with self._lock:
            rest = self._calls[self._next : self._end]
            self._end = self._next
        return rest


def _pass_on(answers: concurrent.futures.Future[list[Any]], watched: concurrent.futures.Future[list[Any]]) -> None:
    """What the loop's watch of a job ended with, to whoever waits for the answers."""
    if watched.cancelled():
        answers.set_exception(BookCallError("the calls were cancelled: the service is stopping"))
    elif (error := watched.exception()) is not None:
        answers.set_exception(error)
    else:
        answers.set_result(watched.result())


def _set_done(finished: asyncio.Future[None]) -> None:
    if not finished.done():
        finished.set_result(None)


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
