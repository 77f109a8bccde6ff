"""Many accounts, one runtime: threads, memory per account, idle CPU and periodic-run latency.

Each size N gets a fresh `ReconciliationRuntime` over N paper accounts (an
`InMemoryPortfolio` and a `PaperBroker` each, booked from the same `positions` fills,
so every run is clean and reads, copies and compares every position). The books are
built before anything is measured.

Each size is measured in two sessions, so that one does not disturb the other:

- at rest (interval one hour, so no periodic run comes due while it lasts): threads,
  `threading.active_count()` minus the count before start; memory, what the Python heap holds
  (tracemalloc, after `gc.collect()`) after start and each
  account's startup run, minus the same with the books built and no runtime, divided
  by N; idle CPU, process CPU time (every thread) over a window after the startup runs
  have been delivered to every sink, against the same process for as long with no
  runtime (20 s in a full run: two lease renewals, which renew every account's lease);
- under periodic load (an interval long enough for N runs, and for `RUNS_PER_WINDOW`
  runs per account in `seconds` where that allows), until every account has had a
  periodic run started one interval after the startup runs: the highest thread count,
  and each periodic run's latency from its start to its result reaching the runtime's
  observers (`duration_ms`), in that steady state and, apart, in the first interval. The runtime
  spreads the accounts' first periodic runs over the interval, so the load is a steady
  stream of runs, not a wave of N at once.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import gc
import itertools
import statistics
import sys
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from _harness import Row, percentile, render_table

from reconciliation import Account, OrderFill, ReconciliationConfig, ReconciliationRuntime
from reconciliation._runtime.lease_actor import RENEWALS_PER_LEASE
from reconciliation._runtime.runtime import DEFAULT_LEASE_SECONDS
from reconciliation.paper import InMemoryPortfolio, PaperBroker

if TYPE_CHECKING:
    import redis

    from reconciliation._domain.sinks import FinishedRun
    from reconciliation._runtime.observers import BookCallTiming

__all__ = ["accounts_rows"]

RUNS_PER_WINDOW = 3
"""Periodic runs per account in `seconds`, where the load allows it."""

LOAD = 1 / 3
"""The share of the interval the accounts' runs take, as one run alone costs: a steady
load with room to spare (runs sharing the CPU cost more each), not a saturated one."""

THREAD_TARGET = 40
MEMORY_TARGET_MIB = 0.5
MIB = 1024 * 1024
CASH = Decimal(1_000_000_000)
BOOKED_AT = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
SAMPLE_SECONDS = 0.05
REST_INTERVAL = 3600.0
"""The at-rest session's interval: the first periodic run of the last of 500 accounts
is due 7.2 s after start, after the idle window."""
WARM_UP_RUNS = 5
FULL_RUN_SECONDS = 10.0
"""From this `seconds` on, the idle window spans whole lease renewals (`_idle_seconds`)."""


def paper_account(account_id: str, positions: int, interval: float) -> Account:
    """Both books of one account, booked from the same fills: they reconcile clean."""
    portfolio = InMemoryPortfolio(account_id, CASH)
    broker = PaperBroker(account_id, CASH)
    for i in range(positions):
        fill = OrderFill(
            f"O{i}",
            f"F{i}",
            account_id,
            f"SYM{i:06d}",
            Decimal(i % 997 + 1),
            Decimal(i % 9973 + 100).scaleb(-2),
            BOOKED_AT,
        )
        portfolio.apply_fill(fill)
        broker.apply_fill(fill)
    return Account(ReconciliationConfig(account_id, interval_seconds=interval), portfolio, broker)


class FullCollections:
    """A `gc.callbacks` entry: how many full (generation 2) collections ran, and how long."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.seconds.append(time.perf_counter() - self._began)

    def text(self) -> str:
        if not self.seconds:
            return "no full collection"
        return f"{len(self.seconds)} full collections, longest {max(self.seconds) * 1000:.0f} ms"


class PeriodicRuns:
    """A `RuntimeObserver`: how long each periodic run took, from its start to its result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.steady_since: dt.datetime | None = None
        """One interval after every startup run has ended: the runs started before are
        the first of their accounts, still among the startup runs' after-effects."""
        self.settling_ms: list[float] = []
        self.steady: set[str] = set()
        self.duration_ms: list[float] = []
        self.failed: collections.Counter[str] = collections.Counter()
        self.accounts: set[str] = set()
        self.stopping = False
        """Set before `stop()`: runs it ends are not counted."""

    def run_finished(self, run: FinishedRun) -> None:
        result = run.result
        if self.stopping:
            return
        with self._lock:
            if result.error is not None:
                self.failed[f"{result.trigger}: {result.error[:120]}"] += 1
            elif result.trigger == "periodic":
                self.accounts.add(result.account_id)
                if self.steady_since is None or result.timestamp < self.steady_since:
                    self.settling_ms.append(result.duration_ms)
                else:
                    self.steady.add(result.account_id)
                    self.duration_ms.append(result.duration_ms)

    def book_call_ended(self, timing: BookCallTiming) -> None:
        pass


