"""Break ageing and the kill switch: pure logic over a sequence of runs, no I/O.

`BreakTracker.observe` is fed every run's result, in order, and answers what changed:
each current discrepancy's break (first seen, last seen, consecutive runs, severity
after escalation), the breaks that resolved, and the breaks that just qualified for the
kill switch. Seeded with the store's open breaks, ageing survives a restart.

A run that failed (``result.error`` set) says nothing about the book: it neither ages
nor resolves anything. Only a run that completed without a break resolves it.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from itertools import filterfalse
from typing import TYPE_CHECKING, NamedTuple
from uuid import UUID

import attrs

from reconciliation._domain.breaks import BreakKey, BreakState, break_ids_of, describe_key
from reconciliation._domain.models import AgeingPolicy, Discrepancy, DiscrepancySeverity

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from reconciliation._domain.models import ReconciliationResult

__all__ = ["AgeingPolicy", "AgeingUpdate", "BreakTracker", "Sighting"]


class Sighting(NamedTuple):
    """One break as of one run: what the next run and the run's payloads need, cheap to make.

    The tracker keeps one per open break; `state()` builds the full `BreakState` when
    someone needs it (the audit store, a kill-switch callback), off the run's path.
    """

    break_id: UUID
    first_seen: dt.datetime
    last_seen: dt.datetime
    consecutive_runs: int
    first_run_id: UUID
    last_run_id: UUID
    halted_run_id: UUID | None
    severity: DiscrepancySeverity
    """After escalation by age."""
    discrepancy: Discrepancy
    """The latest sighting as classified: its type, symbol, account and values."""

    def state(self, *, resolved_at: dt.datetime | None = None, resolved_run_id: UUID | None = None) -> BreakState:
        seen = self.discrepancy
        return BreakState(
            break_id=self.break_id,
            account_id=seen.account_id,
            type=seen.type,
            symbol=seen.symbol,
            severity=self.severity,
            local_value=seen.local_value,
            broker_value=seen.broker_value,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            consecutive_runs=self.consecutive_runs,
            first_run_id=self.first_run_id,
            last_run_id=self.last_run_id,
            halted_run_id=self.halted_run_id,
            resolved_at=resolved_at,
            resolved_run_id=resolved_run_id,
            asset_type=seen.asset_type,
            currency=seen.currency,
        )

    @classmethod
    def of(cls, state: BreakState) -> Sighting:
        """The sighting an open break read back from the audit store stands for."""
        seen = {name: getattr(state, name) for name in _DISCREPANCY_FIELDS}
        discrepancy = Discrepancy(**seen, severity=state.severity, timestamp=state.last_seen)
        return cls._make([*(getattr(state, name) for name in cls._fields[:-1]), discrepancy])

    def resolved_at(self, run_timestamp: dt.datetime) -> dt.datetime:
        """When a run taken at `run_timestamp` resolved it (never before its last sighting)."""
        return max(run_timestamp, self.last_seen)


@attrs.frozen
class AgeingUpdate:
    """What one run changed.

    `sightings` has one open break per discrepancy of the run, in the result's order;
    `ended` the breaks that this run (taken at `timestamp`) no longer saw; `halts` the
    breaks this run confirmed for the kill switch. All empty for a failed run.
    `breaks` and `resolved` are the same as full `BreakState`s, built when first read.
    """

    run_id: UUID
    account_id: str
    sightings: tuple[Sighting, ...] = ()
    ended: tuple[Sighting, ...] = ()
    halts: tuple[BreakState, ...] = ()
    timestamp: dt.datetime | None = None

    @functools.cached_property
    def breaks(self) -> tuple[BreakState, ...]:
        return tuple(sighting.state() for sighting in self.sightings)

    @functools.cached_property
    def resolved(self) -> tuple[BreakState, ...]:
        if not self.ended or self.timestamp is None:
            return ()
        when = self.timestamp
        return tuple(s.state(resolved_at=s.resolved_at(when), resolved_run_id=self.run_id) for s in self.ended)

    @functools.cached_property
    def _index(self) -> dict[BreakKey, BreakState]:
        return {state.key: state for state in self.breaks}

    def state_of(self, discrepancy: Discrepancy) -> BreakState:
        """The break of one of this run's discrepancies.

        Raises:
            KeyError: the discrepancy is not one of this run's.
        """
        return self._index[discrepancy.key]

    def escalate(self, result: ReconciliationResult) -> ReconciliationResult:
        """`result` with each discrepancy's severity replaced by its break's, for publishing.

        Linear in the discrepancies; a result none of whose breaks escalated is returned as is.
        """
        if result.run_id != self.run_id:
            msg = f"this update is for run {self.run_id}, not {result.run_id}"
            raise ValueError(msg)
        if len(self.sightings) != len(result.discrepancies):
            msg = f"run {result.run_id} has {len(result.discrepancies)} discrepancies but {len(self.sightings)} breaks"
            raise ValueError(msg)
        if all(d.severity is s.severity for d, s in zip(result.discrepancies, self.sightings, strict=True)):
            return result
        return attrs.evolve(
            result,
            discrepancies=tuple(
                d if d.severity is s.severity else attrs.evolve(d, severity=s.severity)
                for d, s in zip(result.discrepancies, self.sightings, strict=True)
            ),
        )


class BreakTracker:
    """Follows breaks across runs. Not thread-safe: one owner (an actor) feeds it.

    Feed it the comparator's results (classified severities), never results already
    escalated by `AgeingUpdate.escalate`, or a break would be escalated twice.
    """

    def __init__(self, policy: AgeingPolicy | None = None, open_breaks: Iterable[BreakState] = ()) -> None:
        """Start from `open_breaks`, as `AuditStore.load_open_breaks` reads them back.

        Raises:
            ValueError: a break is resolved, or two open breaks share one key.
        """
        self._policy = policy or AgeingPolicy()
        self._open: dict[BreakKey, Sighting] = {}
        self._escalated: set[UUID] = set()
        for state in open_breaks:
            if not state.is_open:
                msg = (
                    f"break {state.break_id} resolved at {state.resolved_at}: only open breaks seed a tracker"
                )
                raise ValueError(msg)
            if state.key in self._open:
                msg = f"two open breaks for {describe_key(state.key)}: {self._open[state.key].break_id} and {state.break_id}"
                raise ValueError(msg)
            self._open[state.key] = Sighting.of(state)

    @property
    def policy(self) -> AgeingPolicy:
        return self._policy

    def escalate(self, break_id: UUID) -> None:
        """Hold the open break `break_id` at CRITICAL from its next sighting on, until it
        resolves (a correction did not resolve it, or was refused)."""
        self._escalated.add(break_id)

    def open_breaks(self, account_id: str) -> tuple[BreakState, ...]:
        return tuple(s.state() for s in self._open.values() if s.discrepancy.account_id == account_id)

    def observe(self, result: ReconciliationResult) -> AgeingUpdate:
        """Age the breaks of `result`'s account by one run. Linear in its discrepancies and
        the account's open breaks; a bad day's 10,000 breaks go through one lean loop, the
        policy consulted only when it can change a severity or halt.

        Raises:
            ValueError: the result holds two discrepancies with one key.
        """
        if result.error is not None:
            return AgeingUpdate(run_id=result.run_id, account_id=result.account_id)
        run_id, timestamp = result.run_id, result.timestamp
        opened = self._open
        policy = self._policy
        new_break_id = break_ids_of(run_id)
        policed = self._escalated or policy != _INERT_POLICY
        keys = list(map(_break_key, result.discrepancies))
        sightings: list[Sighting] = []
        halts: list[BreakState] = []
        for discrepancy, key, before in zip(result.discrepancies, keys, map(opened.get, keys), strict=True):
            if before is None:
                break_id, first_seen, seen_at, runs, first_run_id, halted_run_id = (
                    new_break_id(key), timestamp, timestamp, 1, run_id, None
                )
            else:
                break_id, first_seen, last_seen, runs, first_run_id, _, halted_run_id, _, _ = before
                runs += 1
                seen_at = max(timestamp, last_seen)
            severity = discrepancy.severity
            halting = False
            if policed:
                severity = policy.severity_after(severity, runs, seen_at - first_seen)
                if break_id in self._escalated:
                    severity = DiscrepancySeverity.CRITICAL
                halting = halted_run_id is None and policy.halts(severity, runs)
                if halting:
                    halted_run_id = run_id
            sighting = _new_sighting(
                Sighting,
                (break_id, first_seen, seen_at, runs, first_run_id, run_id, halted_run_id, severity, discrepancy),
            )
            sightings.append(sighting)
            if halting:
                halts.append(sighting.state())
        current = dict(zip(keys, sightings, strict=True))
        if len(current) != len(keys):
            msg = f"run {run_id} reports {describe_key(_first_repeat(keys))} twice"
            raise ValueError(msg)
        account_id = result.account_id
        ended = tuple(
            map(opened.pop, [key for key in filterfalse(current.__contains__, opened) if key[0] == account_id])
        )
        for sighting in ended:
            self._escalated.discard(sighting.break_id)
        opened.update(current)
        return AgeingUpdate(
            run_id=run_id,
            account_id=account_id,
            sightings=tuple(sightings),
            ended=ended,
            halts=tuple(halts),
            timestamp=timestamp,
        )


_DISCREPANCY_FIELDS = ("type", "symbol", "local_value", "broker_value", "account_id", "asset_type", "currency")
"""What a `BreakState` holds of its latest sighting's `Discrepancy`, besides severity and time."""

_INERT_POLICY = AgeingPolicy()
"""The default policy: it never escalates nor halts, so `observe` need not ask it."""

_break_key: Callable[[Discrepancy], BreakKey] = operator.attrgetter(
    "account_id", "type", "symbol", "asset_type", "currency"
)
"""`Discrepancy.key`, read in C: a bad day reads 10,000 of them."""

_new_sighting = tuple.__new__
"""Makes a `Sighting` from a tuple of its fields in C (the NamedTuple's own `__new__` is Python)."""


def _first_repeat(keys: Iterable[BreakKey]) -> BreakKey:
    seen: set[BreakKey] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    msg = "no key repeats"
    raise ValueError(msg)
