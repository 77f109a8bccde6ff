"""reconciliation.metrics: what Prometheus sees of a service's runs, breaks, book calls and health."""

from __future__ import annotations

import asyncio
import collections
import gzip
import importlib
import importlib.metadata
import json
import re
import socket
import sys
import threading
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import fakeredis
import pytest
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from service_fixtures import ACCOUNT, Harness, make_fill

from reconciliation import (
    Account,
    AgeingPolicy,
    BrokerPosition,
    CorrectionLimits,
    CorrectionPolicy,
    InMemoryPortfolio,
    ReconciliationConfig,
    ReconciliationRuntime,
)
from reconciliation.metrics import ReconciliationMetrics, serve_metrics
from reconciliation.testing import ManualClock, ScriptedBroker, settle

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
BOOK_CALLS = {"local.get_positions", "local.get_account", "broker.get_positions", "broker.get_account"}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def watched(harness_factory: Any, registry: CollectorRegistry) -> Any:
    """A harness whose service the registry's metrics watch; `now` is the metrics' wall clock."""

    def make(*, now: Any = None, **kwargs: Any) -> Harness:
        harness = harness_factory(**kwargs)
        metrics = ReconciliationMetrics(registry, **({"now": now} if now else {}))
        metrics.watch(harness.service)
        harness.metrics = metrics  # type: ignore[attr-defined]
        return harness

    return make


@pytest.fixture
def hang_broker_positions() -> Any:
    """Make a harness's broker.get_positions hang until the test ends (released then)."""
    released = threading.Event()

    def hang(harness: Harness) -> None:
        answer = harness.broker.get_positions

        def hanging(account_id: str) -> Any:
            released.wait(30)
            return answer(account_id)

        harness.broker.get_positions = hanging  # type: ignore[method-assign]

    yield hang
    released.set()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def open_a_break(harness: Harness) -> None:
    """The broker reports 10 AAPL the book does not hold: one critical missing_local break."""
    harness.broker.positions.append(BrokerPosition("AAPL", 10, 100, 1000))
    harness.broker.total_equity = Decimal(1000)


def open_breaks(registry: CollectorRegistry, account: str = ACCOUNT) -> dict[tuple[str, str], float]:
    """Every (type, severity) with a non-zero open-break count."""
    counts = {
        (sample.labels["type"], sample.labels["severity"]): sample.value
        for family in registry.collect()
        if family.name == "reconciliation_open_breaks"
        for sample in family.samples
        if sample.labels["account"] == account
    }
    return {kind: count for kind, count in counts.items() if count}


# Runs


def test_runs_are_counted_by_trigger_and_status(watched: Any, registry: CollectorRegistry) -> None:
    clock = ManualClock()
    harness = watched(clock=clock, interval_seconds=60, post_fill_delay_seconds=1)
    harness.start()
    harness.reconcile()
    harness.reconcile()
    harness.service.ref.tell(make_fill(1))
    clock.advance(1)
    harness.settle()
    clock.advance(60)
    harness.settle()

    counted = {
        trigger: value(registry, "reconciliation_runs_total", account=ACCOUNT, trigger=trigger, status="ok")
        for trigger in ("startup", "on_demand", "post_fill", "periodic")
    }
    assert counted == {"startup": 1, "on_demand": 2, "post_fill": 1, "periodic": 1}


def test_a_run_that_failed_is_counted_as_failed(watched: Any, registry: CollectorRegistry) -> None:
    harness = watched()
    harness.start()
    harness.broker.then_raise(ConnectionError("gateway down"))

    assert harness.reconcile().status == "failed"

    labels = {"account": ACCOUNT, "trigger": "on_demand"}
    assert value(registry, "reconciliation_runs_total", status="failed", **labels) == 1
    assert value(registry, "reconciliation_runs_total", status="ok", **labels) == 0


def test_each_runs_duration_is_observed_in_seconds(watched: Any, registry: CollectorRegistry) -> None:
    harness = watched()
    results = [harness.start(), harness.reconcile()]

    assert value(registry, "reconciliation_run_duration_seconds_count", account=ACCOUNT) == 2
    assert value(registry, "reconciliation_run_duration_seconds_sum", account=ACCOUNT) == pytest.approx(
        sum(result.duration_ms for result in results) / 1000
    )