@dataclass
class Measurement:
    accounts: int
    interval: float
    books_mib: float
    runtime_mib: float
    threads_started: int
    threads_max: int
    thread_names: dict[str, int]
    idle_seconds: float
    idle_cpu_pct: float
    baseline_cpu_pct: float
    startup_seconds: float
    duration_ms: list[float] = field(default_factory=list)
    settling_ms: list[float] = field(default_factory=list)
    busy_cpu_pct: float = float("nan")
    full_collections: str = ""
    failed: dict[str, int] = field(default_factory=dict)

    @property
    def per_account_mib(self) -> float:
        return self.runtime_mib / self.accounts

    @property
    def p99_ms(self) -> float:
        return percentile(self.duration_ms, 99)


def _cpu_pct(seconds: float) -> float:
    """Process CPU (every thread) over `seconds` of wall time, in % of one core."""
    cpu, wall = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    return (time.process_time() - cpu) / (time.perf_counter() - wall) * 100


async def _cpu_pct_async(seconds: float) -> float:
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    return (time.process_time() - cpu) / (time.perf_counter() - wall) * 100


def _run_cost(positions: int, client: redis.Redis) -> float:
    """Seconds one run of a `positions`-position paper account takes (also warms imports up)."""
    account = paper_account("BENCH-ACC-WARM", positions, 3600)

    async def measure() -> float:
        runtime = ReconciliationRuntime([account], client)
        await runtime.start()
        try:
            results = [await runtime.reconcile(account.account_id) for _ in range(WARM_UP_RUNS)]
        finally:
            await runtime.stop()
        return statistics.median(result.duration_ms for result in results) / 1000

    return asyncio.run(measure())


def _plan(accounts: int, run_cost: float, seconds: float) -> float:
    """The periodic interval for `accounts` accounts: `LOAD` of it taken by their runs
    (one run alone takes `run_cost` s), and `RUNS_PER_WINDOW` runs per account in
    `seconds` where that allows."""
    return max(seconds / RUNS_PER_WINDOW, accounts * run_cost / LOAD)


def _delivered(runtime: ReconciliationRuntime) -> int:
    return min(sink.delivered_runs + sink.set_aside_runs for sink in runtime.health().delivery.values())


async def _drained(runtime: ReconciliationRuntime, runs: int, deadline: float) -> None:
    """Until every sink has delivered `runs` runs (or `deadline`, a `time.monotonic()`, has passed)."""
    while _delivered(runtime) < runs and time.monotonic() < deadline:  # noqa: ASYNC110 - polling the runtime's health
        await asyncio.sleep(0.01)


@dataclass
class AtRest:
    books_mib: float
    runtime_mib: float
    threads_started: int
    idle_seconds: float
    idle_cpu_pct: float
    baseline_cpu_pct: float
    startup_seconds: float


def _at_rest(n: int, positions: int, idle: float, client: redis.Redis) -> AtRest:
    gc.collect()
    tracemalloc.start()
    accounts = [paper_account(f"BENCH-REST-{n}-{i:04d}", positions, REST_INTERVAL) for i in range(n)]
    gc.collect()
    with_books = tracemalloc.get_traced_memory()[0]
    baseline_cpu = _cpu_pct(idle)
    threads_before = threading.active_count()
    runtime = ReconciliationRuntime(accounts, client)

    async def session() -> AtRest:
        began = time.monotonic()
        await runtime.start()
        startup = time.monotonic() - began
        threads_started = threading.active_count() - threads_before
        await _drained(runtime, n, deadline=time.monotonic() + 60)
        gc.collect()
        runtime_bytes = tracemalloc.get_traced_memory()[0] - with_books
        tracemalloc.stop()
        idle_cpu = await _cpu_pct_async(idle)
        await runtime.stop()
        return AtRest(
            books_mib=with_books / MIB / n,
            runtime_mib=runtime_bytes / MIB,
            threads_started=threads_started,
            idle_seconds=idle,
            idle_cpu_pct=idle_cpu,
            baseline_cpu_pct=baseline_cpu,
            startup_seconds=startup,
        )

    return asyncio.run(session())


