"""A bad day's run: the broker answers [] for a whole book, every position a break.

What the comparator actor does after comparing — ageing the breaks, escalating, and
building every payload — measured against the comparison of the same run, each under
the collector regime the actor uses (paused for a large run).
"""

from __future__ import annotations

import uuid

from _harness import Row, Sample, interleave
from books import ACCOUNT, NOW, make_books, make_snapshot

from reconciliation import ReconciliationConfig, ReconciliationResult
from reconciliation._domain.ageing import BreakTracker
from reconciliation._domain.compare import Comparison, compare
from reconciliation._publishing.payloads import iter_payloads
from reconciliation._runtime.comparator_actor import LARGE_RUN, GilBudget, paused_gc

__all__ = ["breaks_rows"]


def breaks_rows(sizes: tuple[int, ...], repeats: int) -> list[Row]:
    rows = []
    config = ReconciliationConfig(ACCOUNT)
    for n in sizes:
        local, _ = make_books(n)
        snapshot = make_snapshot(local, [])
        large = n > LARGE_RUN
        compared: list[Comparison] = []

        def comparison(snapshot: object = snapshot, large: bool = large, compared: list[Comparison] = compared) -> None:
            with paused_gc(large):
                compared[:] = [compare(snapshot, config, pause=GilBudget() if large else None)]  # type: ignore[arg-type]

        def finishing(large: bool = large, compared: list[Comparison] = compared) -> None:
            found = compared[0]
            result = ReconciliationResult(uuid.uuid4(), ACCOUNT, NOW, found.discrepancies, found.positions_checked)
            with paused_gc(large):
                ageing = BreakTracker(config.ageing).observe(result)
                iter_payloads(ageing.escalate(result), ageing)

        comparison()
        times = interleave({"compare": comparison, "finish": finishing}, repeats)
        finish, alone = Sample(times["finish"], "ms"), Sample(times["compare"], "ms")
        ratio = finish.median / alone.median
        rows.append(
            Row(
                figure=f"ageing, escalation and payloads of a run with {n:,} breaks (the broker answered [])",
                measured=finish.text(),
                baseline=f"comparing the same run {alone.text()}",
                ratio=f"{ratio:.2f}x",
                target="≤ 2x",
                met=ratio <= 2.0,
            )
        )
    return rows
