"""Isolation of the accounts of one runtime: its healthy accounts' periodic runs, with the
offenders among them and, as the baseline, in the same runtime without them.

- Slow brokers: `slow` accounts whose broker answers each call in 80 % of the limit
  (compliant, but each keeps a worker busy): the healthy accounts' failed runs (target 0:
  time queued for a worker is not a call's) and their periodic p99.
- Large books: two accounts of `large` agreeing positions each: the other accounts'
  periodic p99 (target within 2x of the runtime without the two).

Each session starts a fresh `ReconciliationRuntime`, lets the startup runs end, then
records every periodic run of the healthy accounts for `seconds`. The sessions with and
without the offenders alternate, `repeats` times each; a p99 is the median of the
sessions' p99s (the machine is shared: one session's p99 is one neighbour's burst).
"""

from __future__ import annotations

import asyncio
import collections
import os
import statistics
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from _harness import Row, percentile

from reconciliation import Account, ReconciliationConfig, ReconciliationRuntime
from reconciliation._domain.models import BrokerAccount, BrokerPosition, LocalAccount, Position
from reconciliation.testing import ScriptedBroker

if TYPE_CHECKING:
    import redis

    from reconciliation._domain.sinks import FinishedRun
    from reconciliation._runtime.observers import BookCallTiming

__all__ = ["ISOLATION", "Isolation", "isolation_rows"]

CASH = Decimal(1_000_000)
SMALL_BOOK = 10
SLOW_LIMIT_SECONDS = 1.0
SLOW_SHARE = 0.8
"""A slow broker answers each call in this share of the limit: slow, but within it."""


@dataclass(frozen=True)
class Isolation:
    slow_accounts: int
    slow: int
    slow_seconds: float
    large_accounts: int
    large: int
    large_interval: float
    large_seconds: float
    repeats: int


ISOLATION = {
    "smoke": Isolation(20, 4, 3.0, 20, 30_000, 2.0, 4.0, 1),
    "quick": Isolation(100, 20, 8.0, 100, 100_000, 5.0, 10.0, 3),
    "full": Isolation(200, 20, 20.0, 500, 1_000_000, 5.0, 30.0, 3),
}


class FixedBook:
    def __init__(self, positions: list[Position]) -> None:
        self.positions = positions

    def get_positions(self, account_id: str) -> list[Position]:  # noqa: ARG002 - one account
        return self.positions

    def get_account(self, account_id: str) -> LocalAccount:
        return LocalAccount(account_id, CASH, CASH)


class SlowBroker(ScriptedBroker):
    """Answers every call after `delay` seconds, as a slow venue's REST API does."""

    def __init__(self, account_id: str, positions: list[BrokerPosition], delay: float) -> None:
        super().__init__(account_id, positions, cash=CASH, total_equity=CASH)
        self.delay = delay

    def get_positions(self, account_id: str) -> list[BrokerPosition]:
        time.sleep(self.delay)
        return super().get_positions(account_id)

    def get_account(self, account_id: str) -> BrokerAccount:
        time.sleep(self.delay)
        return super().get_account(account_id)


class HealthyRuns:
    """A `RuntimeObserver`: the healthy accounts' periodic runs, and every failed run of theirs."""

    def __init__(self, healthy: set[str]) -> None:
        self._lock = threading.Lock()
        self.healthy = healthy
        self.recording = False
        self.duration_ms: list[float] = []
        self.failed: collections.Counter[str] = collections.Counter()

    def run_finished(self, run: FinishedRun) -> None:
        result = run.result
        if not self.recording or result.account_id not in self.healthy:
            return
        with self._lock:
            if result.error is not None:
                self.failed[result.error[:100]] += 1
            elif result.trigger == "periodic":
                self.duration_ms.append(result.duration_ms)

    def book_call_ended(self, timing: BookCallTiming) -> None:
        pass

    @property
    def runs(self) -> int:
        return len(self.duration_ms) + sum(self.failed.values())


def _books(n: int) -> tuple[list[Position], list[BrokerPosition]]:
    local = [Position(f"SYM{i:07d}", Decimal(i % 97 + 1), Decimal("10.5")) for i in range(n)]
    broker = [BrokerPosition(p.symbol, p.quantity, p.avg_cost, p.quantity * Decimal("10.5")) for p in local]
    return local, broker


def _account(account_id: str, books: tuple[list[Position], list[BrokerPosition]], broker: ScriptedBroker | None = None, **config: float) -> Account:
    local, positions = books
    return Account(
        ReconciliationConfig(account_id, **config),  # type: ignore[arg-type]
        FixedBook(local),
        broker or ScriptedBroker(account_id, positions, cash=CASH, total_equity=CASH),
    )


def _session(accounts: list[Account], healthy: set[str], seconds: float, client: redis.Redis) -> HealthyRuns:
    runtime = ReconciliationRuntime(accounts, client)
    runs = HealthyRuns(healthy)
    runtime.add_observer(runs)
    asyncio.run(runtime.start())
    runs.recording = True
    time.sleep(seconds)
    runs.recording = False
    asyncio.run(runtime.stop())
    return runs


