from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciliation._domain.ageing import AgeingPolicy, BreakTracker, Sighting
from reconciliation._domain.models import (
    AssetType,
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    ReconciliationResult,
)

T0 = dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.UTC)
ACC = "ACC-1"
INFO, WARNING, CRITICAL = DiscrepancySeverity.INFO, DiscrepancySeverity.WARNING, DiscrepancySeverity.CRITICAL


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def quantity(
    symbol: str = "AAPL", *, account: str = ACC, severity: DiscrepancySeverity = CRITICAL
) -> Discrepancy:
    return Discrepancy(
        type=DiscrepancyType.QUANTITY_MISMATCH,
        severity=severity,
        symbol=symbol,
        local_value=Decimal(100),
        broker_value=Decimal(150),
        timestamp=T0,
        account_id=account,
    )


def cash(severity: DiscrepancySeverity = WARNING) -> Discrepancy:
    return Discrepancy(
        type=DiscrepancyType.CASH_MISMATCH,
        severity=severity,
        symbol=None,
        local_value=Decimal("1000.00"),
        broker_value=Decimal("987.65"),
        timestamp=T0,
        account_id=ACC,
    )


def run(
    minutes: float, *discrepancies: Discrepancy, error: str | None = None, account: str = ACC
) -> ReconciliationResult:
    return ReconciliationResult(
        run_id=uuid.uuid4(),
        account_id=account,
        timestamp=at(minutes),
        discrepancies=discrepancies,
        error=error,
    )


FAILED = "broker timed out after 30.0 s"


def test_the_sightings_observe_makes_are_whole_sightings_keyed_as_their_discrepancies():
    tracker = BreakTracker(AgeingPolicy(escalate_after_runs=2, halt_after_runs=2))
    for minutes in (0, 5):
        update = tracker.observe(run(minutes, quantity(), cash(), quantity("MSFT", severity=WARNING)))
        for sighting, discrepancy in zip(update.sightings, update.breaks, strict=True):
            assert sighting == Sighting(*sighting)
            assert len(sighting) == len(Sighting._fields)
            assert sighting.state().key == discrepancy.key == sighting.discrepancy.key
    assert [state.symbol for state in update.halts] == ["AAPL", None, "MSFT"]


class TestAge:
    def test_a_break_first_seen_is_its_first_run(self):
        first = run(0, quantity())
        state = BreakTracker().observe(first).state_of(quantity())
        assert (state.first_seen, state.last_seen, state.consecutive_runs) == (at(0), at(0), 1)
        assert state.first_run_id == state.last_run_id == first.run_id

    def test_a_break_age_grows_across_runs(self):
        tracker = BreakTracker()
        tracker.observe(run(0, quantity()))
        tracker.observe(run(5, quantity()))
        third = run(10, quantity())
        state = tracker.observe(third).state_of(quantity())
        assert (state.first_seen, state.last_seen, state.consecutive_runs) == (at(0), at(10), 3)
        assert state.age == dt.timedelta(minutes=10)
        assert state.last_run_id == third.run_id

    def test_the_break_keeps_its_id_while_it_persists(self):
        tracker = BreakTracker()
        first = tracker.observe(run(0, quantity())).state_of(quantity())
        second = tracker.observe(run(5, quantity())).state_of(quantity())
        assert second.break_id == first.break_id

    def test_latest_values_are_kept(self):
        tracker = BreakTracker()
        tracker.observe(run(0, quantity()))
        moved = attrs.evolve(quantity(), broker_value=Decimal("175.5"))
        assert tracker.observe(run(5, moved)).state_of(moved).broker_value == Decimal("175.5")

    def test_consecutive_runs_resets_when_it_resolves_and_comes_back(self):
        tracker = BreakTracker()
        before = tracker.observe(run(0, quantity())).state_of(quantity())
        tracker.observe(run(5, quantity()))
        tracker.observe(run(10))
        again = tracker.observe(run(15, quantity())).state_of(quantity())
        assert (again.first_seen, again.consecutive_runs) == (at(15), 1)
        assert again.break_id != before.break_id

    def test_breaks_of_one_symbol_and_type_age_independently(self):
        tracker = BreakTracker()
        tracker.observe(run(0, quantity("AAPL")))
        update = tracker.observe(run(5, quantity("AAPL"), quantity("MSFT")))
        assert update.state_of(quantity("AAPL")).consecutive_runs == 2
        assert update.state_of(quantity("MSFT")).consecutive_runs == 1

    def test_a_clock_that_steps_back_does_not_make_a_break_younger(self):
        tracker = BreakTracker()
        tracker.observe(run(10, quantity()))
        state = tracker.observe(run(9, quantity())).state_of(quantity())
        assert (state.first_seen, state.last_seen, state.consecutive_runs) == (at(10), at(10), 2)

    def test_one_key_twice_in_a_run_is_refused(self):
        with pytest.raises(ValueError, match="twice"):
            BreakTracker().observe(run(0, quantity(), quantity()))


