"""The messages actors and callers exchange, in the order a run sees them.

All immutable. A `reply` is a `concurrent.futures.Future`: the one mutable thing a
message carries, a write-once channel back to whoever asked.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future
from typing import Any
from uuid import UUID

import attrs
import pykka

from reconciliation._domain.ageing import AgeingUpdate
from reconciliation._domain.models import ReconciliationResult, Snapshot
from reconciliation._domain.triggers import Trigger
from reconciliation._domain.values import non_empty_text

__all__ = [
    "ActorCrashed",
    "AuditHealthRequest",
    "DebounceDue",
    "FetchSnapshot",
    "HealthRequest",
    "Peers",
    "PeersChanged",
    "PeersRequest",
    "PeriodicDue",
    "Publish",
    "PublisherHealthRequest",
    "ReconcileRequest",
    "Record",
    "RetryDelivery",
    "RetryRecording",
    "RunAborted",
    "RunFinished",
    "RunRequested",
    "RunTicket",
    "SnapshotFailed",
    "SnapshotTaken",
    "WatchdogDue",
]


@attrs.frozen
class ReconcileRequest:
    """Ask the service's ref for an on-demand run; the reply is a ReconciliationResult."""

    account_id: str = attrs.field(validator=non_empty_text)
    requested_by: str = attrs.field(default="api", validator=non_empty_text)


@attrs.frozen
class RunRequested:
    """A trigger fired for an account; `reply`, if any, receives the run's result."""

    account_id: str
    trigger: Trigger
    reply: Future[ReconciliationResult] | None = attrs.field(default=None, eq=False)


@attrs.frozen
class RunTicket:
    """One run, from its start to its result; `started` is on the service clock's monotonic scale."""

    run_id: UUID
    account_id: str
    trigger: Trigger
    started_at: dt.datetime
    started: float


@attrs.frozen
class FetchSnapshot:
    ticket: RunTicket


@attrs.frozen
class SnapshotTaken:
    ticket: RunTicket
    snapshot: Snapshot


@attrs.frozen
class SnapshotFailed:
    ticket: RunTicket
    reason: str


@attrs.frozen
class RunFinished:
    result: ReconciliationResult


@attrs.frozen
class RunAborted:
    """A run that cannot finish normally, e.g. an actor died holding it."""

    run_id: UUID
    reason: str


@attrs.frozen
class Publish:
    """A finished run for Redis; `ageing` (None for an abandoned run) says how old its breaks are."""

    result: ReconciliationResult
    ageing: AgeingUpdate | None = None


@attrs.frozen
class Record:
    """A finished run for the audit store."""

    result: ReconciliationResult
    ageing: AgeingUpdate


@attrs.frozen
class RetryRecording:
    pass


@attrs.frozen
class AuditHealthRequest:
    pass


@attrs.frozen
class PeriodicDue:
    account_id: str
    generation: int


@attrs.frozen
class DebounceDue:
    account_id: str


@attrs.frozen
class WatchdogDue:
    run_id: UUID


@attrs.frozen
class RetryDelivery:
    pass


@attrs.frozen
class PublisherHealthRequest:
    pass


@attrs.frozen
class HealthRequest:
    pass


@attrs.frozen
class Peers:
    """Where each part of the pipeline is now; re-sent whenever one is restarted."""

    supervisor: pykka.ActorRef[Any]
    debouncer: pykka.ActorRef[Any]
    scheduler: pykka.ActorRef[Any]
    fetcher: pykka.ActorRef[Any]
    comparator: pykka.ActorRef[Any]
    publisher: pykka.ActorRef[Any]
    audit: pykka.ActorRef[Any] | None = None


@attrs.frozen
class PeersRequest:
    """Ask the supervisor where each actor of the pipeline is now (diagnostics, tests)."""


@attrs.frozen
class PeersChanged:
    peers: Peers


@attrs.frozen
class ActorCrashed:
    """An actor died of an unexpected exception while handling `run_id` (if any)."""

    role: str
    error: str
    run_id: UUID | None
