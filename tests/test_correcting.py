"""The life of a correction across runs (`_domain/correcting.py`): propose, confirm, apply, verify."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import attrs
import pytest

from reconciliation import CorrectionPolicy, CorrectionStatus, ReconciliationConfig
from reconciliation._domain.ageing import AgeingUpdate, BreakTracker
from reconciliation._domain.compare import compare
from reconciliation._domain.correcting import ApplyOutcome, CorrectionTracker, Decisions
from reconciliation._domain.models import (
    BrokerAccount,
    BrokerPosition,
    DiscrepancySeverity,
    DiscrepancyType,
    LocalAccount,
    Position,
    ReconciliationResult,
    Snapshot,
)

ACCOUNT = "ACC-1"
START = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
CONFIG = ReconciliationConfig(ACCOUNT)
NVDA = BrokerPosition("NVDA", 40, "120.00", "4800")


def books(broker: list[BrokerPosition] = (), *, local_cash: int = 1000, broker_cash: int = 1000) -> Snapshot:  # type: ignore[assignment]
    return Snapshot(
        ACCOUNT,
        [Position("AAPL", 10, 100)],
        LocalAccount(ACCOUNT, local_cash, 0),
        [BrokerPosition("AAPL", 10, 100, 1000), *broker],
        BrokerAccount(ACCOUNT, broker_cash, 0, 0, 0),
        START,
    )


class Scenario:
    """Runs one account's books through break ageing and a correction tracker, as the runtime does."""

    def __init__(self, policy: CorrectionPolicy, *, blocked: tuple[uuid.UUID, ...] = ()) -> None:
        self.ageing = BreakTracker()
        self.tracker = CorrectionTracker(policy, actor="test", blocked=blocked)
        self.minute = 0
        self.last: tuple[ReconciliationResult, AgeingUpdate] | None = None

    def now(self) -> dt.datetime:
        self.minute += 1
        return START + dt.timedelta(minutes=self.minute)

    def result(self, snapshot: Snapshot) -> ReconciliationResult:
        read = self.now()
        snapshot = attrs.evolve(snapshot, taken_at=read, read_started_at=read)
        found = compare(snapshot, CONFIG)
        result = ReconciliationResult(uuid.uuid4(), ACCOUNT, snapshot.taken_at, found.discrepancies)
        self.last = (result, self.ageing.observe(result))
        self.snapshot = snapshot
        return result

    def run(self, snapshot: Snapshot) -> Decisions:
        self.result(snapshot)
        assert self.last is not None
        result, ageing = self.last
        return self.tracker.observe(result, ageing, self.snapshot, self.now())

    def failed_run(self) -> Decisions:
        result = ReconciliationResult(uuid.uuid4(), ACCOUNT, self.now(), error="broker down")
        return self.tracker.observe(result, self.ageing.observe(result), None, self.now())

    def apply(self, decisions: Decisions, error: str | None = None) -> Decisions:
        (correction,) = decisions.apply
        return self.tracker.applied(correction, ApplyOutcome(error=error), self.now())

    def verify(self, applied: Decisions, snapshot: Snapshot | None) -> Decisions:
        (event,) = applied.events
        result = None if snapshot is None else self.result(snapshot)
        return self.tracker.verified([event.correction], result, self.now())


def statuses(decisions: Decisions) -> list[CorrectionStatus]:
    return [event.status for event in decisions.events]


@pytest.fixture
def applying() -> Scenario:
    return Scenario(CorrectionPolicy(mode="apply"))


def applied(scenario: Scenario) -> Decisions:
    """NVDA missing locally, confirmed by two runs, applied."""
    scenario.run(books([NVDA]))
    return scenario.apply(scenario.run(books([NVDA])))