class TestFailedRun:
    def test_a_failed_run_does_not_age_a_break(self):
        tracker = BreakTracker()
        tracker.observe(run(0, quantity()))
        tracker.observe(run(5, error=FAILED))
        state = tracker.observe(run(10, quantity())).state_of(quantity())
        assert (state.first_seen, state.consecutive_runs) == (at(0), 2)

    def test_a_failed_run_does_not_resolve_a_break(self):
        tracker = BreakTracker()
        tracker.observe(run(0, quantity()))
        update = tracker.observe(run(5, error=FAILED))
        assert (update.breaks, update.resolved, update.halts) == ((), (), ())
        assert [s.key for s in tracker.open_breaks(ACC)] == [quantity().key]

    def test_a_failed_run_does_not_fire_the_kill_switch(self):
        tracker = BreakTracker(AgeingPolicy(halt_after_runs=2))
        tracker.observe(run(0, quantity()))
        assert tracker.observe(run(5, error=FAILED)).halts == ()


class TestResolution:
    def test_a_break_absent_from_a_completed_run_is_resolved(self):
        tracker = BreakTracker()
        opened = tracker.observe(run(0, quantity())).state_of(quantity())
        clean = run(5)
        (resolved,) = tracker.observe(clean).resolved
        assert resolved.break_id == opened.break_id
        assert (resolved.resolved_at, resolved.resolved_run_id) == (at(5), clean.run_id)
        assert not resolved.is_open
        assert tracker.open_breaks(ACC) == ()

    def test_resolved_breaks_are_reported_once(self):
        tracker = BreakTracker()
        tracker.observe(run(0, quantity()))
        assert len(tracker.observe(run(5)).resolved) == 1
        assert tracker.observe(run(10)).resolved == ()

    def test_only_the_absent_break_resolves(self):
        tracker = BreakTracker()
        tracker.observe(run(0, quantity("AAPL"), cash()))
        update = tracker.observe(run(5, cash()))
        assert [s.key for s in update.resolved] == [quantity("AAPL").key]
        assert [s.key for s in update.breaks] == [cash().key]

    def test_a_run_for_another_account_resolves_nothing(self):
        tracker = BreakTracker()
        tracker.observe(run(0, quantity()))
        assert tracker.observe(run(5, account="ACC-2")).resolved == ()
        assert len(tracker.open_breaks(ACC)) == 1


