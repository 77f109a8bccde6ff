"""Bad days inside the service: an actor handler that raises, host code that raises
`BaseException`, a run nobody finishes. No actor dies, no run is lost, health tells."""

from __future__ import annotations

import logging
from typing import Any

import pykka
import pytest
from helpers import eventually
from service_fixtures import ACCOUNT, make_fill

from reconciliation import AgeingPolicy, ComponentState, ReconcileRequest
from reconciliation._runtime import (
    comparator_actor,
    debouncer_actor,
    fetcher_actor,
    log_sink,
    scheduler_actor,
)
from reconciliation._runtime.clock import ManualClock


def fault(original: Any, times: int = 1, error: BaseException | None = None) -> Any:
    """`original`, except that its first `times` calls raise (a function, so it also binds as a method)."""
    remaining = [times]

    def faulty(*args: Any, **kwargs: Any) -> Any:
        if remaining[0]:
            remaining[0] -= 1
            raise error or RuntimeError("injected fault")
        return original(*args, **kwargs)

    return faulty


FAULTS = {
    "fetcher": (fetcher_actor.FetcherActor, "_fetch"),
    "comparator": (comparator_actor, "compare"),
}


@pytest.mark.parametrize("component", ["fetcher", "comparator"])
def test_a_run_whose_handler_raises_is_reported_failed_and_the_next_run_works(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch, component: str
) -> None:
    harness = harness_factory()
    harness.start()
    target, name = FAULTS[component]
    monkeypatch.setattr(target, name, fault(getattr(target, name)))
    failed = harness.reconcile()
    assert failed.status == "failed"
    assert failed.error == f"the {component} failed: RuntimeError: injected fault"
    assert harness.capture.results[-1]["error"] == failed.error
    assert harness.reconcile().status == "ok"


@pytest.mark.parametrize("component", ["fetcher", "comparator"])
def test_health_says_degraded_with_the_error_then_running_after_a_clean_run(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch, component: str
) -> None:
    harness = harness_factory()
    harness.start()
    target, name = FAULTS[component]
    monkeypatch.setattr(target, name, fault(getattr(target, name)))
    harness.reconcile()
    harness.settle()
    degraded = harness.service.health().components[component]
    assert (degraded.state, degraded.errors, degraded.last_error) == (
        ComponentState.DEGRADED,
        1,
        "RuntimeError: injected fault",
    )
    assert not harness.service.health().healthy
    harness.reconcile()
    harness.settle()
    recovered = harness.service.health().components[component]
    assert (recovered.state, recovered.errors) == (ComponentState.RUNNING, 1)
    assert harness.service.health().healthy


