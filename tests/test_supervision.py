"""An actor that dies is logged, restarted (a bounded number of times), and its run reported failed."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from helpers import eventually, settle
from service_fixtures import ACCOUNT, make_fill

from reconciliation._runtime import audit_actor as audit
from reconciliation._runtime import comparator_actor as comparison
from reconciliation._runtime import debouncer_actor as debouncer
from reconciliation._runtime import fetcher_actor as fetcher
from reconciliation._runtime import publisher_actor as publisher
from reconciliation._runtime import scheduler_actor as scheduler
from reconciliation._runtime.clock import ManualClock
from reconciliation._runtime.messages import ReconcileRequest
from reconciliation._runtime.supervisor import MAX_RESTARTS


def fault(original: Any, times: int = 1) -> Any:
    """`original`, except that its first `times` calls raise (a function, so it also binds as a method)."""
    remaining = [times]

    def faulty(*args: Any, **kwargs: Any) -> Any:
        if remaining[0]:
            remaining[0] -= 1
            msg = "injected fault"
            raise RuntimeError(msg)
        return original(*args, **kwargs)

    return faulty


FAULTS = {
    "fetcher": (fetcher, "fetch_snapshot"),
    "comparator": (comparison, "compare"),
    "publisher": (publisher, "log_result"),
}


@pytest.mark.parametrize("role", ["fetcher", "comparator"])
def test_a_run_whose_actor_dies_is_reported_failed_and_the_next_run_works(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch, role: str
) -> None:
    harness = harness_factory()
    harness.start()
    module, name = FAULTS[role]
    monkeypatch.setattr(module, name, fault(getattr(module, name)))
    failed = harness.reconcile()
    assert failed.status == "failed"
    assert failed.error == f"the {role} actor failed: RuntimeError: injected fault"
    assert harness.reconcile().status == "ok"
    assert harness.service.health().restarts[role] == 1


def test_a_publisher_that_dies_is_restarted_and_loses_no_result(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = harness_factory()
    harness.start()
    harness.capture.wait_for_results(1)
    monkeypatch.setattr(publisher, "log_result", fault(publisher.log_result))
    during = harness.reconcile()
    eventually(lambda: harness.service.health().restarts["publisher"] == 1, what="the publisher restart")
    after = harness.reconcile()
    results = harness.capture.wait_for_results(3)
    assert [r["run_id"] for r in results[1:]] == [str(during.run_id), str(after.run_id)]
    assert harness.service.health().healthy


def test_a_scheduler_that_dies_answers_its_askers_and_is_restarted(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = harness_factory()
    harness.start()
    monkeypatch.setattr(scheduler.TriggerScheduler, "_start", fault(scheduler.TriggerScheduler._start))
    failed = harness.service.ref.ask(ReconcileRequest(ACCOUNT), timeout=5)
    assert failed.status == "failed"
    assert "the scheduler failed" in failed.error
    eventually(lambda: harness.service.health().restarts["scheduler"] == 1, what="the scheduler restart")
    assert harness.reconcile().status == "ok"


def test_the_entry_actor_survives_an_error_of_its_own_and_later_fills_still_trigger_runs(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = harness_factory(post_fill_delay_seconds=0.01)
    harness.start()
    entry = harness.service.ref
    monkeypatch.setattr(debouncer.DebounceWindow, "add", fault(debouncer.DebounceWindow.add))
    harness.service.ref.tell(make_fill(1))
    eventually(lambda: harness.service.health().restarts["debouncer"] == 1, what="the failure being counted")
    harness.service.ref.tell(make_fill(2))
    results = harness.capture.wait_for_results(2)
    assert results[1]["context"]["fill_id"] == "FILL-2"
    assert harness.service.ref is entry
    assert entry.is_alive()


def test_an_actor_death_is_logged_at_error_with_its_name(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    harness = harness_factory()
    harness.start()
    monkeypatch.setattr(comparison, "compare", fault(comparison.compare))
    with caplog.at_level(logging.ERROR, logger="reconciliation"):
        harness.reconcile()
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("The comparator actor failed during run" in m for m in messages)


def test_an_actor_that_keeps_dying_stays_down_and_the_service_says_it_is_unhealthy(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = harness_factory()
    harness.start()
    monkeypatch.setattr(comparison, "compare", fault(comparison.compare, times=MAX_RESTARTS + 1))
    for _ in range(MAX_RESTARTS):
        assert harness.reconcile().status == "failed"
    assert harness.reconcile().status == "failed"
    health = harness.service.health()
    assert not health.healthy
    assert health.down == ("comparator",)
    assert health.last_failure == "comparator: RuntimeError: injected fault"


def test_runs_fail_at_once_while_the_comparator_is_down(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = harness_factory()
    harness.start()
    monkeypatch.setattr(comparison, "compare", fault(comparison.compare, times=MAX_RESTARTS + 1))
    for _ in range(MAX_RESTARTS + 1):
        harness.reconcile()
    result = harness.reconcile()
    assert result.error == "the comparator is not running (see the service's health)"


def test_a_run_nobody_finishes_is_failed_by_the_watchdog(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    harness = harness_factory(clock=clock, broker_timeout_seconds=5)
    harness.start()
    monkeypatch.setattr(fetcher.SnapshotFetcher, "_fetch", lambda *_: None)
    pending = harness.service.ref.ask(ReconcileRequest(ACCOUNT), block=False)
    settle(harness.service)
    clock.advance(5 + scheduler.WATCHDOG_GRACE_SECONDS)
    result = pending.get(timeout=5)
    assert result.error == "the run produced no result within 15 s and was abandoned"


def test_an_audit_actor_that_dies_is_restarted_and_records_every_run(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    harness = harness_factory(audit_store=str(tmp_path / "audit.db"))
    harness.start()
    eventually(lambda: harness.service.audit_health().recorded_runs == 1, what="the startup run recorded")
    monkeypatch.setattr(audit.AuditActor, "handle", fault(audit.AuditActor.handle))
    harness.reconcile()
    eventually(lambda: harness.service.health().restarts["audit"] == 1, what="the audit actor restart")
    harness.reconcile()
    eventually(
        lambda: harness.service.audit_health().recorded_runs == 2, what="the run after the restart recorded"
    )
    assert harness.service.health().healthy
