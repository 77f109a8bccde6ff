"""Prometheus metrics of every run, break, book call and sink (the optional `metrics` extra).

    registry = prometheus_client.CollectorRegistry()
    metrics = ReconciliationMetrics(registry).watch(service)     # or a ReconciliationRuntime
    server = serve_metrics(registry, port=9108)                  # /metrics; server.close() at stop

Watching a service adds an observer to it (`add_observer`), which counts each finished
run and times each book call as they happen, in the runtime's threads; the health
figures (queues, components, hung calls) are read from `service.health()` when
Prometheus scrapes, which never waits on an actor. One `ReconciliationMetrics` per
registry watches any number of services and runtimes.

Per account (label `account`): `reconciliation_runs_total`,
`reconciliation_run_duration_seconds`, `reconciliation_book_call_duration_seconds`,
`reconciliation_book_call_timeouts_total`, `reconciliation_book_calls_refused_total`,
`reconciliation_open_breaks`, `reconciliation_oldest_open_break_age_seconds`,
`reconciliation_last_clean_run_timestamp_seconds`,
`reconciliation_corrections_proposed_total`, `reconciliation_corrections_applied_total`,
`reconciliation_corrections_held`, `reconciliation_suspect_runs_total`,
`reconciliation_explained_breaks_total`.
Per watched service or runtime (label `runtime`): `reconciliation_delivery_*`,
`reconciliation_book_calls_hung`, `reconciliation_refused_fills_total`,
`reconciliation_component_state`, `reconciliation_component_errors_total`.
docs/operations.md describes each, and docs/grafana-dashboard.json charts them.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
from typing import TYPE_CHECKING

import attrs

from reconciliation._domain.ageing import Sighting
from reconciliation._domain.correction import CorrectionStatus
from reconciliation._domain.models import DiscrepancySeverity, DiscrepancyType
from reconciliation._domain.triggers import TRIGGER_NAMES
from reconciliation._runtime.health import ComponentState
from reconciliation._runtime.service import ReconciliationRuntime, ReconciliationService

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
except ImportError as missing:
    msg = f"reconciliation.metrics needs prometheus_client ({missing}): pip install 'reconciliation[metrics]'"
    raise ImportError(msg) from missing

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import Metric

    from reconciliation._domain.correction import CorrectionEvent
    from reconciliation._domain.sinks import FinishedRun
    from reconciliation._runtime.health import ServiceHealth
    from reconciliation._runtime.observers import BookCallTiming

__all__ = [
    "BOOK_CALL_SECONDS_BUCKETS",
    "RUN_SECONDS_BUCKETS",
    "MetricsServer",
    "ReconciliationMetrics",
    "Watchable",
    "serve_metrics",
]

logger = logging.getLogger(__name__)

Watchable = ReconciliationService | ReconciliationRuntime

RUN_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""From a small book compared in milliseconds to a run that waited out a 30 s broker timeout."""
BOOK_CALL_SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_STATUSES = ("ok", "failed")
_VERDICTS = ("explained", "partly_explained", "unexplained")
_BOOK_CALLS = ("local.get_positions", "local.get_account", "broker.get_positions", "broker.get_account")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@attrs.frozen
class _OpenBreaks:
    """An account's open breaks as of its last completed run, and when it last ran clean.

    The run's sightings are kept as they are and counted when scraped, so a run with
    many breaks costs the runtime's thread nothing more.
    """

    sightings: tuple[Sighting, ...]
    last_clean_at: dt.datetime | None