class TestProposing:
    def test_a_new_break_is_proposed_at_once_and_not_yet_confirmed(self, applying: Scenario) -> None:
        decisions = applying.run(books([NVDA]))

        assert statuses(decisions) == [CorrectionStatus.PROPOSED]
        assert decisions.apply == ()

    def test_the_proposal_says_what_would_change(self, applying: Scenario) -> None:
        (event,) = applying.run(books([NVDA])).events

        assert (event.correction.quantity, event.correction.price) == (40, Decimal("120.00"))
        assert (event.mode, event.actor, event.confirm_after_runs) == ("apply", "test", 2)

    def test_a_proposal_is_not_repeated_while_the_figures_stay(self) -> None:
        scenario = Scenario(CorrectionPolicy(confirm_after_runs=5))
        scenario.run(books([NVDA]))

        assert scenario.run(books([NVDA])).events == ()

    def test_a_break_whose_figures_change_is_proposed_again(self) -> None:
        scenario = Scenario(CorrectionPolicy(confirm_after_runs=5))
        scenario.run(books([NVDA]))

        (event,) = scenario.run(books([attrs.evolve(NVDA, quantity=Decimal(60))])).events

        assert (event.status, event.correction.quantity) == (CorrectionStatus.PROPOSED, 60)

    def test_only_the_policys_types_are_proposed(self) -> None:
        scenario = Scenario(CorrectionPolicy(types=["missing_local"]))

        decisions = scenario.run(books([NVDA], broker_cash=1500))

        assert [e.correction.type for e in decisions.events] == [DiscrepancyType.MISSING_LOCAL]

    def test_a_failed_run_proposes_nothing(self, applying: Scenario) -> None:
        assert applying.failed_run() == Decisions()


class TestConfirming:
    def test_propose_mode_confirms_after_the_runs_and_applies_nothing(self) -> None:
        scenario = Scenario(CorrectionPolicy(mode="propose"))
        scenario.run(books([NVDA]))

        decisions = scenario.run(books([NVDA]))

        assert statuses(decisions) == [CorrectionStatus.CONFIRMED]
        assert decisions.apply == ()

    def test_apply_mode_applies_once_the_runs_have_confirmed_it(self, applying: Scenario) -> None:
        applying.run(books([NVDA]))

        decisions = applying.run(books([NVDA]))

        assert [c.type for c in decisions.apply] == [DiscrepancyType.MISSING_LOCAL]
        assert decisions.apply[0].consecutive_runs == 2

    def test_one_run_can_be_enough(self) -> None:
        scenario = Scenario(CorrectionPolicy(mode="apply", confirm_after_runs=1))

        decisions = scenario.run(books([NVDA]))

        assert statuses(decisions) == [CorrectionStatus.PROPOSED, CorrectionStatus.CONFIRMED]
        assert len(decisions.apply) == 1

    def test_a_run_in_between_that_failed_does_not_break_the_streak(self, applying: Scenario) -> None:
        applying.run(books([NVDA]))
        applying.failed_run()

        assert len(applying.run(books([NVDA])).apply) == 1

    def test_propose_mode_confirms_once_per_figures(self) -> None:
        scenario = Scenario(CorrectionPolicy())
        scenario.run(books([NVDA]))
        scenario.run(books([NVDA]))

        assert scenario.run(books([NVDA])).events == ()


class TestLimit:
    def test_a_correction_above_max_notional_is_refused_and_its_break_escalated(self) -> None:
        scenario = Scenario(CorrectionPolicy(mode="apply", max_notional="4799.99"))
        scenario.run(books([NVDA]))

        decisions = scenario.run(books([NVDA]))

        (event,) = decisions.events
        assert (event.status, event.severity) == (CorrectionStatus.REFUSED, DiscrepancySeverity.CRITICAL)
        assert "exceeds max_notional (4799.99)" in (event.reason or "")
        assert decisions.apply == ()
        assert decisions.escalate == (event.correction.break_id,)

    def test_a_correction_at_max_notional_is_applied(self) -> None:
        scenario = Scenario(CorrectionPolicy(mode="apply", max_notional="4800"))
        scenario.run(books([NVDA]))

        assert len(scenario.run(books([NVDA])).apply) == 1

    def test_a_refusal_is_not_repeated_while_the_figures_stay(self) -> None:
        scenario = Scenario(CorrectionPolicy(mode="apply", max_notional=1))
        scenario.run(books([NVDA]))
        scenario.run(books([NVDA]))

        assert scenario.run(books([NVDA])) == Decisions()


