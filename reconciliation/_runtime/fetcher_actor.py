"""The snapshot fetcher: reads both books of an account without ever blocking the pipeline.

The reads run on the fetcher's own event loop thread (see `BookCalls` for where each
call runs and how long it may take); the actor only starts them. When a read ends, its
callback tells the comparator directly, so a run costs this actor one message.

It is the one actor that calls the host's books: when the corrector asks
(`ApplyCorrection`), it calls the portfolio's `apply_correction` the same way, bounded
by `broker_timeout_seconds`, and answers through the message's `reply`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any, cast

from reconciliation._domain.error_text import describe_error
from reconciliation._runtime.actor_base import ResilientActor, tell
from reconciliation._runtime.book_calls import BookCallError, BookCalls
from reconciliation._runtime.messages import (
    ApplyCorrection,
    FetchSnapshot,
    RunTicket,
    SnapshotFailed,
    SnapshotTaken,
)
from reconciliation._runtime.observers import Observers
from reconciliation._runtime.snapshot import SnapshotError, fetch_snapshot
from reconciliation._runtime.workers import DaemonWorkers

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Mapping

    import pykka

    from reconciliation._domain.models import Snapshot
    from reconciliation._domain.protocols import CorrectableBook
    from reconciliation._runtime.accounts import Account
    from reconciliation._runtime.clock import Clock
    from reconciliation._runtime.health import HealthBoard

__all__ = ["LOOP_STOP_TIMEOUT_SECONDS", "FetcherActor"]

logger = logging.getLogger(__name__)

LOOP_STOP_TIMEOUT_SECONDS = 5.0


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
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="reconciliation-fetch", daemon=True)
        self._workers = DaemonWorkers("reconciliation-call")
        self._calls = BookCalls(
            self._workers,
            monotonic=clock.monotonic,
            home_loop=home_loop,
            on_hung=lambda hung: board.count("hung_broker_calls", hung),
            on_call=(observers or Observers()).book_call_ended,
        )

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        """The threads this actor started (its loop's), for `stop()` to wait on."""
        return (self._thread,)

    def started(self) -> None:
        self._thread.start()

    def handle(self, message: Any) -> Any:
        if isinstance(message, FetchSnapshot):
            self._fetch(message.ticket)
        elif isinstance(message, ApplyCorrection):
            self._apply(message)
        else:
            logger.warning("The fetcher ignored an unexpected %s", type(message).__name__)

    def _fetch(self, ticket: RunTicket) -> None:
        account = self._accounts[ticket.account_id]
        reading = asyncio.run_coroutine_threadsafe(
            fetch_snapshot(
                account.portfolio,
                account.broker,
                ticket.account_id,
                calls=self._calls,
                limit=account.config.broker_timeout_seconds,
                now=self._clock.now,
            ),
            self._loop,
        )
        comparator = self._comparator
        reading.add_done_callback(lambda done: tell(comparator, _outcome(ticket, done)))

    def _apply(self, message: ApplyCorrection) -> None:
        correction = message.correction
        account = self._accounts[correction.account_id]
        applying = asyncio.run_coroutine_threadsafe(
            self._calls.call(
                cast("CorrectableBook", account.portfolio).apply_correction,
                correction.account_id,
                name="local.apply_correction",
                limit=account.config.broker_timeout_seconds,
                arguments=(correction,),
            ),
            self._loop,
        )
        applying.add_done_callback(lambda done: _answer(message.reply, done))

    def fail_run(self, message: Any, reason: str) -> None:
        if isinstance(message, FetchSnapshot):
            self._comparator.tell(SnapshotFailed(message.ticket, reason))
        elif isinstance(message, ApplyCorrection) and not message.reply.done():
            message.reply.set_exception(BookCallError(reason))

    def stopping(self) -> None:
        """Cancel the reads in progress (their runs are abandoned by the scheduler), end the loop."""
        self._workers.close()
        if self._loop.is_closed() or not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self._cancel_all)
        self._thread.join(timeout=LOOP_STOP_TIMEOUT_SECONDS)
        if self._thread.is_alive():
            logger.error(
                "The fetch loop did not end within %g s: an async broker or book method blocks it",
                LOOP_STOP_TIMEOUT_SECONDS,
            )

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def _cancel_all(self) -> None:
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()

        async def drain() -> None:
            await asyncio.wait(tasks, timeout=LOOP_STOP_TIMEOUT_SECONDS / 2) if tasks else None
            self._loop.stop()

        self._loop.create_task(drain())


def _outcome(ticket: RunTicket, done: concurrent.futures.Future[Snapshot]) -> SnapshotTaken | SnapshotFailed:
    if done.cancelled():
        return SnapshotFailed(ticket, "reading the snapshot was cancelled: the service is stopping")
    error = done.exception()
    if error is None:
        return SnapshotTaken(ticket, done.result())
    if isinstance(error, SnapshotError):
        return SnapshotFailed(ticket, str(error))
    return SnapshotFailed(ticket, f"reading the snapshot failed: {describe_error(error)}")


def _answer(reply: concurrent.futures.Future[None], done: concurrent.futures.Future[Any]) -> None:
    if reply.done():
        return
    if done.cancelled():
        reply.set_exception(BookCallError("the service stopped before apply_correction answered"))
    elif (error := done.exception()) is not None:
        reply.set_exception(error)
    else:
        reply.set_result(None)
