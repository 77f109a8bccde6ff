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
`reconciliation_run_duration_seconds`,
`reconciliation_book_call_timeouts_total`, `reconciliation_book_calls_refused_total`,
`reconciliation_open_breaks` (only the type and severity pairs with a break),
`reconciliation_oldest_open_break_age_seconds`,
`reconciliation_last_clean_run_timestamp_seconds` (0 until the first clean run, there from the
start so that "no clean run for an hour" fires for an account never clean),
`reconciliation_account_watched_since_timestamp_seconds`,
`reconciliation_next_run_due_timestamp_seconds` (0 until the first run says it),
`reconciliation_account_stale` (1 once the next run is `stale_grace_seconds` overdue),
`reconciliation_corrections_proposed_total`, `reconciliation_corrections_applied_total`,
`reconciliation_suspect_runs_total`, `reconciliation_explained_breaks_total`.
Per watched service or runtime (label `runtime`): `reconciliation_book_call_duration_seconds`,
`reconciliation_delivery_*`, `reconciliation_book_calls_hung`,
`reconciliation_refused_fills_total`, `reconciliation_component_state`,
`reconciliation_component_errors_total`, `reconciliation_corrections_held` and
`reconciliation_account_standby` (with `account`; the latter with the `owner`).
`reconciliation_build_info{version}` is 1. No `_created` series: 42 series for an account
that ran clean, each account's samples built again only after it ran.
docs/operations.md describes each, and docs/grafana-dashboard.json charts them.
"""

from __future__ import annotations

import bisect
import collections
import datetime as dt
import functools
import gzip
import importlib.metadata
import itertools
import json
import logging
import socket
import threading
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import attrs

from reconciliation._domain.ageing import Sighting
from reconciliation._domain.correction import CorrectionStatus
from reconciliation._domain.triggers import TRIGGER_NAMES
from reconciliation._runtime.health import ComponentState, owner_of
from reconciliation._runtime.service import ReconciliationRuntime, ReconciliationService

try:
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.exposition import ThreadingWSGIServer
    from prometheus_client.metrics_core import Metric
    from prometheus_client.samples import Sample
    from prometheus_client.utils import floatToGoString
except ImportError as missing:
    msg = f"reconciliation.metrics needs prometheus_client ({missing}): pip install 'reconciliation[metrics]'"
    raise ImportError(msg) from missing

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from wsgiref.simple_server import WSGIServer

    from reconciliation._domain.correction import CorrectionEvent
    from reconciliation._domain.sinks import FinishedRun
    from reconciliation._runtime.health import ServiceHealth
    from reconciliation._runtime.observers import BookCallTiming

__all__ = [
    "BOOK_CALL_SECONDS_BUCKETS",
    "RUN_SECONDS_BUCKETS",
    "STALE_GRACE_SECONDS",
    "MetricsServer",
    "ReconciliationMetrics",
    "Watchable",
    "scrape",
    "serve_metrics",
]

logger = logging.getLogger(__name__)

Watchable = ReconciliationService | ReconciliationRuntime

RUN_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""From a small book compared in milliseconds to a run that waited out a 30 s broker timeout."""
BOOK_CALL_SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

STALE_GRACE_SECONDS = 120.0
"""How long past its next run's due time an account goes without a run before it is stale."""

_STATUSES = ("ok", "failed")
_VERDICTS = ("explained", "partly_explained", "unexplained")
_BOOK_CALLS = ("local.get_positions", "local.get_account", "broker.get_positions", "broker.get_account")
_UTC_NOW = functools.partial(dt.datetime.now, dt.UTC)


@attrs.frozen
class _OpenBreaks:
    """An account's open breaks as of its last completed run, and when it last ran clean."""

    sightings: tuple[Sighting, ...]
    last_clean_at: dt.datetime | None


