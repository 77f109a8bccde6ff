"""The snapshot fetcher: reads both books of an account without ever blocking the pipeline.

The reads run on an event loop of the fetcher's own, in a thread of its own (see
`BookCalls` for where each call runs and how long it may take); the actor only starts
them. Books whose methods are all plain (the usual ones) skip the loop: the actor starts
their one worker job itself, and the loop watches it only if it is slow
(`start_snapshot`). When a read ends, its callback tells the comparator directly, so a
run costs this actor one message.

An `async def` book method that blocks (a `time.sleep`, a synchronous socket read inside
a coroutine) freezes that loop, and with it every limit it would enforce. So the actor
also holds each read to its deadline from outside the loop: when one is late and the
loop has stopped beating while the process ran (`fetch_loop`: a starved process is not a
frozen loop), the run fails naming the call that froze it, and later reads go to a fresh
loop; the frozen one ends once that call returns. The frozen call stays counted (it is not called again until it
returns), so one bad method cannot freeze loop after loop.

It is the one actor that calls the host's books: when the corrector asks
(`ApplyCorrection`), it calls the portfolio's `apply_correction` the same way, bounded
by `broker_timeout_seconds`, and answers through the message's `application`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs

from reconciliation._domain.correcting import ApplyOutcome
from reconciliation._domain.error_text import bounded, describe_error
from reconciliation._runtime.actor_base import ResilientActor, tell
from reconciliation._runtime.book_calls import ALONE_AFTER_SECONDS, BookCalls, BookCallTimeoutError
from reconciliation._runtime.fetch_loop import LOOP_BEAT_SECONDS, LOOP_STOP_TIMEOUT_SECONDS, FetchLoop, Pulse
from reconciliation._runtime.fills_reader import read_fills
from reconciliation._runtime.messages import (
    Application,
    ApplyCorrection,
    FetchSnapshot,
    FillsRead,
    FillsWanted,
    RunTicket,
    SnapshotFailed,
    SnapshotTaken,
)
from reconciliation._runtime.observers import Observers
from reconciliation._runtime.snapshot import SnapshotError, fetch_snapshot, start_snapshot
from reconciliation._runtime.workers import DaemonWorkers

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pykka

    from reconciliation._domain.models import Snapshot
    from reconciliation._domain.protocols import CorrectableBook
    from reconciliation._runtime.accounts import Account
    from reconciliation._runtime.clock import Clock
    from reconciliation._runtime.health import HealthBoard

__all__ = ["DEADLINE_GRACE_SECONDS", "FetcherActor"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEADLINE_GRACE_SECONDS = 1.0
"""How long past its limit a read may take before the actor looks at its loop (and again
as often, while the read goes on): more than `LOOP_STALL_SECONDS`, so a loop frozen since
the call began is seen as frozen at the first look."""


@attrs.frozen
class _Due:
    """A read's or an `apply_correction` call's deadline: `limit` + grace after it started."""

    account_id: str
    call: concurrent.futures.Future[Any] = attrs.field(eq=False)
    outcome: concurrent.futures.Future[Any] = attrs.field(eq=False)
    """The run's or the application's outcome: once it is given, nothing is late."""
    loop: FetchLoop = attrs.field(eq=False)
    give_up: Callable[[str], object] = attrs.field(eq=False)
    """Fails the run, or the application, with why the call is given up on."""


class FetcherActor(ResilientActor):
    component = "fetcher"

    def __init__(
        self,
        *,
        accounts: Mapping[str, Account],
        comparator: pykka.ActorRef[Any],
        board: HealthBoard,
        clock: Clock,
        home_loop: asyncio.AbstractEventLoop | None = None,
        observers: Observers | None = None,
    ) -> None:
        super().__init__(board=board, clock=clock)
        self._accounts = accounts
        self._comparator = comparator
        self._workers = DaemonWorkers("reconciliation-call")
        self._calls = BookCalls(
            self._workers,
            monotonic=time.monotonic,
            home_loop=home_loop,
            on_hung=lambda hung: board.count("hung_broker_calls", hung),
            on_call=(observers or Observers()).book_call_ended,
        )
        self._loops = 0
        self._pulse = Pulse()
        self._current = self._new_loop()
        self._frozen: list[FetchLoop] = []

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        """The threads this actor started (its loops'), for `stop()` to wait on."""
        return (self._pulse.thread, self._current.thread, *(frozen.thread for frozen in self._frozen))

    def started(self) -> None:
        self._pulse.start()
        self._current.start()

    def handle(self, message: Any) -> Any:
        if isinstance(message, FetchSnapshot):
            self._fetch(message.ticket)
        elif isinstance(message, _Due):
            self._due(message)
        elif isinstance(message, FillsWanted):
            self._read_fills(message)
        elif isinstance(message, ApplyCorrection):
            self._apply(message)
        else:
            logger.warning("The fetcher ignored an unexpected %s", type(message).__name__)

    def _fetch(self, ticket: RunTicket) -> None:
        current = self._live_loop()
        account = self._accounts[ticket.account_id]
        limit = account.config.broker_timeout_seconds
        books = (account.portfolio, account.broker, ticket.account_id)
        swept = limit >= ALONE_AFTER_SECONDS + LOOP_BEAT_SECONDS  # the loop's beat hands a slow job over in time
        reading = start_snapshot(
            *books,
            calls=self._calls,
            limit=limit,
            now=self._clock.now,
            loop=current.loop,
            call_later=None if swept else self._clock.call_later,
        ) or asyncio.run_coroutine_threadsafe(
            fetch_snapshot(*books, calls=self._calls, limit=limit, now=self._clock.now), current.loop
        )
        comparator, me = self._comparator, self.actor_ref
        reading.add_done_callback(lambda done: tell(comparator, _outcome(ticket, done)))
        due = _Due(
            ticket.account_id, reading, ticket.outcome, current, lambda why: comparator.tell(SnapshotFailed(ticket, why))
        )
        self._clock.call_later(limit + DEADLINE_GRACE_SECONDS, lambda: tell(me, due))

    def _read_fills(self, wanted: FillsWanted) -> None:
        """Both books' fills of the run's position breaks, told to the comparator within the
        explanation policy's time (and its grace): then without them, if need be."""
        loop = self._live_loop().loop
        account = self._accounts[wanted.ticket.account_id]
        policy = account.config.explanations
        reading = asyncio.run_coroutine_threadsafe(
            read_fills(
                (account.portfolio, account.broker),
                account.account_id,
                wanted.positions,
                calls=self._calls,
                policy=policy,
            ),
            loop,
        )
        answered = threading.Lock()
        comparator = self._comparator

        def answer(read: FillsRead) -> None:
            if answered.acquire(blocking=False):
                tell(comparator, read)

        def done(future: concurrent.futures.Future[tuple[Any, Any, str | None]]) -> None:
            if future.cancelled() or future.exception() is not None:
                error = "cancelled" if future.cancelled() else describe_error(future.exception())
                answer(FillsRead(wanted, {}, {}, f"the fills could not be read: {error}"))
            else:
                local, broker, note = future.result()
                answer(FillsRead(wanted, local, broker, note))

        reading.add_done_callback(done)
        self._clock.call_later(
            policy.timeout_seconds + DEADLINE_GRACE_SECONDS,
            lambda: answer(FillsRead(wanted, {}, {}, f"the fills were not read within {policy.timeout_seconds:g} s")),
        )

    def _due(self, due: _Due) -> None:
        """A read or an `apply_correction` outlived its limit: a live loop fails it itself,
        a frozen one cannot."""
        if due.call.done() or due.outcome.done():
            return
        if not due.loop.frozen:
            me = self.actor_ref
            self._clock.call_later(DEADLINE_GRACE_SECONDS, lambda: tell(me, due))
            return
        due.give_up(self._given_up_on(due.account_id, due.loop))

    def _given_up_on(self, account_id: str, loop: FetchLoop) -> str:
        """Count the account's calls on the frozen `loop` as hung, move on to a fresh loop,
        and say why the call is given up on."""
        stuck = ", ".join(f"{name}, called {age:.0f} s ago" for name, age in self._calls.hang(account_id))
        if loop is self._current:
            self._replace_frozen_loop()
        limit = self._accounts[account_id].config.broker_timeout_seconds
        return (
            f"no answer within {limit:g} s: the event loop of the async book methods is frozen by a "
            f"blocking call inside an async method ({stuck or 'the call could not be named'}); "
            "it is not called again until it returns"
        )

    def _replace_frozen_loop(self) -> None:
        frozen = self._current
        logger.error(
            "The event loop of the async book methods has not run for %.0f s while the process did: a "
            "method blocks inside `async def`. Later reads go to a new loop; the frozen one ends as soon "
            "as that call returns",
            time.monotonic() - frozen.beat,
        )
        frozen.retire()
        self._frozen = [*(loop for loop in self._frozen if loop.thread.is_alive()), frozen]
        self._current = self._new_loop()
        self._current.start()

    def _live_loop(self) -> FetchLoop:
        """The loop to run a call on: a fresh one in place of a frozen one."""
        if self._current.frozen:
            self._replace_frozen_loop()
        return self._current

    def _new_loop(self) -> FetchLoop:
        self._loops += 1
        return FetchLoop(self._loops, self._pulse, on_beat=self._calls.sweep)

    def _apply(self, message: ApplyCorrection) -> None:
        current = self._live_loop()
        correction, application = message.correction, message.application
        account = self._accounts[correction.account_id]
        applying = asyncio.run_coroutine_threadsafe(
            self._calls.call(
                cast("CorrectableBook", account.portfolio).apply_correction,
                correction.account_id,
                name="local.apply_correction",
                limit=account.config.broker_timeout_seconds,
                arguments=(correction,),
                on_late=lambda error: _settle(application.landed, None if error is None else _ended_with(error)),
            ),
            current.loop,
        )
        applying.add_done_callback(lambda done: _answer(application, done))
        me = self.actor_ref
        due = _Due(
            correction.account_id,
            applying,
            application.outcome,
            current,
            lambda why: _settle(application.outcome, ApplyOutcome(error=why, timed_out=True)),
        )
        self._clock.call_later(account.config.broker_timeout_seconds + DEADLINE_GRACE_SECONDS, lambda: tell(me, due))

    def fail_run(self, message: Any, reason: str) -> None:
        if isinstance(message, FetchSnapshot):
            self._comparator.tell(SnapshotFailed(message.ticket, reason))
        elif isinstance(message, ApplyCorrection):
            _settle(message.application.outcome, ApplyOutcome(error=reason))

    def stopping(self) -> None:
        """Cancel the reads in progress (their runs are abandoned by the scheduler), end the loop."""
        self._workers.close()
        self._current.stop()
        self._pulse.stop()
        if self._current.thread.is_alive():
            logger.error(
                "The fetch loop did not end within %g s: an async broker or book method blocks it",
                LOOP_STOP_TIMEOUT_SECONDS,
            )


def _outcome(ticket: RunTicket, done: concurrent.futures.Future[Snapshot]) -> SnapshotTaken | SnapshotFailed:
    if done.cancelled():
        return SnapshotFailed(ticket, "reading the snapshot was cancelled: the service is stopping")
    error = done.exception()
    if error is None:
        return SnapshotTaken(ticket, done.result())
    if isinstance(error, SnapshotError):
        return SnapshotFailed(ticket, str(error))
    return SnapshotFailed(ticket, f"reading the snapshot failed: {describe_error(error)}")


def _answer(application: Application, done: concurrent.futures.Future[Any]) -> None:
    """The call ended: its outcome, unless one was given already (its loop froze, and the
    fetcher gave up on it) — then this is its late landing."""
    error = None if done.cancelled() else done.exception()
    if done.cancelled():
        outcome = ApplyOutcome(error="the service stopped before apply_correction answered", timed_out=True)
    elif error is None:
        outcome = ApplyOutcome()
    elif isinstance(error, BookCallTimeoutError):
        outcome = ApplyOutcome(error=str(error), timed_out=True)
    else:
        changed = getattr(error.__cause__, "changed", None)
        outcome = ApplyOutcome(error=str(error), changed=None if changed is None else bounded(str(changed)))
    if not application.outcome.done():
        _settle(application.outcome, outcome)
    elif not outcome.timed_out:
        _settle(application.landed, outcome.error)


def _ended_with(error: BaseException) -> str:
    if isinstance(error, asyncio.CancelledError):
        return "it was cancelled at its deadline, part way perhaps"
    return describe_error(error)


def _settle(future: concurrent.futures.Future[T], value: T) -> None:
    """Set `future` once; a second answer (a stop racing the call) is dropped."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        future.set_result(value)
