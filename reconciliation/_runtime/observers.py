"""What a runtime tells those who watch it: each finished run, and how each book call went.

A host's metrics (`reconciliation.metrics`) or test capture (`reconciliation.testing`)
implements `RuntimeObserver` and is added to a runtime (`add_observer`) or to every
runtime of the process (`PROCESS_OBSERVERS`, what `capture_published` uses).

An observer may also have `correction_event(event)`: each step of an auto-correction
(`CorrectionEvent`), told as it is handed to the sinks. It is optional, so an observer
written before corrections existed keeps working.

Observers are called synchronously in the runtime's own threads — `run_finished` in the
emit step, before anyone waiting for the run is answered; `book_call_ended` on the
fetch loop; `correction_event` in the corrector — so they must be quick and must not
block. One that raises is logged and skipped; it never costs a run.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    from reconciliation._domain.correction import CorrectionEvent
    from reconciliation._domain.sinks import FinishedRun

__all__ = ["PROCESS_OBSERVERS", "BookCallTiming", "Observers", "RuntimeObserver"]

logger = logging.getLogger(__name__)

@attrs.frozen
class BookCallTiming:
    """One call to a book: `call` is `broker.get_positions`, `local.get_account`, ...

    `outcome` is `ok`, `failed` (it raised or answered malformed data is not judged
    here), `timeout` (it outlived the run's limit) or `still_hung` (not made: the
    previous call of it has not returned); `seconds` is how long the run waited.

    .. versionadded:: 0.1
    """

    account_id: str
    call: str
    seconds: float
    outcome: Literal["ok", "failed", "timeout", "still_hung"]


@runtime_checkable
class RuntimeObserver(Protocol):
    def run_finished(self, run: FinishedRun) -> None: ...

    def book_call_ended(self, timing: BookCallTiming) -> None: ...


class Observers:
    """A set of observers, added and removed from any thread, called from the runtime's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._observers: tuple[RuntimeObserver, ...] = ()

    def add(self, observer: RuntimeObserver) -> None:
        if not isinstance(observer, RuntimeObserver):
            msg = f"an observer has run_finished(run) and book_call_ended(timing), not {observer!r:.100}"
            raise TypeError(msg)
        with self._lock:
            self._observers = (*self._observers, observer)

    def remove(self, observer: RuntimeObserver) -> None:
        with self._lock:
            self._observers = tuple(o for o in self._observers if o is not observer)

    def run_finished(self, run: FinishedRun) -> None:
        self._tell("run_finished", run, "run %s", run.result.run_id)

    def book_call_ended(self, timing: BookCallTiming) -> None:
        self._tell("book_call_ended", timing, "a %s call", timing.call)

    def correction_event(self, event: CorrectionEvent) -> None:
        self._tell("correction_event", event, "a %s correction event", event.status.value)

    def _tell(self, hook: str, value: object, what: str, detail: object) -> None:
        """Call each observer's `hook` that it has; one that raises is logged as failing on `what % detail`."""
        for observer in self._observers:
            told = getattr(observer, hook, None)
            if told is None:
                continue
            try:
                told(value)
            except BaseException:
                logger.exception("An observer failed on %s", what % (detail,))


PROCESS_OBSERVERS = Observers()
"""Observers of every runtime in this process (a test capture, typically)."""
