"""GC stalls: how late a 1 ms ticker thread wakes while a large comparison runs.

The books are built the way a real system builds them (`books.make_books`). The
comparator actor's path (collector paused, GIL released on a budget) is measured against
the same path with the collector left on, so the figure isolates what pausing the
collector buys. Full (generation 2) collections
during each run are counted through `gc.callbacks`.
"""

from __future__ import annotations

import gc
import uuid

from _harness import Row, Sample, percentile
from _ticker import Ticker
from books import ACCOUNT, NOW, make_books, make_snapshot

from reconciliation import ReconciliationConfig, ReconciliationResult
from reconciliation._domain.ageing import BreakTracker
from reconciliation._domain.compare import compare
from reconciliation._runtime.comparator_actor import GilBudget, paused_gc
from reconciliation._wire.payloads import iter_payloads

__all__ = ["gc_row"]


def gc_row(n: int, runs: int) -> Row:
    local, broker = make_books(n, 1.0)
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