class TestApplying:
    def test_an_applied_correction_is_reported(self, applying: Scenario) -> None:
        assert statuses(applied(applying)) == [CorrectionStatus.APPLIED]

    def test_a_break_being_checked_is_not_corrected_again_by_a_run_in_between(
        self, applying: Scenario
    ) -> None:
        applied(applying)

        assert applying.run(books([NVDA])) == Decisions()

    def test_a_failed_application_is_reported_and_leaves_the_break_open(self, applying: Scenario) -> None:
        applying.run(books([NVDA]))

        decisions = applying.apply(applying.run(books([NVDA])), error="RuntimeError: book locked")

        (event,) = decisions.events
        assert (event.status, event.reason) == (CorrectionStatus.FAILED, "RuntimeError: book locked")

    def test_after_a_failed_application_the_next_run_tries_again_afresh(self, applying: Scenario) -> None:
        applying.run(books([NVDA]))
        first = applying.run(books([NVDA])).apply[0]
        applying.tracker.applied(first, ApplyOutcome(error="RuntimeError: book locked"), applying.now())

        decisions = applying.run(books([NVDA]))

        assert statuses(decisions) == [CorrectionStatus.CONFIRMED]
        assert decisions.apply[0].correction_id != first.correction_id


class TestVerifying:
    def test_a_correction_whose_break_is_gone_afterwards_is_verified(self, applying: Scenario) -> None:
        decisions = applying.verify(applied(applying), books())

        (event,) = decisions.events
        assert event.status is CorrectionStatus.VERIFIED
        assert applying.last is not None
        assert event.verification_run_id == applying.last[0].run_id

    def test_a_correction_whose_break_remains_is_unresolved_and_escalated(self, applying: Scenario) -> None:
        decisions = applying.verify(applied(applying), books([NVDA]))

        (event,) = decisions.events
        assert (event.status, event.severity) == (CorrectionStatus.UNRESOLVED, DiscrepancySeverity.CRITICAL)
        assert "still found the break (local none, broker 40)" in (event.reason or "")
        assert decisions.escalate == (event.correction.break_id,)

    def test_an_unresolved_break_is_never_corrected_again(self, applying: Scenario) -> None:
        (unresolved,) = applying.verify(applied(applying), books([NVDA])).events

        later = [applying.run(books([attrs.evolve(NVDA, quantity=Decimal(n))])) for n in (41, 42, 43)]

        assert later == [Decisions()] * 3
        assert applying.tracker.blocked == {unresolved.correction.break_id}

    def test_an_unresolved_break_that_resolves_and_comes_back_is_corrected_again(
        self, applying: Scenario
    ) -> None:
        applying.verify(applied(applying), books([NVDA]))
        applying.run(books())

        assert statuses(applying.run(books([NVDA]))) == [CorrectionStatus.PROPOSED]

    def test_when_the_checking_run_fails_the_next_completed_run_decides(self, applying: Scenario) -> None:
        check = applied(applying)
        assert applying.verify(check, None) == Decisions()

        assert statuses(applying.run(books())) == [CorrectionStatus.VERIFIED]

    def test_a_break_that_resolved_during_the_application_is_verified(self, applying: Scenario) -> None:
        applying.run(books([NVDA]))
        decisions = applying.run(books([NVDA]))
        applying.run(books())
        check = applying.apply(decisions)

        assert statuses(applying.verify(check, books())) == [CorrectionStatus.VERIFIED]


def test_breaks_read_back_as_blocked_are_never_corrected() -> None:
    probe = Scenario(CorrectionPolicy())
    (event,) = probe.run(books([NVDA])).events
    scenario = Scenario(CorrectionPolicy(mode="apply"), blocked=(event.correction.break_id,))
    scenario.ageing = probe.ageing

    assert scenario.run(books([NVDA])) == Decisions()