def test_the_runs_queued_behind_a_failing_one_are_all_published(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = harness_factory()
    harness.start()
    monkeypatch.setattr(comparator_actor, "compare", fault(comparator_actor.compare, times=2))
    asked = [harness.service.ref.ask(ReconcileRequest(ACCOUNT, requested_by=f"r{n}"), block=False) for n in range(6)]
    results = [future.get(timeout=5) for future in asked]
    harness.settle()
    published = {r["run_id"] for r in harness.capture.results}
    assert {str(r.run_id) for r in results} <= published
    assert any(r.status == "failed" for r in results)
    assert harness.service.is_running


def test_a_failure_is_logged_at_error_with_the_component_and_the_run(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    harness = harness_factory()
    harness.start()
    monkeypatch.setattr(comparator_actor, "compare", fault(comparator_actor.compare))
    with caplog.at_level(logging.ERROR, logger="reconciliation"):
        failed = harness.reconcile()
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"The comparator failed on SnapshotTaken of run {failed.run_id}" in m for m in messages)


def test_a_scheduler_that_raises_still_answers_the_asker_with_a_published_failed_run(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = harness_factory()
    harness.start()
    monkeypatch.setattr(
        scheduler_actor.SchedulerActor, "_start", fault(scheduler_actor.SchedulerActor._start)
    )
    failed = harness.service.ref.ask(ReconcileRequest(ACCOUNT), timeout=5)
    assert failed.status == "failed"
    assert failed.error == "the scheduler failed: RuntimeError: injected fault"
    assert harness.capture.results[-1]["run_id"] == str(failed.run_id)
    assert harness.reconcile().status == "ok"


def test_the_entry_survives_an_error_of_its_own_and_later_fills_still_trigger_runs(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    harness = harness_factory(clock=clock, post_fill_delay_seconds=1)
    harness.start()
    entry = harness.service.ref
    monkeypatch.setattr(debouncer_actor.DebounceWindow, "add", fault(debouncer_actor.DebounceWindow.add))
    entry.tell(make_fill(1))
    harness.settle()
    assert harness.service.health().components["debouncer"].errors == 1
    entry.tell(make_fill(2))
    harness.settle()
    clock.advance(1)
    harness.settle()
    assert harness.capture.results[-1]["context"]["fill_id"] == "FILL-2"
    assert entry.is_alive()


def test_a_run_log_that_fails_loses_no_alert(harness_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    harness = harness_factory()
    harness.start()
    monkeypatch.setattr(log_sink, "log_result", fault(log_sink.log_result))
    result = harness.reconcile()
    harness.stop()
    published = [entry[1][b"payload"] for entry in harness.redis.xrange("reconciliation:stream:result")]
    assert any(str(result.run_id).encode() in payload for payload in published)


def test_an_actor_that_fails_to_start_is_reported_and_the_others_work(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        scheduler_actor.SchedulerActor, "started", fault(scheduler_actor.SchedulerActor.started)
    )
    harness = harness_factory()
    harness.start()
    scheduler = harness.service.health().components["scheduler"]
    assert scheduler.state is ComponentState.DEGRADED
    assert scheduler.last_error == "RuntimeError: injected fault"
    assert harness.reconcile().status == "ok"


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()])
def test_a_base_exception_from_the_kill_switch_callback_stops_nothing(
    harness_factory: Any, raised: BaseException
) -> None:
    called: list[object] = []

    def on_halt(*args: Any) -> None:
        called.append(args)
        raise raised

    class HostActor(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            return message

    host = HostActor.start()
    harness = harness_factory(ageing=AgeingPolicy(halt_after_runs=1), on_halt=on_halt)
    harness.broker.then_return([], call="get_positions")
    harness.book.apply_fill(make_fill(1))
    harness.start()
    assert harness.reconcile().status == "ok"
    assert len(called) == 1
    assert len(harness.capture.halts) == 1
    harness.stop()
    assert host.is_alive()
    assert host.ask("still here", timeout=5) == "still here"


def test_a_run_nobody_finishes_is_failed_by_the_watchdog(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    harness = harness_factory(clock=clock, broker_timeout_seconds=5)
    harness.start()
    fetching: list[object] = []
    monkeypatch.setattr(fetcher_actor.FetcherActor, "_fetch", lambda _self, ticket: fetching.append(ticket))
    pending = harness.service.ref.ask(ReconcileRequest(ACCOUNT), block=False)
    eventually(lambda: bool(fetching), what="the run reaching the fetcher")
    clock.advance(5 + scheduler_actor.WATCHDOG_GRACE_SECONDS)
    result = pending.get(timeout=5)
    assert result.error == "the run produced no result within 15 s and was abandoned"
    assert harness.capture.results[-1]["run_id"] == str(result.run_id)


class Recorder:
    """A host's observer: what it heard, in order."""

    def __init__(self) -> None:
        self.runs: list[Any] = []
        self.calls: list[Any] = []

    def run_finished(self, run: Any) -> None:
        self.runs.append(run)

    def book_call_ended(self, timing: Any) -> None:
        self.calls.append(timing)


def test_an_observer_hears_of_every_run_before_the_asker_and_of_every_book_call(harness_factory: Any) -> None:
    harness = harness_factory()
    recorder = Recorder()
    harness.service.add_observer(recorder)
    startup = harness.start()
    assert startup is not None
    assert [run.result.run_id for run in recorder.runs] == [startup.run_id]
    assert sorted(t.call for t in recorder.calls) == [
        "broker.get_account",
        "broker.get_positions",
        "local.get_account",
        "local.get_positions",
    ]
    assert {t.outcome for t in recorder.calls} == {"ok"}


def test_an_observer_hears_of_a_broker_call_that_timed_out_and_of_the_run_it_then_refuses(
    harness_factory: Any,
) -> None:
    harness = harness_factory(broker_timeout_seconds=0.2)
    recorder = Recorder()
    harness.service.add_observer(recorder)
    harness.start()
    harness.broker.then_delay(1.0)
    harness.reconcile()
    harness.reconcile()
    outcomes = [t.outcome for t in recorder.calls if t.call == "broker.get_positions"]
    assert outcomes[-2:] == ["timeout", "still_hung"]


def test_an_observer_that_raises_costs_no_run(harness_factory: Any) -> None:
    class Broken(Recorder):
        def run_finished(self, run: Any) -> None:
            raise RuntimeError("metrics backend down")

    harness = harness_factory()
    harness.service.add_observer(Broken())
    harness.start()
    assert harness.reconcile().status == "ok"
    assert len(harness.capture.results) == 2


def test_what_is_not_an_observer_is_refused(harness_factory: Any) -> None:
    harness = harness_factory()
    with pytest.raises(TypeError, match="run_finished"):
        harness.service.add_observer(object())