class TestEscalation:
    def test_no_escalation_by_default(self):
        tracker = BreakTracker()
        for minute in range(50):
            update = tracker.observe(run(minute * 60, cash()))
        assert update.state_of(cash()).severity is WARNING

    def test_escalation_exactly_at_the_run_threshold(self):
        tracker = BreakTracker(AgeingPolicy(escalate_after_runs=3))
        severities = [tracker.observe(run(m, cash())).state_of(cash()).severity for m in range(4)]
        assert severities == [WARNING, WARNING, CRITICAL, CRITICAL]

    def test_escalation_exactly_at_the_seconds_threshold(self):
        tracker = BreakTracker(AgeingPolicy(escalate_after_seconds=3600))
        severities = [
            tracker.observe(run(minutes, cash())).state_of(cash()).severity for minutes in (0, 59, 60)
        ]
        assert severities == [WARNING, WARNING, CRITICAL]

    def test_escalation_by_seconds_just_before_the_threshold_does_not_escalate(self):
        tracker = BreakTracker(AgeingPolicy(escalate_after_seconds=3600))
        tracker.observe(run(0, cash()))
        assert tracker.observe(run(60 - 1 / 60_000, cash())).state_of(cash()).severity is WARNING

    def test_whichever_threshold_comes_first_escalates(self):
        tracker = BreakTracker(AgeingPolicy(escalate_after_runs=10, escalate_after_seconds=120))
        tracker.observe(run(0, cash()))
        assert tracker.observe(run(2, cash())).state_of(cash()).severity is CRITICAL

    def test_escalation_raises_one_level_and_only_once(self):
        tracker = BreakTracker(AgeingPolicy(escalate_after_runs=2))
        cost = Discrepancy(
            type=DiscrepancyType.COST_MISMATCH,
            severity=INFO,
            symbol="AAPL",
            local_value=Decimal("10.00"),
            broker_value=Decimal("10.01"),
            timestamp=T0,
            account_id=ACC,
        )
        severities = [tracker.observe(run(m, cost)).state_of(cost).severity for m in range(5)]
        assert severities == [INFO, WARNING, WARNING, WARNING, WARNING]

    def test_escalation_to_a_configured_level(self):
        policy = AgeingPolicy(escalate_after_runs=2, escalate_to="critical")
        tracker = BreakTracker(policy)
        info = attrs.evolve(quantity(), severity=INFO)
        tracker.observe(run(0, info))
        assert tracker.observe(run(1, info)).state_of(info).severity is CRITICAL

    def test_escalation_never_lowers_a_severity(self):
        tracker = BreakTracker(AgeingPolicy(escalate_after_runs=1, escalate_to=WARNING))
        assert tracker.observe(run(0, quantity())).state_of(quantity()).severity is CRITICAL

    def test_critical_stays_critical(self):
        tracker = BreakTracker(AgeingPolicy(escalate_after_runs=1))
        assert tracker.observe(run(0, quantity())).state_of(quantity()).severity is CRITICAL

    def test_escalate_replaces_the_published_severity(self):
        tracker = BreakTracker(AgeingPolicy(escalate_after_runs=2))
        tracker.observe(run(0, cash()))
        second = run(1, cash())
        escalated = tracker.observe(second).escalate(second)
        assert [d.severity for d in escalated.discrepancies] == [CRITICAL]
        assert escalated.run_id == second.run_id

    def test_a_break_escalated_after_a_restart_keeps_its_age(self):
        before = BreakTracker(AgeingPolicy(escalate_after_seconds=3600))
        opened = before.observe(run(0, cash())).state_of(cash())
        after = BreakTracker(AgeingPolicy(escalate_after_seconds=3600), [opened])
        assert after.observe(run(60, cash())).state_of(cash()).severity is CRITICAL

    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [
            ({"escalate_after_runs": 0}, ValueError),
            ({"escalate_after_runs": 2.0}, TypeError),
            ({"escalate_after_seconds": 0}, ValueError),
            ({"escalate_after_seconds": float("nan")}, ValueError),
            ({"escalate_to": "urgent", "escalate_after_runs": 2}, ValueError),
            ({"escalate_to": CRITICAL}, ValueError),
            ({"halt_after_runs": 0}, ValueError),
            ({"halt_after_runs": True}, TypeError),
        ],
    )
    def test_an_invalid_policy_is_refused(self, kwargs, error):
        with pytest.raises(error):
            AgeingPolicy(**kwargs)


