"""What every actor of the pipeline shares: it never dies, and it says how it is doing.

No exception leaves an actor of ours (pykka would drop its inbox, or stop every actor of
the process): a failing handler, `on_start` or `on_stop` is logged with the run it was
handling, that run is reported failed (`fail_run`), the component is marked degraded on
the `HealthBoard`, and the actor goes on (docs/architecture.md, "How failures are contained").
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any, Protocol

import pykka

from reconciliation._domain.error_text import describe_error
from reconciliation._domain.sinks import FinishedRun
from reconciliation._runtime.health import ComponentHealth, ComponentState
from reconciliation._runtime.messages import Barrier, FillsRead, RunTicket

if TYPE_CHECKING:
    import datetime as dt
    from uuid import UUID

    from reconciliation._runtime.clock import Clock
    from reconciliation._runtime.health import HealthBoard

__all__ = ["ResilientActor", "Teller", "actor_of", "run_id_of", "tell"]

logger = logging.getLogger(__name__)


_ACTORS: weakref.WeakValueDictionary[str, ResilientActor] = weakref.WeakValueDictionary()
"""Our actors by URN, while they exist."""


class Teller(Protocol):
    """What a run is told to: an actor's ref, or a stand-in that does something first (the
    journaling ref of the Redis delivery actor)."""

    def tell(self, message: Any) -> None: ...


def actor_of(ref: pykka.ActorRef[Any]) -> ResilientActor | None:
    """The actor behind one of our refs, while it exists: the runtime reaches its threads and
    cuts off a stalled sink from outside it."""
    return _ACTORS.get(ref.actor_urn)


def ticket_of(message: object) -> RunTicket | None:
    """The run a message is about, if it carries one's ticket (a `FillsRead`, its request's)."""
    ticket = getattr(message.wanted if isinstance(message, FillsRead) else message, "ticket", None)
    return ticket if isinstance(ticket, RunTicket) else None


def run_id_of(message: object) -> UUID | None:
    if isinstance(message, FinishedRun):
        return message.result.run_id
    ticket = ticket_of(message)
    return None if ticket is None else ticket.run_id


def tell(ref: pykka.ActorRef[Any], message: object) -> None:
    """Tell `ref`, from a thread that is not an actor's (a timer, a future's callback):
    an actor that has stopped (the service is stopping) needs nothing more."""
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        logger.debug("%s is stopped; dropped %s", ref, type(message).__name__)


class ResilientActor(pykka.ThreadingActor):
    """Subclasses name their `component`, implement `handle`, and may override
    `started`, `stopping` and `fail_run`."""

    component: str
    recovers_after_clean_run = True
    """Back to running once a run's message is handled without error (a delivery actor
    instead recovers when its sink takes runs again)."""
    use_daemon_thread = True
    """A host that exits without stopping the service is not kept alive by it."""

    def __init__(self, *, board: HealthBoard, clock: Clock) -> None:
        super().__init__()
        _ACTORS[self.actor_urn] = self
        self.thread: threading.Thread | None = None
        self._board = board
        self._clock = clock
        self._state = ComponentState.RUNNING
        self._errors = 0
        self._last_error: str | None = None
        self._last_error_at: dt.datetime | None = None

    def handle(self, message: Any) -> Any:
        raise NotImplementedError

    def started(self) -> None:
        """Set-up in the actor's own thread, before its first message."""

    def stopping(self) -> None:
        """Clean-up after the last message (what is still queued has been handled)."""

    def fail_run(self, message: Any, reason: str) -> None:
        """Report the run `message` is about as failed with `reason` (handling it failed).

        The default knows no run: the failure is only logged and counted.
        """

    def on_start(self) -> None:
        self.thread = threading.current_thread()
        try:
            self.started()
        except BaseException as error:  # noqa: BLE001 - see the module docstring
            self._failed(error, "while starting")
        self._post()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Barrier):
            return None
        try:
            answer = self.handle(message)
        except BaseException as error:  # noqa: BLE001 - see the module docstring
            run_id = run_id_of(message)
            self._failed(error, f"on {type(message).__name__}" + (f" of run {run_id}" if run_id else ""))
            try:
                self.fail_run(message, f"the {self.component} failed: {describe_error(error)}")
            except BaseException:
                logger.exception("The %s could not report the failed run", self.component)
            return None
        if (
            self.recovers_after_clean_run
            and self._state is ComponentState.DEGRADED
            and run_id_of(message) is not None
        ):
            self._recovered()
        return answer

    def on_stop(self) -> None:
        try:
            self.stopping()
        except BaseException as error:  # noqa: BLE001 - see the module docstring
            self._failed(error, "while stopping")
        self._become(ComponentState.STOPPED)

    def degrade(self, reason: str) -> None:
        """Mark the component degraded for a failure it handled itself (a sink that is down)."""
        self._errors += 1
        self._last_error = reason
        self._last_error_at = self._clock.now()
        self._become(ComponentState.DEGRADED)

    def _recovered(self) -> None:
        logger.info("The %s works again after %d errors", self.component, self._errors)
        self._become(ComponentState.RUNNING)

    def _become(self, state: ComponentState) -> None:
        """Go to `state` and post it, if `TRANSITIONS` allows; an invalid transition is refused and logged."""
        if not self._state.may_become(state):
            logger.warning(
                "The %s refused to go from %s to %s", self.component, self._state.value, state.value
            )
            return
        self._state = state
        self._post()

    def _failed(self, error: BaseException, where: str) -> None:
        text = describe_error(error)
        logger.error(
            "The %s failed %s: %s; it goes on",
            self.component,
            where,
            text,
            exc_info=error,
            extra={"component": self.component},
        )
        self.degrade(text)

    def _post(self) -> None:
        self._board.post(
            ComponentHealth(
                name=self.component,
                state=self._state,
                errors=self._errors,
                last_error=self._last_error,
                last_error_at=self._last_error_at,
            )
        )