# Book calls


def test_each_book_call_is_timed_under_its_own_name_per_runtime(watched: Any, registry: CollectorRegistry) -> None:
    harness = watched()
    harness.start()

    timed = {
        call: value(registry, "reconciliation_book_call_duration_seconds_count", runtime=ACCOUNT, call=call)
        for call in BOOK_CALLS
    }
    assert timed == dict.fromkeys(BOOK_CALLS, 1)


def test_timeouts_and_refusals_start_at_zero_for_every_call_a_run_makes(
    watched: Any, registry: CollectorRegistry
) -> None:
    harness = watched()
    harness.start()

    made = {
        sample.labels["call"]
        for family in registry.collect()
        if family.name == "reconciliation_book_call_duration_seconds"
        for sample in family.samples
    }
    for name in ("reconciliation_book_call_timeouts_total", "reconciliation_book_calls_refused_total"):
        assert {call: value(registry, name, account=ACCOUNT, call=call) for call in made} == dict.fromkeys(
            made, 0
        )


def test_a_broker_call_that_times_out_is_counted(
    watched: Any, registry: CollectorRegistry, hang_broker_positions: Any
) -> None:
    harness = watched(broker_timeout_seconds=0.2)
    harness.start()
    hang_broker_positions(harness)

    harness.reconcile()

    labels = {"account": ACCOUNT, "call": "broker.get_positions"}
    assert value(registry, "reconciliation_book_call_timeouts_total", **labels) == 1
    assert (
        value(registry, "reconciliation_book_call_duration_seconds_count", runtime=ACCOUNT, call="broker.get_positions")
        == 2
    )
    assert (
        value(registry, "reconciliation_book_call_timeouts_total", account=ACCOUNT, call="broker.get_account")
        == 0
    )


def test_a_call_refused_because_the_previous_one_still_hangs_is_counted_but_not_timed(
    watched: Any, registry: CollectorRegistry, hang_broker_positions: Any
) -> None:
    harness = watched(broker_timeout_seconds=0.2)
    harness.start()
    hang_broker_positions(harness)
    harness.reconcile()

    harness.reconcile()

    labels = {"account": ACCOUNT, "call": "broker.get_positions"}
    assert value(registry, "reconciliation_book_calls_refused_total", **labels) == 1
    assert value(registry, "reconciliation_book_call_timeouts_total", **labels) == 1
    assert (
        value(registry, "reconciliation_book_call_duration_seconds_count", runtime=ACCOUNT, call="broker.get_positions")
        == 2
    )


def test_a_call_still_hanging_past_its_timeout_shows_as_hung(
    watched: Any, registry: CollectorRegistry, hang_broker_positions: Any
) -> None:
    harness = watched(broker_timeout_seconds=0.2)
    harness.start()
    assert value(registry, "reconciliation_book_calls_hung", runtime=ACCOUNT) == 0
    hang_broker_positions(harness)

    harness.reconcile()
    harness.settle()

    assert value(registry, "reconciliation_book_calls_hung", runtime=ACCOUNT) == 1


# Breaks


def test_open_breaks_are_counted_by_type_and_severity_only_where_there_is_one(watched: Any, registry: CollectorRegistry) -> None:
    harness = watched()
    open_a_break(harness)

    harness.start()

    assert open_breaks(registry) == {("missing_local", "critical"): 1}
    assert (
        value(
            registry, "reconciliation_open_breaks", account=ACCOUNT, type="cash_mismatch", severity="warning"
        )
        is None
    )


def test_a_break_the_next_run_no_longer_sees_leaves_the_open_breaks(
    watched: Any, registry: CollectorRegistry
) -> None:
    harness = watched()
    open_a_break(harness)
    harness.start()
    harness.broker.positions.clear()
    harness.broker.total_equity = None

    harness.reconcile()

    assert open_breaks(registry) == {}
    assert (
        value(
            registry, "reconciliation_open_breaks", account=ACCOUNT, type="missing_local", severity="critical"
        )
        is None
    )
    assert value(registry, "reconciliation_oldest_open_break_age_seconds", account=ACCOUNT) == 0


