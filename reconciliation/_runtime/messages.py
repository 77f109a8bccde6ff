"""The messages actors and callers exchange, in the order a run sees them.

All immutable. The one mutable thing a message may carry is a
`concurrent.futures.Future`: a write-once channel back to whoever waits for a run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from uuid import UUID

import attrs

from reconciliation._domain.breaks import BreakState
from reconciliation._domain.compare import Comparison
from reconciliation._domain.correcting import ApplyOutcome
from reconciliation._domain.correction import Correction
from reconciliation._domain.fencing import Fence
from reconciliation._domain.fills import Fill
from reconciliation._domain.models import AssetType, ReconciliationResult, Snapshot
from reconciliation._domain.triggers import Trigger
from reconciliation._domain.values import carriable_text, name_text

__all__ = [
    "AbandonRun",
    "Application",
    "ApplyCorrection",
    "Barrier",
    "DebounceDue",
    "EscalateBreak",
    "FetchSnapshot",
    "FillsRead",
    "FillsWanted",
    "HaltCallback",
    "InFlight",
    "LeaseHeld",
    "LeaseNotHeld",
    "PeriodicDue",
    "ReconcileRequest",
    "RunEnded",
    "RunRequested",
    "RunTicket",
    "SnapshotFailed",
    "SnapshotTaken",
    "TimerDue",
    "WatchdogDue",
]

HaltCallback = Callable[[BreakState, ReconciliationResult], object]
"""The kill switch: called with the confirmed break and the run that confirmed it.
It runs on the comparator's thread, so it must be quick (tell the engine's risk actor)."""


@attrs.frozen
class ReconcileRequest:
    """Ask the service's ref for an on-demand run; the reply is a ReconciliationResult.

    .. versionadded:: 0.1
    """

    account_id: str = attrs.field(validator=name_text)
    requested_by: str = attrs.field(default="api", validator=carriable_text)


@attrs.frozen
class RunRequested:
    """A trigger fired for an account; `reply`, if any, receives the run's result."""

    account_id: str
    trigger: Trigger
    reply: Future[ReconciliationResult] | None = attrs.field(default=None, eq=False)


@attrs.frozen
class RunTicket:
    """One run, from its start to its result.

    `started` is on the service clock's monotonic scale. `outcome` receives the run's
    result exactly once, from the comparator, however the run ends: everyone waiting
    for the run (askers, the scheduler) waits on it.
    """

    run_id: UUID
    account_id: str
    trigger: Trigger
    started_at: dt.datetime
    started: float
    next_periodic_seconds: float | None = None
    """How long after the run's end its account's next periodic run is due; None without one."""
    outcome: Future[ReconciliationResult] = attrs.field(factory=Future, eq=False, repr=False)
    fence: Fence | None = None
    """The lease this runtime held on the account when the run started (see `lease_actor`)."""


@attrs.frozen
class FetchSnapshot:
    ticket: RunTicket


@attrs.frozen
class SnapshotTaken:
    ticket: RunTicket
    snapshot: Snapshot


@attrs.frozen
class FillsWanted:
    """Read the fills behind a compared run's position breaks (told to the fetcher): for each
    break's position, both books' fills since `since`. The run is finished when they are in."""

    ticket: RunTicket
    snapshot: Snapshot
    comparison: Comparison
    suspect: str | None
    positions: tuple[tuple[str, AssetType, dt.datetime], ...]
    """(symbol, asset type, since) of each break to explain."""


@attrs.frozen
class FillsRead:
    """Told back to the comparator: each position's fills, per side (absent: that side could not
    say), and what was not read."""

    wanted: FillsWanted
    local: Mapping[tuple[str, AssetType], tuple[Fill, ...]]
    broker: Mapping[tuple[str, AssetType], tuple[Fill, ...]]
    note: str | None = None


@attrs.frozen
class SnapshotFailed:
    ticket: RunTicket
    reason: str


@attrs.frozen
class AbandonRun:
    """Finish the run as failed unless it has finished already (watchdog, stop)."""

    ticket: RunTicket
    reason: str


@attrs.frozen
class RunEnded:
    """The run's outcome is set: the scheduler may start the account's next run.

    `ended` is when, on the clock's monotonic scale: the next periodic run is due an
    interval after it, however long this message took to arrive.
    """

    account_id: str
    run_id: UUID
    ended: float


@attrs.frozen
class Application:
    """How one call of the book's `apply_correction` goes: `outcome` receives how it ended
    (in time or not); `landed`, for a call that did not answer in time, what it ended with
    when it returned after all (None: it returned; else what it raised) — if it ever does."""

    outcome: Future[ApplyOutcome] = attrs.field(factory=Future, eq=False, repr=False)
    landed: Future[str | None] = attrs.field(factory=Future, eq=False, repr=False)


@attrs.frozen
class ApplyCorrection:
    """Told to the fetcher, which calls the book's `apply_correction` as it calls every
    book method, and answers through `application`."""

    correction: Correction
    application: Application = attrs.field(eq=False, repr=False)


@attrs.frozen
class EscalateBreak:
    """Told to the comparator: hold an open break at CRITICAL (a correction did not resolve it)."""

    account_id: str
    break_id: UUID


@attrs.frozen
class PeriodicDue:
    account_id: str
    generation: int


@attrs.frozen
class DebounceDue:
    account_id: str


@attrs.frozen
class WatchdogDue:
    account_id: str
    run_id: UUID


@attrs.frozen
class LeaseHeld:
    """Told to the scheduler: this runtime reconciles the account, under `fence` — or, None,
    without one while Redis cannot confirm the lease (runs are logged and journaled, and
    nothing is corrected: the corrector claims the lease before each apply)."""

    account_id: str
    fence: Fence | None


@attrs.frozen
class LeaseNotHeld:
    """Told to the scheduler: the account is held as standby, and `why` (owned by another
    runtime, or Redis cannot confirm the lease): it is not reconciled here."""

    account_id: str
    why: str


@attrs.frozen
class InFlight:
    """Ask the scheduler for the outcomes of the runs it holds (in flight, or waiting to follow)."""


@attrs.frozen
class Barrier:
    """Asked of an actor: answered once everything told to it before has been handled."""


@attrs.frozen
class TimerDue:
    """An actor's own timer: a delivery actor tries its sink again, the lease actor renews its
    leases and tries for the others."""
