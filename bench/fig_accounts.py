"""Many accounts, one runtime: threads, memory per account, idle CPU and periodic-run latency.

Each size N gets a fresh `ReconciliationRuntime` over N paper accounts (an
`InMemoryPortfolio` and a `PaperBroker` each, booked from the same `positions` fills,
so every run is clean and reads, copies and compares every position). The books are
built before anything is measured.

The periodic interval is the same for every account of a size: long enough that the
startup sweep ends before the first periodic run is due (leaving a window to measure idle CPU), and
that each account runs `RUNS_PER_WINDOW` times in `seconds` where that allows. The
measurement lasts `seconds`, or until every account has had a periodic run. The
accounts are started together, so their periodic runs come due together, as their
startup runs ended: a wave of N runs sharing the CPU, then a pause.

- threads: `threading.active_count()` minus the count before start, right after
  start and at its highest while the periodic runs go on;
- memory: resident set size (`/proc/self/statm`, after `gc.collect()` and
  `malloc_trim`) after start and each account's startup run, minus the same with the
  books built and no runtime, divided by N;
- idle CPU: process CPU time (every thread) over a window after the startup runs have
  been delivered to every sink and before the first periodic run is due, against the
  same process for as long with no runtime;
- latency: for each periodic run, from when it was due (its account's previous run
  ended, plus the interval) to its result reaching the runtime's observers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import datetime as dt
import gc
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from _harness import Row, percentile, render_table

from reconciliation import Account, OrderFill, ReconciliationConfig, ReconciliationRuntime
from reconciliation.paper import InMemoryPortfolio, PaperBroker

if TYPE_CHECKING:
    import redis

    from reconciliation._runtime.messages import FinishedRun
    from reconciliation._runtime.observers import BookCallTiming

__all__ = ["accounts_rows"]

RUNS_PER_WINDOW = 3
"""Periodic runs per account in `seconds`, where the load allows it."""

THREAD_TARGET = 40
MEMORY_TARGET_MIB = 0.5
MIB = 1024 * 1024
CASH = Decimal(1_000_000_000)
BOOKED_AT = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
SAMPLE_SECONDS = 0.05
WARM_UP_RUNS = 5


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


class PeriodicLateness:
    """A `RuntimeObserver`: how long after it was due each periodic run gave its result."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._last_end: dict[str, float] = {}
        self.lateness_ms: list[float] = []
        self.duration_ms: list[float] = []
        self.failed: collections.Counter[str] = collections.Counter()
        self.stopping = False
        self._periodic: set[str] = set()
        """Set before `stop()`: runs it ends are not counted."""

    def run_finished(self, run: FinishedRun) -> None:
        ended = time.monotonic()
        result = run.result
        if self.stopping:
            return
        with self._lock:
            last = self._last_end.get(result.account_id)
            self._last_end[result.account_id] = ended
            if result.error is not None:
                self.failed[f"{result.trigger}: {result.error[:120]}"] += 1
            elif result.trigger == "periodic" and last is not None:
                self.lateness_ms.append((ended - last - self._interval) * 1000)
                self._periodic.add(result.account_id)
                self.duration_ms.append(result.duration_ms)

    @property
    def accounts_run(self) -> int:
        """Accounts with at least one periodic run."""
        return len(self._periodic)

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
    window_seconds: float
    lateness_ms: list[float] = field(default_factory=list)
    duration_ms: list[float] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=dict)

    @property
    def per_account_mib(self) -> float:
        return self.runtime_mib / self.accounts

    @property
    def p99_ms(self) -> float:
        return percentile(self.lateness_ms, 99)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:  # noqa: PTH123 - a proc file, read once
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim() -> None:
    """Hand freed heap back to the system (glibc), so RSS follows what is still held."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(name).malloc_trim(0)


def _settled_rss() -> int:
    gc.collect()
    _trim()
    return _rss_bytes()


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


def _plan(accounts: int, positions: int, run_cost: float, seconds: float, idle: float) -> float:
    """The periodic interval for `accounts` accounts (see the module docstring); the last
    term is time for `gc.collect()` over the books before the idle window."""
    return max(
        seconds / RUNS_PER_WINDOW, 1.5 * accounts * run_cost + idle + 0.25 + accounts * positions * 1e-6
    )


def _delivered(runtime: ReconciliationRuntime) -> int:
    return min(sink.delivered_runs + sink.set_aside_runs for sink in runtime.health().delivery.values())


async def _drained(runtime: ReconciliationRuntime, runs: int, deadline: float) -> None:
    """Until every sink has delivered `runs` runs (or `deadline`, a `time.monotonic()`, has passed)."""
    while _delivered(runtime) < runs and time.monotonic() < deadline:  # noqa: ASYNC110 - polling the runtime's health
        await asyncio.sleep(0.01)


def _measure(n: int, positions: int, seconds: float, run_cost: float, client: redis.Redis) -> Measurement:
    idle = min(max(seconds / 5, 0.4), 2.0)
    interval = _plan(n, positions, run_cost, seconds, idle)
    empty = _settled_rss()
    accounts = [paper_account(f"BENCH-ACC-{n}-{i:04d}", positions, interval) for i in range(n)]
    with_books = _settled_rss()
    baseline_cpu = _cpu_pct(idle)
    threads_before = threading.active_count()
    lateness = PeriodicLateness(interval)
    runtime = ReconciliationRuntime(accounts, client)
    runtime.add_observer(lateness)

    async def session() -> Measurement:
        began = time.monotonic()
        await runtime.start()
        startup = time.monotonic() - began
        threads_started = threading.active_count() - threads_before
        await _drained(runtime, n, deadline=began + interval / 2)
        runtime_bytes = _settled_rss() - with_books
        window = min(idle, began + interval - time.monotonic() - 0.1)
        idle_cpu = await _cpu_pct_async(window) if window > 0.05 else float("nan")
        least, most = began + seconds, began + startup + interval + 3 * startup + 2.0
        threads_max, names = threads_started, collections.Counter[str]()
        while time.monotonic() < least or (lateness.accounts_run < n and time.monotonic() < most):
            await asyncio.sleep(SAMPLE_SECONDS)
            now = threading.active_count() - threads_before
            if now >= threads_max:
                threads_max = now
                names = collections.Counter(thread.name for thread in threading.enumerate())
        lateness.stopping = True
        report = await runtime.stop()
        if not report.clean:
            print(f"{n} accounts: still running after stop: {report.still_running}", file=sys.stderr)
        return Measurement(
            accounts=n,
            interval=interval,
            books_mib=(with_books - empty) / MIB / n,
            runtime_mib=runtime_bytes / MIB,
            threads_started=threads_started,
            threads_max=threads_max,
            thread_names=dict(names),
            idle_seconds=max(window, 0.0),
            idle_cpu_pct=idle_cpu,
            baseline_cpu_pct=baseline_cpu,
            startup_seconds=startup,
            window_seconds=time.monotonic() - began,
            lateness_ms=lateness.lateness_ms,
            duration_ms=lateness.duration_ms,
            failed=dict(lateness.failed),
        )

    return asyncio.run(session())


def _own_threads(names: dict[str, int]) -> str:
    own = {name: count for name, count in names.items() if name != "MainThread"}
    return ", ".join(f"{name} x{count}" if count > 1 else name for name, count in sorted(own.items()))


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
    lateness_p50 = percentile(m.lateness_ms, 50)
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
            f"{m.per_account_mib:.3f} MiB/account (RSS +{m.runtime_mib:.1f} MiB after start and each "
            f"account's startup run; marginal {marginal:.3f} MiB/account; books {m.books_mib:.2f} MiB/account)"
        ),
        baseline=baseline(f"{base.per_account_mib:.2f} MiB"),
        ratio=ratio(m.per_account_mib, base.per_account_mib),
        target=f"≤ {MEMORY_TARGET_MIB} MiB/account",
        met=m.per_account_mib <= MEMORY_TARGET_MIB,
    )
    cpu = Row(
        figure=f"idle CPU between periodic runs, {size}",
        measured=f"{m.idle_cpu_pct:.2f} % of one core over {m.idle_seconds:.1f} s",
        baseline=f"no runtime, same process: {m.baseline_cpu_pct:.2f} %",
        ratio=f"+{m.idle_cpu_pct - m.baseline_cpu_pct:.2f} points",
        target="—",
        met=None,
    )
    latency = Row(
        figure=f"periodic runs, due to result, p99, {size}",
        measured=(
            f"{m.p99_ms:.1f} ms (median {lateness_p50:.1f} ms, n={len(m.lateness_ms)} runs, "
            f"each {statistics.median(m.duration_ms) if m.duration_ms else float('nan'):.1f} ms median; "
            f"interval {m.interval:.1f} s, startup {m.startup_seconds:.1f} s)"
        ),
        baseline=baseline(f"p99 {base.p99_ms:.1f} ms"),
        ratio=ratio(m.p99_ms, base.p99_ms),
        target="—",
        met=None,
        notes=[f"{count} failed runs ({reason})" for reason, count in m.failed.items()],
    )
    return [threads, memory, cpu, latency]


def accounts_rows(sizes: tuple[int, ...], positions: int, seconds: float, client: redis.Redis) -> list[Row]:
    """Rows for each size in `sizes` (the smallest is the others' baseline)."""
    run_cost = _run_cost(positions, client)
    measurements = [_measure(n, positions, seconds, run_cost, client) for n in sorted(sizes)]
    base = measurements[0]
    return [row for m in measurements for row in _rows(m, base, positions)]


if __name__ == "__main__":
    from _redis import bench_redis
    from _service import quiet_logging

    quiet_logging()
    modes = {"--smoke": ((1, 5), 100, 2.0), "--quick": ((1, 50, 500), 1000, 5.0)}
    chosen = modes.get(sys.argv[1] if len(sys.argv) > 1 else "", ((1, 50, 500), 1000, 20.0))
    started = time.perf_counter()
    with bench_redis(None) as (bench_client, server):
        rows = accounts_rows(*chosen, bench_client)
    print(f"{server}, {time.perf_counter() - started:.1f} s")
    print(render_table(rows))
    for row in rows:
        for note in row.notes:
            print(f"- {row.figure}: {note}")