class _Histogram:
    """Cumulative bucket counts, a sum and a count: one labelled child of a histogram."""

    __slots__ = ("bounds", "buckets", "count", "counts", "total")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.bounds = (*(repr(float(bound)) for bound in buckets), "+Inf")
        """Each bucket's `le` label, as prometheus_client writes it."""
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def samples(self, name: str, labels: dict[str, str]) -> list[Sample]:
        buckets = [
            Sample(f"{name}_bucket", {**labels, "le": bound}, cumulative)
            for bound, cumulative in zip(self.bounds, itertools.accumulate(self.counts), strict=True)
        ]
        return [*buckets, Sample(f"{name}_count", labels, self.count), Sample(f"{name}_sum", labels, self.total)]


class _Account:
    """One account's series: kept as numbers as they change, and as samples as last built.

    A scrape takes each account's samples as they were built (`samples`), and builds them
    again only for an account whose numbers changed since: the scrape of many accounts
    walks the few that ran, not all of them.
    """

    def __init__(self, account: str) -> None:
        self.account = account
        self.runs = {(trigger, status): 0 for trigger in TRIGGER_NAMES for status in _STATUSES}
        self.run_seconds = _Histogram(RUN_SECONDS_BUCKETS)
        self.timeouts = dict.fromkeys(_BOOK_CALLS, 0)
        self.refused = dict.fromkeys(_BOOK_CALLS, 0)
        self.proposed: dict[str, int] = {}
        self.applied: dict[str, int] = {}
        self.suspect = 0
        self.explained = dict.fromkeys(_VERDICTS, 0)
        self.breaks: _OpenBreaks | None = None
        self.watched_since: float | None = None
        """When watching it began (unix time); None while no watched runtime runs it."""
        self.next_run_due: float = 0.0
        self.built: dict[str, list[Sample]] | None = None
        self.written: dict[str, str] | None = None

    def changed(self) -> None:
        self.built = self.written = None

    def samples(self) -> dict[str, list[Sample]]:
        if self.built is None:
            self.built = self._build()
        return self.built

    def text(self) -> dict[str, str]:
        """Each family's lines in Prometheus' text format, as last written."""
        if self.written is None:
            self.written = {family: _lines(samples) for family, samples in self.samples().items()}
        return self.written

    def _build(self) -> dict[str, list[Sample]]:
        account = self.account
        built: dict[str, list[Sample]] = {
            "reconciliation_runs": [
                Sample("reconciliation_runs_total", {"account": account, "trigger": trigger, "status": status}, count)
                for (trigger, status), count in self.runs.items()
            ],
            "reconciliation_run_duration_seconds": self.run_seconds.samples(
                "reconciliation_run_duration_seconds", {"account": account}
            ),
        }
        for family, label, counts in (
            ("reconciliation_book_call_timeouts", "call", self.timeouts),
            ("reconciliation_book_calls_refused", "call", self.refused),
            ("reconciliation_corrections_proposed", "type", self.proposed),
            ("reconciliation_corrections_applied", "type", self.applied),
            ("reconciliation_explained_breaks", "verdict", self.explained),
        ):
            built[family] = [
                Sample(f"{family}_total", {"account": account, label: key}, count) for key, count in counts.items()
            ]
        built["reconciliation_suspect_runs"] = [
            Sample("reconciliation_suspect_runs_total", {"account": account}, self.suspect)
        ]
        built["reconciliation_open_breaks"] = []
        last_clean = self.breaks.last_clean_at if self.breaks is not None else None
        for family, value in (
            ("reconciliation_last_clean_run_timestamp_seconds", 0.0 if last_clean is None else last_clean.timestamp()),
            ("reconciliation_account_watched_since_timestamp_seconds", self.watched_since),
            ("reconciliation_next_run_due_timestamp_seconds", self.next_run_due),
        ):
            built[family] = (
                [] if value is None or self.watched_since is None else [Sample(family, {"account": account}, value)]
            )
        if self.breaks is not None:
            by_kind = collections.Counter(
                (sighting.discrepancy.type.value, sighting.severity.value) for sighting in self.breaks.sightings
            )
            built["reconciliation_open_breaks"] = [
                Sample("reconciliation_open_breaks", {"account": account, "type": kind, "severity": severity}, count)
                for (kind, severity), count in sorted(by_kind.items())
            ]
        return built

    def oldest_age(self, now: dt.datetime) -> list[Sample]:
        """The age of the oldest open break now (0 without one); none before a completed run."""
        if self.breaks is None:
            return []
        oldest = min((sighting.first_seen for sighting in self.breaks.sightings), default=None)
        age = 0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0)
        return [Sample("reconciliation_oldest_open_break_age_seconds", {"account": self.account}, age)]

    def stale(self, now: float, grace: float) -> list[Sample]:
        """1 when its next run is more than `grace` overdue (0 before a run said when); none unwatched."""
        if self.watched_since is None:
            return []
        overdue = self.next_run_due > 0 and now > self.next_run_due + grace
        return [Sample("reconciliation_account_stale", {"account": self.account}, 1.0 if overdue else 0.0)]


