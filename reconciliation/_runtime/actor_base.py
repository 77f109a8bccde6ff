"""What every pipeline actor shares: knowing its peers, and reporting its own death.

pykka has no supervision: an exception in a told message stops the actor silently.
Each actor here tells the supervisor instead, naming the run it was handling, so the
run is reported failed and the actor is restarted.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

import pykka

from reconciliation._domain.error_text import describe_error
from reconciliation._runtime.messages import (
    ActorCrashed,
    FetchSnapshot,
    Peers,
    PeersChanged,
    Publish,
    Record,
    RunFinished,
    SnapshotFailed,
    SnapshotTaken,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from uuid import UUID

    from reconciliation._runtime.clock import Clock, TimerHandle

__all__ = ["FollowingFuture", "PipelineActor", "Retry", "tell"]

logger = logging.getLogger(__name__)


class FollowingFuture(pykka.ThreadingFuture[Any]):
    """A reply future that, when the actor replied with another future, waits for that one.

    It lets `service.ref.ask(ReconcileRequest(...))` return the run's result although
    the actors answer at once (the entry with the supervisor's future, the supervisor
    with the run's) and go on with their work. pykka lets an actor choose its futures'
    class (`_create_future`), as its gevent and eventlet actors do.
    """

    def get(self, *, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        value = super().get(timeout=timeout)
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        if isinstance(value, concurrent.futures.Future):
            try:
                return value.result(timeout=remaining)
            except concurrent.futures.TimeoutError:
                msg = f"{timeout} seconds"
                raise pykka.Timeout(msg) from None
        if isinstance(value, pykka.Future):
            return value.get(timeout=remaining)
        return value


def tell(ref: pykka.ActorRef[Any] | None, message: object) -> bool:
    """Tell `ref` if it is alive; False (and a debug line) if it is gone."""
    if ref is None:
        return False
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        logger.debug("Dropped %s: %s is no longer running", type(message).__name__, ref)
        return False
    return True


class Retry:
    """An actor's next attempt at work that may fail (a delivery, a write): at most one
    is pending, it comes back to the actor as `message`, and stopping cancels it."""

    def __init__(self, clock: Clock, ref: pykka.ActorRef[Any], message: object) -> None:
        self._clock = clock
        self._ref = ref
        self._message = message
        self._pending: TimerHandle | None = None

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def attempt(self, work: Callable[[], float | None]) -> None:
        """Do `work` now; when it answers a delay in seconds, try again after that long."""
        self._pending = None
        delay = work()
        if delay is not None:
            self._pending = self._clock.call_later(delay, lambda: tell(self._ref, self._message))

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


def run_id_of(message: object) -> UUID | None:
    if isinstance(message, FetchSnapshot | SnapshotTaken | SnapshotFailed):
        return message.ticket.run_id
    if isinstance(message, RunFinished | Publish | Record):
        return message.result.run_id
    return None


class PipelineActor(pykka.ThreadingActor):
    """An actor of the pipeline. Subclasses implement `handle` and name their `role`."""

    role: ClassVar[str]

    def __init__(self, supervisor: pykka.ActorRef[Any], peers: Peers | None) -> None:
        super().__init__()
        self.supervisor = supervisor
        self.peers = peers
        self._handling: UUID | None = None
        self.current_message: object = None

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, PeersChanged):
            self.peers = message.peers
            return None
        self._handling = run_id_of(message)
        self.current_message = message
        answer = self.handle(message)
        self._handling = None
        self.current_message = None
        return answer

    def handle(self, message: Any) -> Any:
        raise NotImplementedError

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        logger.error(
            "The %s actor failed%s; the supervisor restarts it",
            self.role,
            f" during run {self._handling}" if self._handling else "",
            exc_info=(exception_type, exception_value, traceback) if exception_type else None,  # type: ignore[arg-type]
        )
        tell(self.supervisor, ActorCrashed(self.role, describe_error(exception_value), self._handling))