class TestKillSwitch:
    def test_the_kill_switch_is_off_by_default(self):
        tracker = BreakTracker()
        assert AgeingPolicy().halt_after_runs is None
        assert all(tracker.observe(run(m, quantity())).halts == () for m in range(20))

    def test_it_fires_only_after_the_confirmation_count(self):
        tracker = BreakTracker(AgeingPolicy(halt_after_runs=3))
        halts = [len(tracker.observe(run(m, quantity())).halts) for m in range(3)]
        assert halts == [0, 0, 1]

    def test_it_fires_once_per_break(self):
        tracker = BreakTracker(AgeingPolicy(halt_after_runs=2))
        halts = [len(tracker.observe(run(m, quantity())).halts) for m in range(6)]
        assert halts == [0, 1, 0, 0, 0, 0]

    def test_the_halt_names_the_break_and_the_confirming_run(self):
        tracker = BreakTracker(AgeingPolicy(halt_after_runs=2))
        tracker.observe(run(0, quantity()))
        confirming = run(5, quantity())
        (halt,) = tracker.observe(confirming).halts
        assert halt.key == quantity().key
        assert halt.halted_run_id == confirming.run_id
        assert halt.consecutive_runs == 2

    def test_the_confirming_run_is_kept_while_the_break_stays_open(self):
        tracker = BreakTracker(AgeingPolicy(halt_after_runs=1))
        confirming = run(0, quantity())
        tracker.observe(confirming)
        later = tracker.observe(run(5, quantity())).state_of(quantity())
        assert later.halted_run_id == confirming.run_id

    def test_it_does_not_fire_for_a_non_critical_break(self):
        tracker = BreakTracker(AgeingPolicy(halt_after_runs=1))
        assert all(tracker.observe(run(m, cash(WARNING))).halts == () for m in range(5))

    def test_it_fires_again_after_the_break_resolves_and_comes_back(self):
        tracker = BreakTracker(AgeingPolicy(halt_after_runs=2))
        script = [quantity(), quantity(), None, quantity(), quantity()]
        halts = [len(tracker.observe(run(m, *[d] if d else [])).halts) for m, d in enumerate(script)]
        assert halts == [0, 1, 0, 0, 1]

    def test_it_fires_for_a_break_escalated_to_critical(self):
        tracker = BreakTracker(AgeingPolicy(escalate_after_runs=3, halt_after_runs=2))
        halts = [len(tracker.observe(run(m, cash())).halts) for m in range(4)]
        assert halts == [0, 0, 1, 0]

    def test_it_does_not_fire_again_after_a_restart(self):
        policy = AgeingPolicy(halt_after_runs=2)
        before = BreakTracker(policy)
        before.observe(run(0, quantity()))
        (halted,) = before.observe(run(5, quantity())).halts
        after = BreakTracker(policy, [halted])
        assert after.observe(run(10, quantity())).halts == ()

    def test_a_restart_keeps_counting_towards_the_confirmation(self):
        policy = AgeingPolicy(halt_after_runs=2)
        opened = BreakTracker(policy).observe(run(0, quantity())).state_of(quantity())
        after = BreakTracker(policy, [opened])
        assert len(after.observe(run(5, quantity())).halts) == 1