class _Families:
    """The metric families read at scrape time, empty until filled (also what `describe` names)."""

    def __init__(self) -> None:
        account, runtime, sink = ["account"], ["runtime"], ["runtime", "sink"]
        self.open_breaks = GaugeMetricFamily(
            "reconciliation_open_breaks",
            "Open breaks after the account's last completed run, by type and severity (after escalation).",
            labels=[*account, "type", "severity"],
        )
        self.oldest_age = GaugeMetricFamily(
            "reconciliation_oldest_open_break_age_seconds",
            "How long the oldest open break has been open (since its first_seen); 0 without one.",
            labels=account,
        )
        self.last_clean = GaugeMetricFamily(
            "reconciliation_last_clean_run_timestamp_seconds",
            "When the account last reconciled without a break or an error (unix time of its snapshot).",
            labels=account,
        )
        self.queued = GaugeMetricFamily(
            "reconciliation_delivery_queued_runs", "Runs waiting to be delivered to the sink.", labels=sink
        )
        self.delivered = CounterMetricFamily(
            "reconciliation_delivery_delivered_runs", "Runs delivered to the sink.", labels=sink
        )
        self.dropped = CounterMetricFamily(
            "reconciliation_delivery_dropped_runs",
            "Runs lost because the sink's queue was full while the sink was unavailable.",
            labels=sink,
        )
        self.set_aside = CounterMetricFamily(
            "reconciliation_delivery_set_aside_runs",
            "Runs the sink refused for their content (each logged at ERROR).",
            labels=sink,
        )
        self.reachable = GaugeMetricFamily(
            "reconciliation_delivery_reachable",
            "1 while the sink takes runs, 0 since a failed attempt.",
            labels=sink,
        )
        self.hung = GaugeMetricFamily(
            "reconciliation_book_calls_hung",
            "Broker or book calls still running past their timeout (no second one is made meanwhile).",
            labels=runtime,
        )
        self.refused_fills = CounterMetricFamily(
            "reconciliation_refused_fills",
            "Fills told for accounts the runtime does not reconcile.",
            labels=runtime,
        )
        self.component_state = GaugeMetricFamily(
            "reconciliation_component_state",
            "1 for each component's current state (running, degraded, stopped), 0 for the others.",
            labels=[*runtime, "component", "state"],
        )
        self.component_errors = CounterMetricFamily(
            "reconciliation_component_errors",
            "Failures a component reported and went on from.",
            labels=[*runtime, "component"],
        )
        self.corrections_held = GaugeMetricFamily(
            "reconciliation_corrections_held",
            "1 while an account's confirmed corrections are held (a limit reached, another runtime's lease).",
            labels=[*runtime, "account"],
        )

    def all(self) -> list[Metric]:
        return [
            self.open_breaks,
            self.oldest_age,
            self.last_clean,
            self.queued,
            self.delivered,
            self.dropped,
            self.set_aside,
            self.reachable,
            self.hung,
            self.refused_fills,
            self.component_state,
            self.component_errors,
            self.corrections_held,
        ]

    def add_account(self, account: str, breaks: _OpenBreaks, now: dt.datetime) -> None:
        sightings = breaks.sightings
        by_kind = collections.Counter(
            (sighting.discrepancy.type, sighting.severity) for sighting in sightings
        )
        for kind in DiscrepancyType:
            for severity in DiscrepancySeverity:
                self.open_breaks.add_metric([account, kind.value, severity.value], by_kind[kind, severity])
        oldest = min((sighting.first_seen for sighting in sightings), default=None)
        self.oldest_age.add_metric(
            [account], 0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0)
        )
        if breaks.last_clean_at is not None:
            self.last_clean.add_metric([account], breaks.last_clean_at.timestamp())

    def add_health(self, runtime: str, health: ServiceHealth) -> None:
        for sink, delivery in sorted(health.delivery.items()):
            labels = [runtime, sink]
            self.queued.add_metric(labels, delivery.queued_runs)
            self.delivered.add_metric(labels, delivery.delivered_runs)
            self.dropped.add_metric(labels, delivery.dropped_runs)
            self.set_aside.add_metric(labels, delivery.set_aside_runs)
            self.reachable.add_metric(labels, 1 if delivery.reachable else 0)
        self.hung.add_metric([runtime], health.hung_broker_calls)
        self.refused_fills.add_metric([runtime], health.refused_fills)
        for name, component in sorted(health.components.items()):
            for state in ComponentState:
                self.component_state.add_metric(
                    [runtime, name, state.value], 1 if component.state is state else 0
                )
            self.component_errors.add_metric([runtime, name], component.errors)
        for account in sorted(health.corrections_held):
            self.corrections_held.add_metric([runtime, account], 1)


