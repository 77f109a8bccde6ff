"""GC stalls: how late a 1 ms ticker thread wakes while a large comparison runs.

The books are built the way a real system builds them: each side's objects allocated
separately, the broker's shuffled. The comparator actor's path (collector paused, GIL
released on a budget) is measured against the same path with the collector left on,
so the figure isolates what pausing the collector buys. Full (generation 2) collections
during each run are counted through `gc.callbacks`.
"""

from __future__ import annotations

import gc
import random
import threading
import time
import uuid

from _harness import Row, Sample, percentile
from books import ACCOUNT, NOW, make_books, make_snapshot

from reconciliation import ReconciliationConfig, ReconciliationResult
from reconciliation._domain.ageing import BreakTracker
from reconciliation._domain.compare import compare
from reconciliation._publishing.payloads import iter_payloads
from reconciliation._runtime.comparator_actor import GilBudget, paused_gc

__all__ = ["gc_row"]

TICK_SECONDS = 0.001


class Ticker:
    """A thread that sleeps 1 ms at a time and records how late each wake-up is (ms)."""

    def __init__(self) -> None:
        self.late: list[float] = []
        self._running = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="bench-ticker", daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        while not self._stop.is_set():
            before = time.perf_counter()
            time.sleep(TICK_SECONDS)
            if self._running.is_set():
                self.late.append((time.perf_counter() - before - TICK_SECONDS) * 1000)

    def measure(self, work: object) -> list[float]:
        self.late = []
        self._running.set()
        work()  # type: ignore[operator]
        self._running.clear()
        return self.late

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def gc_row(n: int, runs: int) -> Row:
    local, broker = make_books(n, 1.0)
    broker = [type(p)(str(p.symbol), p.quantity, p.avg_cost, p.market_value) for p in broker]
    random.Random(7).shuffle(broker)
    snapshot = make_snapshot(local, broker)
    config = ReconciliationConfig(ACCOUNT)
    full_collections = [0]

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            full_collections[0] += 1

    def run(pause: bool) -> None:
        with paused_gc(pause):
            found = compare(snapshot, config, pause=GilBudget())
            result = ReconciliationResult(uuid.uuid4(), ACCOUNT, NOW, found.discrepancies, found.positions_checked)
            ageing = BreakTracker().observe(result)
            iter_payloads(ageing.escalate(result), ageing)

    ticker = Ticker()
    gc.callbacks.append(count)
    stats: dict[str, list[tuple[float, float, int]]] = {"paused": [], "on": []}
    try:
        for _ in range(runs):
            for name, pause in (("paused", True), ("on", False)):
                full_collections[0] = 0
                late = ticker.measure(lambda pause=pause: run(pause))
                stats[name].append((percentile(late, 99), max(late, default=0.0), full_collections[0]))
    finally:
        gc.callbacks.remove(count)
        ticker.close()
    p99 = {name: Sample([s[0] for s in runs_] , "ms") for name, runs_ in stats.items()}
    worst = {name: Sample([s[1] for s in runs_], "ms") for name, runs_ in stats.items()}
    fulls = {name: sum(s[2] for s in runs_) for name, runs_ in stats.items()}
    return Row(
        figure=f"1 ms ticker during a {n:,}-position run with 1 % breaks (books built apart, broker shuffled)",
        measured=f"p99 {p99['paused'].text()}, max {worst['paused'].text()}; {fulls['paused']} full collections",
        baseline=f"collector left on: p99 {p99['on'].text()}, max {worst['on'].text()}; {fulls['on']} full collections",
        ratio=f"{worst['paused'].median / max(worst['on'].median, 1e-9):.2f}x max",
        target="no full collection during the run; p99 ≤ 5 ms, max ≤ 10 ms",
        met=fulls["paused"] == 0 and p99["paused"].median <= 5 and worst["paused"].median <= 10,
    )