class TestRestart:
    def test_ageing_survives_a_restart(self):
        before = BreakTracker()
        before.observe(run(0, quantity()))
        opened = before.observe(run(5, quantity())).state_of(quantity())
        after = BreakTracker(open_breaks=[opened])
        state = after.observe(run(10, quantity())).state_of(quantity())
        assert (state.break_id, state.first_seen, state.consecutive_runs) == (opened.break_id, at(0), 3)

    def test_a_seeded_break_resolves_on_the_first_clean_run(self):
        opened = BreakTracker().observe(run(0, quantity())).state_of(quantity())
        (resolved,) = BreakTracker(open_breaks=[opened]).observe(run(5)).resolved
        assert resolved.break_id == opened.break_id

    def test_seeding_with_a_resolved_break_is_refused(self):
        tracker = BreakTracker()
        tracker.observe(run(0, quantity()))
        (resolved,) = tracker.observe(run(5)).resolved
        with pytest.raises(ValueError, match="only open breaks"):
            BreakTracker(open_breaks=[resolved])

    def test_seeding_with_two_open_breaks_for_one_key_is_refused(self):
        a = BreakTracker().observe(run(0, quantity())).state_of(quantity())
        b = BreakTracker().observe(run(1, quantity())).state_of(quantity())
        with pytest.raises(ValueError, match="two open breaks"):
            BreakTracker(open_breaks=[a, b])


SYMBOLS = st.sampled_from(["AAPL", "MSFT", "ES"])
RUNS = st.lists(
    st.tuples(
        st.integers(min_value=-5, max_value=120),
        st.booleans(),
        st.frozensets(SYMBOLS),
    ),
    max_size=25,
)


@given(RUNS)
def test_invariants_hold_over_any_sequence_of_runs(script):
    tracker = BreakTracker(AgeingPolicy(escalate_after_runs=3, halt_after_runs=2))
    streak: dict[str, int] = {}
    fired: set[str] = set()
    minutes = 0
    for step, failed, symbols in script:
        minutes += step
        result = (
            run(minutes, error=FAILED) if failed else run(minutes, *(quantity(s) for s in sorted(symbols)))
        )
        update = tracker.observe(result)
        if failed:
            continue
        streak = {s: streak.get(s, 0) + 1 for s in symbols}
        fired &= set(symbols)
        for state in update.breaks:
            assert state.consecutive_runs == streak[state.symbol] >= 1
            assert state.first_seen <= state.last_seen
        for halt in update.halts:
            assert halt.symbol not in fired
            fired.add(halt.symbol)
        assert {s.symbol for s in update.halts} == {s for s in symbols if streak[s] == 2}
        assert {s.symbol for s in tracker.open_breaks(ACC)} == set(symbols)


class TestKeys:
    def test_an_option_break_ages_apart_from_the_stock_break_of_its_symbol(self):
        option = attrs.evolve(quantity(), asset_type=AssetType.OPTION)
        tracker = BreakTracker()
        tracker.observe(run(0, quantity()))

        update = tracker.observe(run(5, option))

        assert update.state_of(option).consecutive_runs == 1
        assert update.state_of(option).asset_type is AssetType.OPTION
        assert [s.asset_type for s in update.resolved] == [AssetType.STOCK]

    def test_each_currency_of_cash_is_its_own_break(self):
        eur = attrs.evolve(cash(), currency="EUR")
        usd = attrs.evolve(cash(), currency="USD")
        tracker = BreakTracker()
        tracker.observe(run(0, eur, usd))

        update = tracker.observe(run(5, eur))

        assert update.state_of(eur).consecutive_runs == 2
        assert [s.currency for s in update.resolved] == ["USD"]

    def test_break_ids_differ_by_asset_type_and_currency(self):
        first = run(
            0,
            quantity(),
            attrs.evolve(quantity(), asset_type=AssetType.OPTION),
            attrs.evolve(cash(), currency="EUR"),
            cash(),
        )

        update = BreakTracker().observe(first)

        assert len({s.break_id for s in update.breaks}) == 4

    def test_a_run_reporting_one_position_twice_is_refused_naming_its_asset_type(self):
        option = attrs.evolve(quantity(), asset_type=AssetType.OPTION)

        with pytest.raises(ValueError, match=r"quantity_mismatch AAPL \(option\) on ACC-1 twice"):
            BreakTracker().observe(run(0, option, option))