def test_a_failed_run_leaves_the_open_breaks_as_they_were(watched: Any, registry: CollectorRegistry) -> None:
    harness = watched()
    open_a_break(harness)
    harness.start()
    harness.broker.then_raise(ConnectionError("gateway down"))

    assert harness.reconcile().status == "failed"

    assert open_breaks(registry) == {("missing_local", "critical"): 1}


def test_an_escalated_break_is_counted_under_its_escalated_severity(
    watched: Any, registry: CollectorRegistry
) -> None:
    harness = watched(
        severity_overrides={"missing_local": "info"}, ageing=AgeingPolicy(escalate_after_runs=2)
    )
    open_a_break(harness)
    harness.start()
    assert open_breaks(registry) == {("missing_local", "info"): 1}

    harness.reconcile()

    assert open_breaks(registry) == {("missing_local", "warning"): 1}


def test_open_breaks_are_reported_only_after_the_accounts_first_completed_run(
    watched: Any, registry: CollectorRegistry
) -> None:
    harness = watched()
    harness.broker.then_raise(ConnectionError("gateway down"))

    assert harness.start().status == "failed"

    assert (
        value(
            registry, "reconciliation_open_breaks", account=ACCOUNT, type="missing_local", severity="critical"
        )
        is None
    )
    assert value(registry, "reconciliation_oldest_open_break_age_seconds", account=ACCOUNT) is None


def test_the_oldest_open_break_is_as_old_as_its_first_sighting(
    watched: Any, registry: CollectorRegistry
) -> None:
    clock = ManualClock()
    harness = watched(clock=clock, now=clock.now)
    open_a_break(harness)
    harness.start()
    clock.advance(60)
    harness.broker.positions.append(BrokerPosition("MSFT", 5, 200, 1000))
    harness.reconcile()

    clock.advance(30)

    assert open_breaks(registry) == {("missing_local", "critical"): 2}
    assert value(registry, "reconciliation_oldest_open_break_age_seconds", account=ACCOUNT) == 90


def test_without_an_open_break_the_oldest_break_age_is_zero(
    watched: Any, registry: CollectorRegistry
) -> None:
    clock = ManualClock()
    harness = watched(clock=clock, now=clock.now)
    harness.start()

    clock.advance(60)

    assert value(registry, "reconciliation_oldest_open_break_age_seconds", account=ACCOUNT) == 0


def test_the_last_clean_run_time_is_that_runs_snapshot_time(
    watched: Any, registry: CollectorRegistry
) -> None:
    harness = watched()
    clean = harness.start()
    open_a_break(harness)

    harness.reconcile()

    assert value(registry, "reconciliation_last_clean_run_timestamp_seconds", account=ACCOUNT) == (
        clean.timestamp.timestamp()
    )


def test_the_last_clean_run_time_is_0_before_a_clean_run_so_that_the_alert_sees_it(
    watched: Any, registry: CollectorRegistry
) -> None:
    harness = watched()
    open_a_break(harness)

    harness.start()

    assert value(registry, "reconciliation_last_clean_run_timestamp_seconds", account=ACCOUNT) == 0.0


def test_an_account_is_there_from_the_start_with_when_watching_began(watched: Any, registry: CollectorRegistry) -> None:
    watched()

    assert value(registry, "reconciliation_last_clean_run_timestamp_seconds", account=ACCOUNT) == 0.0
    assert value(registry, "reconciliation_next_run_due_timestamp_seconds", account=ACCOUNT) == 0.0
    assert value(registry, "reconciliation_account_watched_since_timestamp_seconds", account=ACCOUNT) > 0
    assert value(registry, "reconciliation_account_stale", account=ACCOUNT) == 0.0


def test_a_run_says_when_the_next_is_due(watched: Any, registry: CollectorRegistry) -> None:
    harness = watched()

    result = harness.start()

    assert result.next_run_due is not None
    assert value(registry, "reconciliation_next_run_due_timestamp_seconds", account=ACCOUNT) == (
        result.next_run_due.timestamp()
    )