_ACCOUNT_FAMILIES = (
    ("reconciliation_runs", "counter", "Runs finished, by trigger (startup, periodic, post_fill, on_demand) and status (ok, failed)."),
    ("reconciliation_run_duration_seconds", "histogram", "How long each run took, from its trigger to its result."),
    ("reconciliation_book_call_timeouts", "counter", "Book calls that did not answer within broker_timeout_seconds."),
    (
        "reconciliation_book_calls_refused",
        "counter",
        "Book calls not made because the previous call of the same method still hangs.",
    ),
    ("reconciliation_corrections_proposed", "counter", "Corrections proposed for breaks, by break type."),
    ("reconciliation_corrections_applied", "counter", "Corrections applied to a book, by break type."),
    (
        "reconciliation_suspect_runs",
        "counter",
        (
            "Completed runs whose broker answer was implausible against the account's recent history "
            "(no correction acts on them)."
        ),
    ),
    (
        "reconciliation_explained_breaks",
        "counter",
        (
            "Position breaks published with the fills behind them, by verdict (explained, partly_explained, "
            "unexplained)."
        ),
    ),
    (
        "reconciliation_open_breaks",
        "gauge",
        (
            "Open breaks after the account's last completed run, by type and severity (after escalation); "
            "only the type and severity pairs with a break."
        ),
    ),
    (
        "reconciliation_last_clean_run_timestamp_seconds",
        "gauge",
        "When the account last reconciled without a break or an error (unix time of its snapshot); 0 before its first clean run.",
    ),
    (
        "reconciliation_account_watched_since_timestamp_seconds",
        "gauge",
        "When these metrics began to watch the account (unix time): the age of a never-clean or never-run account.",
    ),
    (
        "reconciliation_next_run_due_timestamp_seconds",
        "gauge",
        "When the account's next periodic run is due, as of its last run (unix time); 0 before a run said it or without periodic runs.",
    ),
)
_STALE = (
    "reconciliation_account_stale",
    "gauge",
    "1 when the account's next run is overdue by more than the stale grace: its runs stopped coming.",
)
_BUILD_INFO = ("reconciliation_build_info", "gauge", "1, labelled with the installed version of reconciliation.")
_OLDEST_AGE = (
    "reconciliation_oldest_open_break_age_seconds",
    "gauge",
    "How long the oldest open break has been open (since its first_seen); 0 without one.",
)
_CALL_SECONDS = (
    "reconciliation_book_call_duration_seconds",
    "histogram",
    "How long each call to a book (broker.get_positions, local.get_account, ...) was waited for.",
)


_exposing = threading.local()
"""`found`, while this thread serves a scrape (`serve_metrics`): the `ReconciliationMetrics`
the registry holds, each of which then writes its `exposition` instead of being collected."""