def _idle_seconds(seconds: float) -> float:
    """The idle window: two lease renewals (each renews every account's lease, about 80 ms of
    CPU for 2,000 accounts) in a full run, so that the window holds its share of them; a
    window shorter than a renewal either misses it (too low) or holds one (too high)."""
    if seconds >= FULL_RUN_SECONDS:
        return 2 * DEFAULT_LEASE_SECONDS / RENEWALS_PER_LEASE
    return min(max(seconds / 5, 0.4), 2.0)


def _measure(n: int, positions: int, seconds: float, run_cost: float, client: redis.Redis) -> Measurement:
    rest = _at_rest(n, positions, _idle_seconds(seconds), client)
    interval = _plan(n, run_cost, seconds)
    accounts = [paper_account(f"BENCH-LOAD-{n}-{i:04d}", positions, interval) for i in range(n)]
    threads_before = threading.active_count()
    periodic = PeriodicRuns()
    runtime = ReconciliationRuntime(accounts, client)
    runtime.add_observer(periodic)
    collections_ = FullCollections()

    async def session() -> Measurement:
        began = time.monotonic()
        gc.callbacks.append(collections_)
        await runtime.start()
        periodic.steady_since = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=interval)
        cpu, wall = time.process_time(), time.perf_counter()
        least, most = began + seconds, time.monotonic() + 2 * interval + 2.0
        threads_max, names = 0, collections.Counter[str]()
        while time.monotonic() < least or (len(periodic.steady) < n and time.monotonic() < most):
            await asyncio.sleep(SAMPLE_SECONDS)
            now = threading.active_count() - threads_before
            if now >= threads_max:
                threads_max = now
                names = collections.Counter(thread.name for thread in threading.enumerate())
        periodic.stopping = True
        busy_pct = (time.process_time() - cpu) / (time.perf_counter() - wall) * 100
        report = await runtime.stop()
        gc.callbacks.remove(collections_)
        if not report.clean:
            print(f"{n} accounts: still running after stop: {report.still_running}", file=sys.stderr)
        return Measurement(
            accounts=n,
            interval=interval,
            books_mib=rest.books_mib,
            runtime_mib=rest.runtime_mib,
            threads_started=rest.threads_started,
            threads_max=max(threads_max, rest.threads_started),
            thread_names=dict(names),
            idle_seconds=rest.idle_seconds,
            idle_cpu_pct=rest.idle_cpu_pct,
            baseline_cpu_pct=rest.baseline_cpu_pct,
            startup_seconds=rest.startup_seconds,
            duration_ms=periodic.duration_ms,
            settling_ms=periodic.settling_ms,
            busy_cpu_pct=busy_pct,
            failed=dict(periodic.failed),
            full_collections=collections_.text(),
        )

    return asyncio.run(session())


def _own_threads(names: dict[str, int]) -> str:
    own = {name: count for name, count in names.items() if name != "MainThread"}
    return ", ".join(f"{name} x{count}" if count > 1 else name for name, count in sorted(own.items()))


def _settling(durations_ms: list[float]) -> str:
    """The runs of the first interval, apart."""
    if not durations_ms:
        return ""
    return f"; the {len(durations_ms)} runs before: p99 {percentile(durations_ms, 99):.1f} ms"


P99_TARGET_MS = 200.0
MAX_TARGET_MS = 500.0
IDLE_TARGET_PCT = 0.3
LINEAR_SLACK = 1.1
"""Startup is linear when N accounts take at most this times N / M the startup of M (2,000 after 500: 4.4x)."""


def _startup_row(m: Measurement, before: Measurement, positions: int) -> Row:
    """Startup against the next smaller size's: linear in the accounts."""
    allowed = LINEAR_SLACK * m.accounts / before.accounts
    ratio = m.startup_seconds / before.startup_seconds if before.startup_seconds else float("nan")
    return Row(
        figure=f"startup of {m.accounts:,} accounts of {positions:,} positions (`await runtime.start()`)",
        measured=f"{m.startup_seconds:.2f} s",
        baseline=f"{before.accounts:,} account{'s' if before.accounts > 1 else ''}: {before.startup_seconds:.2f} s",
        ratio=f"{ratio:.2f}x for {m.accounts / before.accounts:.0f}x the accounts",
        target=f"≤ {allowed:.1f}x (linear, {LINEAR_SLACK:g}x slack)",
        met=ratio <= allowed,
    )