def test_the_build_info_names_the_installed_version(registry: CollectorRegistry) -> None:
    ReconciliationMetrics(registry)

    assert value(registry, "reconciliation_build_info", version=importlib.metadata.version("reconciliation")) == 1.0


# Health, read at scrape time


def test_runs_queue_for_redis_while_it_is_down_and_drain_once_it_is_back(
    watched: Any, registry: CollectorRegistry
) -> None:
    clock = ManualClock()
    server = fakeredis.FakeServer()
    harness = watched(clock=clock, redis_server=server)
    harness.start()
    harness.settle()
    server.connected = False

    harness.reconcile()
    harness.reconcile()
    harness.settle()

    redis_sink = {"runtime": ACCOUNT, "sink": "redis"}
    assert value(registry, "reconciliation_delivery_queued_runs", **redis_sink) == 2
    assert value(registry, "reconciliation_delivery_reachable", **redis_sink) == 0
    server.connected = True
    clock.advance(harness.config.publish_retry_max_seconds)
    harness.settle()
    assert value(registry, "reconciliation_delivery_queued_runs", **redis_sink) == 0
    assert value(registry, "reconciliation_delivery_delivered_runs_total", **redis_sink) == 3
    assert value(registry, "reconciliation_delivery_reachable", **redis_sink) == 1


def test_runs_dropped_from_a_full_redis_queue_are_counted(watched: Any, registry: CollectorRegistry) -> None:
    server = fakeredis.FakeServer()
    harness = watched(clock=ManualClock(), redis_server=server, outbox_max_runs=1)
    harness.start()
    harness.settle()
    server.connected = False

    harness.reconcile()
    harness.reconcile()
    harness.settle()

    assert value(registry, "reconciliation_delivery_dropped_runs_total", runtime=ACCOUNT, sink="redis") == 1
    assert value(registry, "reconciliation_delivery_set_aside_runs_total", runtime=ACCOUNT, sink="redis") == 0


def test_the_audit_queue_is_reported_beside_redis_s(
    watched: Any, registry: CollectorRegistry, tmp_path: Path
) -> None:
    harness = watched(audit_store=str(tmp_path / "audit.db"))
    harness.start()
    harness.settle()

    audit = {"runtime": ACCOUNT, "sink": "audit"}
    assert value(registry, "reconciliation_delivery_queued_runs", **audit) == 0
    assert value(registry, "reconciliation_delivery_delivered_runs_total", **audit) == 1


def test_each_component_has_one_for_its_current_state_and_zero_for_the_others(
    watched: Any, registry: CollectorRegistry
) -> None:
    server = fakeredis.FakeServer()
    harness = watched(clock=ManualClock(), redis_server=server)
    harness.start()
    server.connected = False

    harness.reconcile()
    harness.settle()

    states = {
        state: value(
            registry,
            "reconciliation_component_state",
            runtime=ACCOUNT,
            component="delivery:redis",
            state=state,
        )
        for state in ("running", "degraded", "stopped")
    }
    assert states == {"running": 0, "degraded": 1, "stopped": 0}
    assert (
        value(
            registry,
            "reconciliation_component_state",
            runtime=ACCOUNT,
            component="comparator",
            state="running",
        )
        == 1
    )
    assert (
        value(registry, "reconciliation_component_errors_total", runtime=ACCOUNT, component="delivery:redis")
        == 1
    )


def test_fills_for_an_account_the_service_does_not_reconcile_are_counted_as_refused(
    watched: Any, registry: CollectorRegistry
) -> None:
    harness = watched()
    harness.start()
    harness.service.ref.tell(attrs.evolve(make_fill(1), account_id="ACC-OTHER"))

    harness.settle()

    assert value(registry, "reconciliation_refused_fills_total", runtime=ACCOUNT) == 1


# Corrections