def _p99(runs: HealthyRuns) -> float:
    return percentile(runs.duration_ms, 99) if runs.duration_ms else float("nan")


def _sessions(
    alone: list[Account], offenders: list[Account], seconds: float, repeats: int, client: redis.Redis
) -> tuple[list[HealthyRuns], list[HealthyRuns]]:
    """The healthy accounts' runs without and with the offenders, alternating."""
    ids = {a.account_id for a in alone}
    without, among = [], []
    for _ in range(repeats):
        without.append(_session(alone, ids, seconds, client))
        among.append(_session(alone + offenders, ids, seconds, client))
    return without, among


def _summary(sessions: list[HealthyRuns]) -> tuple[float, int, int, collections.Counter[str]]:
    """The median p99 (ms), the runs, the failed runs and why."""
    failed: collections.Counter[str] = collections.Counter()
    for runs in sessions:
        failed.update(runs.failed)
    return (
        statistics.median(_p99(runs) for runs in sessions),
        sum(runs.runs for runs in sessions),
        sum(failed.values()),
        failed,
    )


def slow_brokers_row(size: Isolation, client: redis.Redis) -> Row:
    small = _books(SMALL_BOOK)
    config = {"interval_seconds": SLOW_LIMIT_SECONDS, "broker_timeout_seconds": SLOW_LIMIT_SECONDS}
    healthy = [_account(f"OK-{i:04d}", small, **config) for i in range(size.slow_accounts - size.slow)]
    delay = SLOW_SHARE * SLOW_LIMIT_SECONDS
    slow = [_account(f"SLOW-{i:03d}", small, SlowBroker(f"SLOW-{i:03d}", small[1], delay), **config) for i in range(size.slow)]
    without, among = _sessions(healthy, slow, size.slow_seconds, size.repeats, client)
    p99, runs, failed, why = _summary(among)
    base_p99, base_runs, base_failed, _ = _summary(without)
    reasons = "; ".join(f"{count}x {error}" for error, count in why.most_common(2))
    return Row(
        figure=(
            f"{size.slow} brokers answering in {SLOW_SHARE:.0%} of their {SLOW_LIMIT_SECONDS:g} s limit among "
            f"{size.slow_accounts} accounts (interval {SLOW_LIMIT_SECONDS:g} s): the healthy accounts' runs"
        ),
        measured=f"{failed} of {runs} failed{f' ({reasons})' if reasons else ''}; periodic p99 {p99:.1f} ms",
        baseline=f"without the slow brokers: {base_failed} of {base_runs} failed; p99 {base_p99:.1f} ms",
        ratio=f"{p99 / base_p99:.2f}x p99",
        target="0 failed healthy runs",
        met=failed == 0 and runs > 0,
    )


def large_books_row(size: Isolation, client: redis.Redis) -> Row:
    small = _books(SMALL_BOOK)
    large = _books(size.large)
    config = {"interval_seconds": size.large_interval}
    others = [_account(f"ACC-{i:04d}", small, **config) for i in range(size.large_accounts - 2)]
    giants = [_account(f"LARGE-{i}", large, **config) for i in range(2)]
    without, among = _sessions(others, giants, size.large_seconds, size.repeats, client)
    p99, runs, failed, _ = _summary(among)
    base_p99, base_runs, _, _ = _summary(without)
    p50 = statistics.median(percentile(r.duration_ms, 50) for r in among)
    base_p50 = statistics.median(percentile(r.duration_ms, 50) for r in without)
    ratio = p99 / base_p99
    return Row(
        figure=(
            f"two accounts of {size.large:,} agreeing positions among {size.large_accounts} "
            f"(interval {size.large_interval:g} s): the others' periodic runs"
        ),
        measured=f"p99 {p99:.1f} ms, p50 {p50:.1f} ms ({runs} runs, {size.repeats} sessions); {failed} failed",
        baseline=f"without the two: p99 {base_p99:.1f} ms, p50 {base_p50:.1f} ms ({base_runs} runs)",
        ratio=f"{ratio:.2f}x p99",
        target="≤ 2x",
        met=ratio <= 2.0,
    )


def isolation_rows(size: Isolation, client: redis.Redis) -> list[Row]:
    return [slow_brokers_row(size, client), large_books_row(size, client)]


def main() -> None:
    """`python bench/fig_isolation.py [--smoke | --quick]`: these two figures alone (full size by default)."""
    import sys  # noqa: PLC0415 - only the script needs it

    from _harness import render_table  # noqa: PLC0415
    from _redis import bench_redis  # noqa: PLC0415
    from _service import quiet_logging  # noqa: PLC0415

    mode = "smoke" if "--smoke" in sys.argv else "quick" if "--quick" in sys.argv else "full"
    quiet_logging()
    started = time.perf_counter()
    with bench_redis(None) as (client, _):
        rows = isolation_rows(ISOLATION[mode], client)
    print(render_table(rows))
    print(f"{mode} mode, {time.perf_counter() - started:.0f} s; load average {os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main()