def _lines(samples: list[Sample]) -> str:
    """`samples` in Prometheus' text format, as prometheus_client's `generate_latest` writes them."""
    return "".join(f"{sample.name}{_labels(sample.labels)} {_number(sample.value)}\n" for sample in samples)


_LABEL_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", '"': '\\"'})


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    pairs = ",".join(f'{name}="{value.translate(_LABEL_ESCAPES)}"' for name, value in sorted(labels.items()))
    return f"{{{pairs}}}"


def _number(value: float) -> str:
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def _header(name: str, kind: str, documentation: str) -> str:
    shown = f"{name}_total" if kind == "counter" else name
    text = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {shown} {text}\n# TYPE {shown} {kind}\n"


def _family(name: str, kind: str, documentation: str, samples: list[Sample]) -> Metric:
    family = Metric(name, documentation, kind)
    family.samples = samples
    return family


class _Families:
    """The health families read at scrape time, empty until filled (also what `describe` names)."""

    def __init__(self) -> None:
        runtime, sink = ["runtime"], ["runtime", "sink"]
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
        self.standby = GaugeMetricFamily(
            "reconciliation_account_standby",
            "1 while an account is held as standby here: not reconciled, published or corrected by this "
            "runtime; owner is the runtime that holds its lease (empty: this runtime may own none, its name was taken).",
            labels=[*runtime, "account", "owner"],
        )

    def all(self) -> list[Metric]:
        """Every family, in the order they are made above."""
        return list(vars(self).values())

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
        for account, why in sorted(health.standby.items()):
            self.standby.add_metric([runtime, account, owner_of(why)], 1)