@pytest.mark.parametrize(("mode", "applied"), [("apply", 1), ("propose", 0)])
def test_a_correction_is_counted_when_proposed_and_again_when_applied(
    watched: Any, registry: CollectorRegistry, mode: str, applied: int
) -> None:
    harness = watched(correction=CorrectionPolicy(mode=mode))
    open_a_break(harness)
    harness.start()
    harness.reconcile()
    harness.settle()

    labels = {"account": ACCOUNT, "type": "missing_local"}
    assert value(registry, "reconciliation_corrections_proposed_total", **labels) == 1
    assert (value(registry, "reconciliation_corrections_applied_total", **labels) or 0) == applied


def test_a_suspect_run_is_counted_from_zero(watched: Any, registry: CollectorRegistry) -> None:
    harness = watched()
    harness.start()
    before = value(registry, "reconciliation_suspect_runs_total", account=ACCOUNT)
    harness.broker.then_return([BrokerPosition(f"S{i}", 1, 10, 10) for i in range(10)])
    harness.reconcile()

    assert (before, value(registry, "reconciliation_suspect_runs_total", account=ACCOUNT)) == (0, 1)


def test_an_account_whose_corrections_are_held_shows_it(watched: Any, registry: CollectorRegistry) -> None:
    limits = CorrectionLimits(per_run=None, per_day=0)
    harness = watched(correction=CorrectionPolicy(mode="apply", confirm_after_runs=1, limits=limits))
    open_a_break(harness)
    harness.start()
    harness.settle()

    assert value(registry, "reconciliation_corrections_held", runtime=ACCOUNT, account=ACCOUNT) == 1


# Watching


def test_an_account_that_ran_clean_has_42_series(watched: Any, registry: CollectorRegistry) -> None:
    harness = watched()
    harness.start()

    series = [
        (family.name, sample.name)
        for family in registry.collect()
        for sample in family.samples
        if sample.labels.get("account") == ACCOUNT
    ]

    assert len(series) == 42
    assert collections.Counter(family for family, _ in series) == {
        "reconciliation_runs": 8,
        "reconciliation_run_duration_seconds": 17,
        "reconciliation_book_call_timeouts": 4,
        "reconciliation_book_calls_refused": 4,
        "reconciliation_suspect_runs": 1,
        "reconciliation_explained_breaks": 3,
        "reconciliation_oldest_open_break_age_seconds": 1,
        "reconciliation_last_clean_run_timestamp_seconds": 1,
        "reconciliation_account_watched_since_timestamp_seconds": 1,
        "reconciliation_next_run_due_timestamp_seconds": 1,
        "reconciliation_account_stale": 1,
    }


def test_no_created_series_are_exported(watched: Any, registry: CollectorRegistry) -> None:
    harness = watched()
    harness.start()

    names = {sample.name for family in registry.collect() for sample in family.samples}

    assert [name for name in names if name.endswith("_created")] == []


def test_a_runtime_of_many_accounts_is_counted_by_account_and_its_health_reported_once(
    registry: CollectorRegistry,
) -> None:
    accounts = [
        Account(
            ReconciliationConfig(account_id),
            InMemoryPortfolio(account_id, Decimal(0)),
            ScriptedBroker(account_id),
        )
        for account_id in ("ACC-A", "ACC-B")
    ]
    runtime = ReconciliationRuntime(accounts, fakeredis.FakeRedis())
    ReconciliationMetrics(registry).watch(runtime)
    try:
        asyncio.run(runtime.start())
        settle(runtime)

        for account_id in ("ACC-A", "ACC-B"):
            assert (
                value(
                    registry, "reconciliation_runs_total", account=account_id, trigger="startup", status="ok"
                )
                == 1
            )
        assert (
            value(registry, "reconciliation_delivery_delivered_runs_total", runtime="ACC-A,ACC-B", sink="log")
            == 2
        )
    finally:
        asyncio.run(runtime.stop())


def test_services_watched_by_one_metrics_share_its_registry(
    harness_factory: Any, registry: CollectorRegistry
) -> None:
    first, second = harness_factory(account_id="ACC-1"), harness_factory(account_id="ACC-2")
    metrics = ReconciliationMetrics(registry)
    metrics.watch(first.service).watch(second.service)

    first.start()
    second.start()
    second.reconcile()

    assert (
        value(registry, "reconciliation_runs_total", account="ACC-1", trigger="on_demand", status="ok") == 0
    )
    assert (
        value(registry, "reconciliation_runs_total", account="ACC-2", trigger="on_demand", status="ok") == 1
    )
    assert value(registry, "reconciliation_book_calls_hung", runtime="ACC-1") == 0
    assert value(registry, "reconciliation_book_calls_hung", runtime="ACC-2") == 0