def _rows(m: Measurement, base: Measurement, positions: int) -> list[Row]:
    size = f"{m.accounts:,} account{'s' if m.accounts > 1 else ''} of {positions:,} positions"
    alone = m is base

    def baseline(text: str) -> str:
        return "—" if alone else f"{base.accounts:,} account{'s' if base.accounts > 1 else ''}: {text}"

    def ratio(a: float, b: float) -> str:
        return "—" if alone else f"{a / b:.2f}x" if b else "n/a"

    marginal = (
        (m.runtime_mib - base.runtime_mib) / (m.accounts - base.accounts) if not alone else m.runtime_mib
    )
    p50 = percentile(m.duration_ms, 50)
    threads = Row(
        figure=f"runtime threads, {size}",
        measured=f"{m.threads_max} at most while runs were periodic ({m.threads_started} after start)",
        baseline=baseline(str(base.threads_max)),
        ratio=ratio(m.threads_max, base.threads_max),
        target=f"≤ {THREAD_TARGET} (at 500 accounts)",
        met=m.threads_max <= THREAD_TARGET,
        notes=[f"threads at the highest count: {_own_threads(m.thread_names)}"],
    )
    memory = Row(
        figure=f"memory per account beyond its books, {size}",
        measured=(
            f"{m.per_account_mib:.3f} MiB/account (Python heap +{m.runtime_mib:.1f} MiB after start and each "
            f"account's startup run; marginal {marginal:.3f} MiB/account; books {m.books_mib:.2f} MiB/account)"
        ),
        baseline=baseline(f"{base.per_account_mib:.2f} MiB"),
        ratio=ratio(m.per_account_mib, base.per_account_mib),
        target=f"≤ {MEMORY_TARGET_MIB} MiB/account",
        met=m.per_account_mib <= MEMORY_TARGET_MIB,
    )
    cpu = Row(
        figure=f"idle CPU at rest (no run due), {size}",
        measured=f"{m.idle_cpu_pct:.2f} % of one core over {m.idle_seconds:.1f} s",
        baseline=f"no runtime, same process: {m.baseline_cpu_pct:.2f} %",
        ratio=f"+{m.idle_cpu_pct - m.baseline_cpu_pct:.2f} points",
        target=f"≤ +{IDLE_TARGET_PCT} points",
        met=m.idle_cpu_pct - m.baseline_cpu_pct <= IDLE_TARGET_PCT,
    )
    latency = Row(
        figure=f"periodic runs, start to result, p99, {size}",
        measured=(
            f"{m.p99_ms:.1f} ms, max {max(m.duration_ms, default=float('nan')):.1f} ms "
            f"(median {p50:.1f} ms, n={len(m.duration_ms)} runs started from one interval "
            f"after the startup runs{_settling(m.settling_ms)}; "
            f"interval {m.interval:.1f} s; {m.full_collections} from start to stop; process CPU meanwhile {m.busy_cpu_pct:.0f} % of one core; "
            f"startup of all accounts {m.startup_seconds:.1f} s)"
        ),
        baseline=baseline(f"p99 {base.p99_ms:.1f} ms"),
        ratio=ratio(m.p99_ms, base.p99_ms),
        target=f"p99 ≤ {P99_TARGET_MS:.0f} ms, max ≤ {MAX_TARGET_MS:.0f} ms",
        met=bool(m.duration_ms) and m.p99_ms <= P99_TARGET_MS and max(m.duration_ms) <= MAX_TARGET_MS,
        notes=[f"{count} failed runs ({reason})" for reason, count in m.failed.items()],
    )
    return [threads, memory, cpu, latency]


def accounts_rows(sizes: tuple[int, ...], positions: int, seconds: float, client: redis.Redis) -> list[Row]:
    """Rows for each size in `sizes` (the smallest is the others' baseline)."""
    run_cost = _run_cost(positions, client)
    measurements = [_measure(n, positions, seconds, run_cost, client) for n in sorted(sizes)]
    base = measurements[0]
    rows = [row for m in measurements for row in _rows(m, base, positions)]
    rows += [_startup_row(m, before, positions) for before, m in itertools.pairwise(measurements)]
    return rows


if __name__ == "__main__":
    from _redis import bench_redis
    from _service import quiet_logging

    quiet_logging()
    modes = {"--smoke": ((1, 5), 100, 2.0), "--quick": ((1, 50, 500), 200, 5.0)}
    chosen = modes.get(sys.argv[1] if len(sys.argv) > 1 else "", ((1, 50, 500), 1000, 20.0))
    started = time.perf_counter()
    with bench_redis(None) as (bench_client, server):
        rows = accounts_rows(*chosen, bench_client)
    print(f"{server}, {time.perf_counter() - started:.1f} s")
    print(render_table(rows))
    for row in rows:
        for note in row.notes:
            print(f"- {row.figure}: {note}")