class ReconciliationMetrics:
    """The Prometheus metrics of the services it watches, as one collector on `registry`.

    It is a `RuntimeObserver` of each watched service or runtime (quick and
    thread-safe: it is called in their threads) and a collector that reads their
    health when scraped. `registry.unregister(metrics)` takes every metric away again.

    Args:
        registry: where to register; prometheus_client's default registry if not given.
        now: the wall clock break ages are measured against (a test's `ManualClock.now`).

    Raises:
        ValueError: `registry` already holds reconciliation metrics (watch every
            service with the one `ReconciliationMetrics` of a registry).
    """

    def __init__(
        self, registry: CollectorRegistry = REGISTRY, *, now: Callable[[], dt.datetime] = _utc_now
    ) -> None:
        self._registry = registry
        self._now = now
        self._lock = threading.Lock()
        self._watched: dict[Watchable, tuple[str, tuple[str, ...]]] = {}
        self._open_breaks: dict[str, _OpenBreaks] = {}
        account, call = ["account"], ["account", "call"]
        self._runs = Counter(
            "reconciliation_runs",
            "Runs finished, by trigger (startup, periodic, post_fill, on_demand) and status (ok, failed).",
            [*account, "trigger", "status"],
            registry=None,
        )
        self._run_seconds = Histogram(
            "reconciliation_run_duration_seconds",
            "How long each run took, from its trigger to its result.",
            account,
            buckets=RUN_SECONDS_BUCKETS,
            registry=None,
        )
        self._call_seconds = Histogram(
            "reconciliation_book_call_duration_seconds",
            "How long each call to a book (broker.get_positions, local.get_account, ...) was waited for.",
            call,
            buckets=BOOK_CALL_SECONDS_BUCKETS,
            registry=None,
        )
        self._call_timeouts = Counter(
            "reconciliation_book_call_timeouts",
            "Book calls that did not answer within broker_timeout_seconds.",
            call,
            registry=None,
        )
        self._calls_refused = Counter(
            "reconciliation_book_calls_refused",
            "Book calls not made because the previous call of the same method still hangs.",
            call,
            registry=None,
        )
        self._corrections_proposed = Counter(
            "reconciliation_corrections_proposed",
            "Corrections proposed for breaks, by break type.",
            [*account, "type"],
            registry=None,
        )
        self._corrections_applied = Counter(
            "reconciliation_corrections_applied",
            "Corrections applied to a book, by break type.",
            [*account, "type"],
            registry=None,
        )
        self._explanations = Counter(
            "reconciliation_explained_breaks",
            "Position breaks published with the fills behind them, by verdict (explained, partly_explained, "
            "unexplained).",
            [*account, "verdict"],
            registry=None,
        )
        self._suspect_runs = Counter(
            "reconciliation_suspect_runs",
            "Completed runs whose broker answer was implausible against the account's recent history "
            "(no correction acts on them).",
            account,
            registry=None,
        )
        try:
            registry.register(self)
        except ValueError:  # a duplicated name (DuplicateTimeseries from prometheus_client 0.26)
            msg = (
                "this registry already holds reconciliation metrics: watch every service "
                "with the one ReconciliationMetrics registered on it"
            )
            raise ValueError(msg) from None

    @property
    def registry(self) -> CollectorRegistry:
        """The registry these metrics are registered on."""
        return self._registry

    def watch(self, target: Watchable, *, name: str | None = None) -> ReconciliationMetrics:
        """Count `target`'s runs and book calls, and report its health, from now on.

        Before or after it starts. Its accounts' run, timeout and refusal counters are
        there from then on, at 0 until something is counted.

        Args:
            target: a `ReconciliationService` or a `ReconciliationRuntime`.
            name: the `runtime` label of its health metrics; by default its account ids,
                joined with commas.

        Returns:
            These metrics, so that `ReconciliationMetrics(registry).watch(service)` is one line.

        Raises:
            TypeError: `target` is neither a service nor a runtime.
            ValueError: it is watched already, or another watched one has that name.
        """
        accounts = _accounts_of(target)
        label = ",".join(accounts) if name is None else name
        if not label:
            msg = "a runtime's name must not be empty"
            raise ValueError(msg)
        with self._lock:
            if target in self._watched:
                msg = f"the runtime {self._watched[target][0]!r} is watched already"
                raise ValueError(msg)
            if any(label == watched for watched, _ in self._watched.values()):
                msg = f"another watched runtime is named {label!r}: give this one another name"
                raise ValueError(msg)
            self._watched[target] = (label, accounts)
        for account in accounts:
            for trigger in TRIGGER_NAMES:
                for status in _STATUSES:
                    self._runs.labels(account, trigger, status)
            self._suspect_runs.labels(account)
            for verdict in _VERDICTS:
                self._explanations.labels(account, verdict)
            for call in _BOOK_CALLS:
                self._call_timeouts.labels(account, call)
                self._calls_refused.labels(account, call)
        target.add_observer(self)
        return self

    def unwatch(self, target: Watchable) -> None:
        """Stop watching `target`: its health and open-break gauges go; counters keep their totals.

        Raises:
            ValueError: it is not watched.
        """
        with self._lock:
            watched = self._watched.pop(target, None)
            if watched is None:
                msg = "that runtime is not watched"
                raise ValueError(msg)
            for account in watched[1]:
                self._open_breaks.pop(account, None)
        target.remove_observer(self)

    def correction_event(self, event: CorrectionEvent) -> None:
        """Count a correction when it is proposed, and again when it is applied."""
        labels = (event.account_id, event.correction.type.value)
        if event.status is CorrectionStatus.PROPOSED:
            self._corrections_proposed.labels(*labels).inc()
        elif event.status is CorrectionStatus.APPLIED:
            self._corrections_applied.labels(*labels).inc()

    def run_finished(self, run: FinishedRun) -> None:
        """Count the run; a completed one also sets its account's open breaks (a failed one says nothing of them)."""
        result = run.result
        account = result.account_id
        self._runs.labels(account, result.trigger, result.status).inc()
        self._run_seconds.labels(account).observe(result.duration_ms / 1000)
        if result.error is not None:
            return
        if result.suspect is not None:
            self._suspect_runs.labels(account).inc()
        for discrepancy in result.discrepancies:
            if discrepancy.explanation is not None:
                self._explanations.labels(account, discrepancy.explanation.verdict).inc()
        breaks = _OpenBreaks(run.ageing.sightings, result.timestamp if result.is_clean else None)
        with self._lock:
            if not any(account in accounts for _, accounts in self._watched.values()):
                return
            previous = self._open_breaks.get(account)
            if breaks.last_clean_at is None and previous is not None:
                breaks = attrs.evolve(breaks, last_clean_at=previous.last_clean_at)
            self._open_breaks[account] = breaks

    def book_call_ended(self, timing: BookCallTiming) -> None:
        labels = (timing.account_id, timing.call)
        if timing.outcome == "still_hung":
            self._calls_refused.labels(*labels).inc()
            return
        self._call_seconds.labels(*labels).observe(timing.seconds)
        if timing.outcome == "timeout":
            self._call_timeouts.labels(*labels).inc()

    def describe(self) -> list[Metric]:
        """The metric families, empty: how the registry knows their names."""
        return [*self._counted(describe=True), *_Families().all()]

    def collect(self) -> Iterator[Metric]:
        """Every metric, the health of each watched runtime read now."""
        yield from self._counted(describe=False)
        now = self._now()
        with self._lock:
            watched = [(target, label) for target, (label, _) in self._watched.items()]
            open_breaks = sorted(self._open_breaks.items())
        families = _Families()
        for account, breaks in open_breaks:
            families.add_account(account, breaks, now)
        for target, label in watched:
            try:
                health = target.health()
            except Exception:
                logger.exception("The health of %s could not be read for its metrics", label)
                continue
            families.add_health(label, health)
        yield from families.all()

    def _counted(self, *, describe: bool) -> Iterator[Metric]:
        for metric in (
            self._runs,
            self._run_seconds,
            self._call_seconds,
            self._call_timeouts,
            self._calls_refused,
            self._corrections_proposed,
            self._corrections_applied,
            self._suspect_runs,
            self._explanations,
        ):
            yield from metric.describe() if describe else metric.collect()


def _accounts_of(target: Watchable) -> tuple[str, ...]:
    if isinstance(target, ReconciliationService):
        return (target.config.account_id,)
    if isinstance(target, ReconciliationRuntime):
        return tuple(target.accounts)
    msg = f"metrics watch a ReconciliationService or a ReconciliationRuntime, not {type(target).__name__}"
    raise TypeError(msg)


class MetricsServer:
    """`/metrics` over HTTP, served by prometheus_client's server on a daemon thread until `close()`."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving and release the port. Idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout)
        self._server.server_close()


def serve_metrics(
    registry: CollectorRegistry = REGISTRY, *, port: int, host: str = "127.0.0.1"
) -> MetricsServer:
    """Serve `registry` at http://host:port/metrics (port 0: any free port, see `MetricsServer.port`).

    Raises:
        OSError: it cannot listen there (the port is in use, the host is not this machine's).
    """
    server, thread = start_http_server(port, addr=host, registry=registry)
    logger.info("Serving Prometheus metrics on http://%s:%d/metrics", host, server.server_address[1])
    return MetricsServer(server, thread)