def test_a_second_metrics_on_one_registry_is_refused(registry: CollectorRegistry) -> None:
    ReconciliationMetrics(registry)

    with pytest.raises(ValueError, match="already holds reconciliation metrics"):
        ReconciliationMetrics(registry)


def test_a_service_is_watched_once(watched: Any) -> None:
    harness = watched()

    with pytest.raises(ValueError, match="watched already"):
        harness.metrics.watch(harness.service)


def test_a_runtimes_health_is_labelled_with_the_name_it_is_watched_under(
    harness_factory: Any, registry: CollectorRegistry
) -> None:
    harness = harness_factory()
    ReconciliationMetrics(registry).watch(harness.service, name="desk-7")

    harness.start()

    assert value(registry, "reconciliation_book_calls_hung", runtime="desk-7") == 0
    assert value(registry, "reconciliation_book_calls_hung", runtime=ACCOUNT) is None


def test_two_runtimes_of_one_name_are_refused(harness_factory: Any, registry: CollectorRegistry) -> None:
    metrics = ReconciliationMetrics(registry).watch(harness_factory().service)

    with pytest.raises(ValueError, match="give this one another name"):
        metrics.watch(harness_factory().service)


def test_what_is_neither_a_service_nor_a_runtime_is_not_watched(registry: CollectorRegistry) -> None:
    with pytest.raises(TypeError, match="ReconciliationService or a ReconciliationRuntime"):
        ReconciliationMetrics(registry).watch(object())  # type: ignore[arg-type]


def test_an_unwatched_service_is_no_longer_counted_and_its_gauges_go(
    watched: Any, registry: CollectorRegistry
) -> None:
    harness = watched()
    open_a_break(harness)
    harness.start()

    harness.metrics.unwatch(harness.service)
    harness.reconcile()

    assert (
        value(registry, "reconciliation_runs_total", account=ACCOUNT, trigger="on_demand", status="ok") == 0
    )
    assert value(registry, "reconciliation_runs_total", account=ACCOUNT, trigger="startup", status="ok") == 1
    assert open_breaks(registry) == {}
    assert (
        value(
            registry,
            "reconciliation_component_state",
            runtime=ACCOUNT,
            component="comparator",
            state="running",
        )
        is None
    )


def test_unwatching_what_is_not_watched_is_refused(watched: Any) -> None:
    harness = watched()
    harness.metrics.unwatch(harness.service)

    with pytest.raises(ValueError, match="not watched"):
        harness.metrics.unwatch(harness.service)


# Serving


def test_serve_metrics_serves_the_registry_over_http_until_closed(
    watched: Any, registry: CollectorRegistry
) -> None:
    harness = watched()
    harness.start()
    server = serve_metrics(registry, port=0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.close()

    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert any(
        sample.labels == {"account": ACCOUNT, "trigger": "startup", "status": "ok"} and sample.value == 1
        for sample in families["reconciliation_runs"].samples
    )
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5)