class ReconciliationMetrics:
    """The Prometheus metrics of the services it watches, as one collector on `registry`.

    It is a `RuntimeObserver` of each watched service or runtime (quick and
    thread-safe: it is called in their threads) and a collector that reads their
    health when scraped. `registry.unregister(metrics)` takes every metric away again.

    Per account it keeps numbers, and the samples last built from them: a scrape builds
    again only the accounts that changed since the one before, so its cost grows with the
    accounts that ran, not with all of them (docs/benchmarks.md measures 500 accounts).

    Args:
        registry: where to register; prometheus_client's default registry if not given.
        now: the wall clock break ages are measured against (a test's `ManualClock.now`).
        stale_grace_seconds: how long past its next run's due time an account is stale.

    Raises:
        ValueError: `registry` already holds reconciliation metrics (watch every
            service with the one `ReconciliationMetrics` of a registry).
    """

    def __init__(
        self,
        registry: CollectorRegistry = REGISTRY,
        *,
        now: Callable[[], dt.datetime] = _UTC_NOW,
        stale_grace_seconds: float = STALE_GRACE_SECONDS,
    ) -> None:
        self._registry = registry
        self._now = now
        self._stale_grace = stale_grace_seconds
        self._lock = threading.Lock()
        self._watched: dict[Watchable, tuple[str, tuple[str, ...]]] = {}
        self._accounts: dict[str, _Account] = {}
        self._with_breaks: set[str] = set()
        """The accounts whose open breaks are reported (their oldest age is measured at each scrape)."""
        self._runtime_of: dict[str, str] = {}
        self._call_seconds: dict[tuple[str, str], _Histogram] = collections.defaultdict(
            functools.partial(_Histogram, BOOK_CALL_SECONDS_BUCKETS)
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
            since = self._now().timestamp()
            for account in accounts:
                series = self._accounts.setdefault(account, _Account(account))
                series.watched_since = since
                series.changed()
                self._runtime_of[account] = label
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
                series = self._accounts[account]
                series.breaks = None
                series.watched_since = None
                series.changed()
                self._with_breaks.discard(account)
        target.remove_observer(self)

    def correction_event(self, event: CorrectionEvent) -> None:
        """Count a correction when it is proposed, and again when it is applied."""
        kind = event.correction.type.value
        with self._lock:
            series = self._accounts.get(event.account_id)
            if series is None:
                return
            if event.status is CorrectionStatus.PROPOSED:
                series.proposed[kind] = series.proposed.get(kind, 0) + 1
            elif event.status is CorrectionStatus.APPLIED:
                series.applied[kind] = series.applied.get(kind, 0) + 1
            else:
                return
            series.changed()

    def run_finished(self, run: FinishedRun) -> None:
        """Count the run; a completed one also sets its account's open breaks (a failed one says nothing of them)."""
        result = run.result
        account = result.account_id
        with self._lock:
            series = self._accounts.get(account)
            if series is None:
                return
            key = (result.trigger, result.status)
            series.runs[key] = series.runs.get(key, 0) + 1
            series.run_seconds.observe(result.duration_ms / 1000)
            if result.suspect is not None:
                series.suspect += 1
            for discrepancy in result.discrepancies:
                if discrepancy.explanation is not None:
                    series.explained[discrepancy.explanation.verdict] += 1
            if result.next_run_due is not None:
                series.next_run_due = result.next_run_due.timestamp()
            series.changed()
            if result.error is not None or not any(account in accounts for _, accounts in self._watched.values()):
                return
            last_clean = result.timestamp if result.is_clean else None
            if last_clean is None and series.breaks is not None:
                last_clean = series.breaks.last_clean_at
            series.breaks = _OpenBreaks(run.ageing.sightings, last_clean)
            self._with_breaks.add(account)

    def book_call_ended(self, timing: BookCallTiming) -> None:
        with self._lock:
            series = self._accounts.get(timing.account_id)
            if series is None:
                return
            if timing.outcome == "still_hung":
                series.refused[timing.call] = series.refused.get(timing.call, 0) + 1
                series.changed()
                return
            if timing.outcome == "timeout":
                series.timeouts[timing.call] = series.timeouts.get(timing.call, 0) + 1
                series.changed()
            runtime = self._runtime_of.get(timing.account_id)
            if runtime is not None:
                self._call_seconds[runtime, timing.call].observe(timing.seconds)

    def describe(self) -> list[Metric]:
        """The metric families, empty: how the registry knows their names."""
        return [
            *(
                _family(name, kind, text, [])
                for name, kind, text in (*_ACCOUNT_FAMILIES, _OLDEST_AGE, _STALE, _CALL_SECONDS, _BUILD_INFO)
            ),
            *_Families().all(),
        ]

    def collect(self) -> Iterator[Metric]:
        """Every metric: each account's samples as last built, the health of each watched runtime read now.

        Nothing while `serve_metrics` answers a scrape in this thread: it asks `exposition`."""
        found = getattr(_exposing, "found", None)
        if found is not None:
            found.append(self)
            return
        with self._lock:
            accounts = [self._accounts[account] for account in sorted(self._accounts)]
            built = [series.samples() for series in accounts]
            read_now, watched = self._read_now()
        for name, kind, text in _ACCOUNT_FAMILIES:
            yield _family(name, kind, text, list(itertools.chain.from_iterable(samples[name] for samples in built)))
        for (name, kind, text), samples in read_now:
            yield _family(name, kind, text, samples)
        yield from self._health(watched)

    def exposition(self) -> str:
        """These metrics in Prometheus' text format, as `collect` gives them: each account's
        lines as last written (written again only for an account that changed), so a scrape
        of many accounts joins text rather than formatting every sample."""
        with self._lock:
            written = [self._accounts[account].text() for account in sorted(self._accounts)]
            read_now, watched = self._read_now()
        parts: list[str] = []
        for name, kind, text in _ACCOUNT_FAMILIES:
            parts.append(_header(name, kind, text))
            parts.extend(lines[name] for lines in written)
        for family_of, samples in read_now:
            parts.extend((_header(*family_of), _lines(samples)))
        for family in self._health(watched):
            parts.extend((_header(family.name, family.type, family.documentation), _lines(family.samples)))
        return "".join(parts)

    def _read_now(
        self,
    ) -> tuple[list[tuple[tuple[str, str, str], list[Sample]]], list[tuple[Watchable, str]]]:
        """The families read now, each with its samples (the oldest break ages, which accounts are
        stale, the book-call histograms, the build info), and the watched runtimes (with the lock held)."""
        now = self._now()
        ages = [
            sample
            for account in sorted(self._with_breaks)
            for sample in self._accounts[account].oldest_age(now)
        ]
        moment = now.timestamp()
        stale = [
            sample
            for account in sorted(self._runtime_of)
            for sample in self._accounts[account].stale(moment, self._stale_grace)
        ]
        calls = [
            sample
            for (runtime, call), histogram in sorted(self._call_seconds.items())
            for sample in histogram.samples(_CALL_SECONDS[0], {"runtime": runtime, "call": call})
        ]
        read_now = [(_OLDEST_AGE, ages), (_STALE, stale), (_CALL_SECONDS, calls), (_BUILD_INFO, _build_info())]
        return read_now, [(target, label) for target, (label, _) in self._watched.items()]

    @staticmethod
    def _health(watched: list[tuple[Watchable, str]]) -> list[Metric]:
        families = _Families()
        for target, label in watched:
            try:
                health = target.health()
            except Exception:
                logger.exception("The health of %s could not be read for its metrics", label)
                continue
            families.add_health(label, health)
        return families.all()


@functools.cache
def _build_info() -> list[Sample]:
    try:
        version = importlib.metadata.version("reconciliation")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return [Sample("reconciliation_build_info", {"version": version}, 1.0)]


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
    registry: CollectorRegistry = REGISTRY,
    *,
    port: int,
    host: str = "127.0.0.1",
    healthz: Callable[[], tuple[bool, dict[str, Any]]] | None = None,
) -> MetricsServer:
    """Serve `registry` at http://host:port/metrics (port 0: any free port, see `MetricsServer.port`).

    Args:
        healthz: if given, also serve /healthz: 200 when it answers (True, details), 503
            when (False, details); the details as a JSON object.

    Raises:
        OSError: it cannot listen there (the port is in use, the host is not this machine's).
    """
    server = make_server(host, port, _metrics_app(registry, healthz), _Server6 if ":" in host else _Server, _Quiet)
    thread = threading.Thread(target=server.serve_forever, name="reconciliation-metrics", daemon=True)
    thread.start()
    logger.info("Serving Prometheus metrics on http://%s:%d/metrics", host, server.server_address[1])
    return MetricsServer(server, thread)


def scrape(registry: CollectorRegistry) -> bytes:
    """What /metrics answers: `registry` in Prometheus' text format, the reconciliation metrics
    on it written from their accounts' text (`ReconciliationMetrics.exposition`)."""
    _exposing.found = []
    try:
        others = generate_latest(registry)
        found: list[ReconciliationMetrics] = _exposing.found
    finally:
        del _exposing.found
    return others + "".join(metrics.exposition() for metrics in found).encode()


def _metrics_app(
    registry: CollectorRegistry, healthz: Callable[[], tuple[bool, dict[str, Any]]] | None = None
) -> Callable[..., list[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., object]) -> list[bytes]:
        if environ.get("REQUEST_METHOD") not in {"GET", "HEAD"}:
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        if healthz is not None and environ.get("PATH_INFO") == "/healthz":
            ok, details = healthz()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [json.dumps(details).encode()]
        body = scrape(registry)
        headers = [("Content-Type", CONTENT_TYPE_LATEST)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [body]

    return app


class _Server(ThreadingWSGIServer):
    """A thread per scrape, daemon threads (prometheus_client's own server class)."""


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Log no request."""
