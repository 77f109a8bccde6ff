"""Exactly one application per break, whatever the interleaving of runs, deadlines and late answers.

A book misses a fill of 40 NVDA that the broker has. Runs read the book at some moment and
are judged later (a run may be in flight while a correction is applied); applications
answer in time, raise, or miss their deadline and land late — or never. However these
interleave, the book is corrected at most once: it holds 0 or 40, never 80.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciliation import CorrectionPolicy, ReconciliationConfig
from reconciliation._domain.ageing import BreakTracker
from reconciliation._domain.compare import compare
from reconciliation._domain.correcting import ApplyOutcome, CorrectionTracker, Stage
from reconciliation._domain.correction import Correction, CorrectionStatus
from reconciliation._domain.models import (
    BrokerAccount,
    BrokerPosition,
    LocalAccount,
    Position,
    ReconciliationResult,
    Snapshot,
)

ACCOUNT = "ACC-1"
START = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
BROKER = 40

STEPS = st.sampled_from(
    ["read", "read", "judge", "judge", "answer", "raise", "time_out", "time_out", "land", "land_raising", "verify"]
)
"""Reads and judgements more often than the rest: a break needs runs to be confirmed."""


@attrs.define
class Call:
    correction: Correction
    timed_out: bool = False


class Harness:
    """One account: the book, the broker, the runs read but not yet judged, the call in flight."""

    def __init__(self, confirm_after_runs: int) -> None:
        self.tracker = CorrectionTracker(
            CorrectionPolicy(mode="apply", confirm_after_runs=confirm_after_runs), actor="property"
        )
        self.ageing = BreakTracker()
        self.book = 0
        self.minute = 0
        self.reads: list[Snapshot] = []
        self.call: Call | None = None
        self.late: Call | None = None
        self.applied_events = 0

    def now(self) -> dt.datetime:
        self.minute += 1
        return START + dt.timedelta(minutes=self.minute)

    def snapshot(self) -> Snapshot:
        read = self.now()
        positions = [Position("NVDA", self.book, "120")] if self.book else []
        return Snapshot(
            ACCOUNT,
            positions,
            LocalAccount(ACCOUNT, 0, 0),
            [BrokerPosition("NVDA", BROKER, "120", "4800")],
            BrokerAccount(ACCOUNT, 0, 0, 0, 0),
            read,
            read_started_at=read,
        )

    def result(self, snapshot: Snapshot) -> ReconciliationResult:
        found = compare(snapshot, ReconciliationConfig(ACCOUNT, equity_tolerance_pct=Decimal(100)))
        return ReconciliationResult(uuid.uuid4(), ACCOUNT, snapshot.taken_at, found.discrepancies)

    def step(self, step: str) -> None:
        getattr(self, f"_{step}")()
        assert self.book in {0, BROKER}, f"the book holds {self.book}: corrected twice"

    def _read(self) -> None:
        if len(self.reads) < 2:  # a run in flight and the next, at most
            self.reads.append(self.snapshot())

    def _judge(self) -> None:
        if not self.reads:
            return
        snapshot = self.reads.pop(0)
        result = self.result(snapshot)
        decisions = self.tracker.observe(result, self.ageing.observe(result), snapshot, self.now())
        for correction in decisions.apply:
            assert self.call is None, "applied while an earlier application runs"
            assert self.late is None, "applied while an earlier application may still land"
            self.call = Call(correction)

    def _answer(self) -> None:
        if self.call is not None:
            self.book += int(self.call.correction.quantity or 0)
            self._outcome(self.tracker.applied(self.call.correction, ApplyOutcome(), self.now()).events)
            self.call = None

    def _raise(self) -> None:
        if self.call is not None:
            self.tracker.applied(self.call.correction, ApplyOutcome(error="RuntimeError: locked"), self.now())
            self.call = None

    def _time_out(self) -> None:
        if self.call is not None:
            self.tracker.applied(
                self.call.correction, ApplyOutcome(error="did not answer", timed_out=True), self.now()
            )
            self.late, self.call = self.call, None

    def _land(self) -> None:
        if self.late is not None:
            self.book += int(self.late.correction.quantity or 0)
            self._outcome(self.tracker.landed(self.late.correction, None, self.now()).events)
            self.late = None

    def _land_raising(self) -> None:
        if self.late is not None:
            self.tracker.landed(self.late.correction, "RuntimeError: locked", self.now())
            self.late = None

    def _verify(self) -> None:
        memories = self.tracker._memory.values()
        verifying = [m.applied for m in memories if m.stage is Stage.VERIFYING and m.applied]
        if verifying:
            self.tracker.verified(verifying, self.result(self.snapshot()), self.now())

    def _outcome(self, events: tuple[object, ...]) -> None:
        self.applied_events += sum(
            1
            for event in events
            if getattr(event, "status", None) in {CorrectionStatus.APPLIED, CorrectionStatus.APPLIED_LATE}
        )


@settings(max_examples=500, deadline=None)
@given(st.lists(STEPS, min_size=8, max_size=80), st.integers(min_value=1, max_value=3))
def test_a_break_is_corrected_at_most_once_whatever_the_interleaving(steps: list[str], confirm: int) -> None:
    harness = Harness(confirm)

    for step in steps:
        harness.step(step)

    assert harness.applied_events <= 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["read", "judge"]), min_size=12, max_size=40))
def test_without_failures_a_confirmed_break_is_corrected(steps: list[str]) -> None:
    harness = Harness(1)

    for step in [*steps, "read", "judge", "answer", "read", "judge"]:
        harness.step(step)

    assert harness.book == BROKER