def samples_of(text: str) -> set[tuple[str, frozenset[tuple[str, str]], float]]:
    return {
        (sample.name, frozenset(sample.labels.items()), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_served_metrics_are_the_registrys_samples_written_from_each_accounts_text(
    watched: Any, registry: CollectorRegistry
) -> None:
    harness = watched(severity_overrides={"missing_local": "info"})
    open_a_break(harness)
    harness.start()
    harness.broker.then_raise(ConnectionError("gateway down"))
    harness.reconcile()
    harness.settle()
    ProcessCollector(registry=registry)
    server = serve_metrics(registry, port=0)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/metrics", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - a loopback http URL we built
            assert response.headers["Content-Encoding"] == "gzip"
            served = gzip.decompress(response.read()).decode()
    finally:
        server.close()

    collected = samples_of(generate_latest(registry).decode())
    assert {name for name, _, _ in samples_of(served)} == {name for name, _, _ in collected}
    unchanging = {sample for sample in collected if not sample[0].startswith(("process_", "reconciliation_oldest"))}
    assert unchanging <= samples_of(served)


def test_serve_metrics_answers_only_get(watched: Any, registry: CollectorRegistry) -> None:
    server = serve_metrics(registry, port=0)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/metrics", data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)  # noqa: S310 - a loopback http URL we built
    finally:
        server.close()

    assert refused.value.code == 405


def test_serve_metrics_on_a_port_in_use_raises_os_error(registry: CollectorRegistry) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()

        with pytest.raises(OSError, match="in use"):
            serve_metrics(registry, port=taken.getsockname()[1])


# The optional extra


def test_without_prometheus_client_the_module_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "reconciliation.metrics")

    with pytest.raises(ImportError, match=re.escape("pip install 'reconciliation[metrics]'")):
        importlib.import_module("reconciliation.metrics")


# The Grafana dashboard

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


def _sample_names(registry: CollectorRegistry) -> dict[str, set[str]]:
    """Each metric family the module exports, with the names of the samples Prometheus stores for it."""
    return {
        family.name: {family.name + suffix for suffix in _SUFFIXES[family.type]}
        for family in registry.collect()
    }


def _queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression: each panel's targets (rows' panels included) and each variable's query."""
    panels = [
        *dashboard["panels"],
        *(inner for panel in dashboard["panels"] for inner in panel.get("panels", ())),
    ]
    queries = [target["expr"] for panel in panels for target in panel.get("targets", ())]
    queries.extend(
        variable["query"]["query"]
        for variable in dashboard["templating"]["list"]
        if isinstance(variable.get("query"), dict)
    )
    return queries


def _queried(dashboard: dict[str, Any]) -> set[str]:
    return {name for query in _queries(dashboard) for name in re.findall(r"\breconciliation_\w+", query)}


def test_every_panel_of_the_grafana_dashboard_has_a_query() -> None:
    dashboard = json.loads(DASHBOARD.read_text())

    charts = [panel for panel in dashboard["panels"] if panel["type"] != "row"]

    assert charts
    assert [panel["title"] for panel in charts if not all(t["expr"] for t in panel.get("targets", ()))] == []


def test_the_grafana_dashboard_queries_only_metrics_the_module_exports(registry: CollectorRegistry) -> None:
    ReconciliationMetrics(registry)
    exported = set().union(*_sample_names(registry).values())

    queried = _queried(json.loads(DASHBOARD.read_text()))

    assert queried
    assert queried - exported == set()


def test_the_grafana_dashboard_charts_every_metric_the_module_exports(registry: CollectorRegistry) -> None:
    ReconciliationMetrics(registry)

    queried = _queried(json.loads(DASHBOARD.read_text()))

    assert {family for family, samples in _sample_names(registry).items() if not samples & queried} == set()


def test_every_query_of_the_grafana_dashboard_closes_what_it_opens() -> None:
    pairs = {")": "(", "]": "[", "}": "{"}
    for query in _queries(json.loads(DASHBOARD.read_text())):
        opened: list[str] = []
        for char in re.sub(r'"[^"]*"', '""', query):
            if char in "([{":
                opened.append(char)
            elif char in pairs:
                assert opened[-1:] == [pairs[char]], query
                opened.pop()
        assert opened == [], query


def test_an_account_held_as_standby_is_one_with_the_runtime_that_owns_it(
    harness_factory: Any, registry: CollectorRegistry
) -> None:
    server = fakeredis.FakeServer()
    owner = harness_factory(redis_server=server)
    owner.start()
    standby = harness_factory(redis_server=server)
    ReconciliationMetrics(registry).watch(standby.service, name="second")

    standby.start()

    (holder,) = standby.service.health().standby.values()
    owner_name = holder.removeprefix("standby (owned by ").removesuffix(")")
    assert owner_name.startswith("reconciliation@")
    assert value(registry, "reconciliation_account_standby", runtime="second", account=ACCOUNT, owner=owner_name) == 1
