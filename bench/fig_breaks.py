"""A bad day's run: the broker answers [] for a whole book, every position a break.

What the comparator actor does after comparing — ageing the breaks, escalating, and
building every payload — measured against the comparison of the same run, each under
the collector regime the actor uses (paused for a large run). Then whole runs through the
service, from the ask until the run's last payload is in Redis, with 0, 1 and 100 %
breaks side by side, and the longest single command they sent to Redis.
"""

from __future__ import annotations

import gc
import time
import uuid
from typing import TYPE_CHECKING

from _harness import Row, Sample, interleave
from _landed import Landings
from _redis import Longest, SlowLog
from _service import start_service, stop_service
from books import ACCOUNT, NOW, make_books, make_snapshot

from reconciliation import ReconcileRequest, ReconciliationConfig, ReconciliationResult
from reconciliation._domain.ageing import BreakTracker
from reconciliation._domain.compare import Comparison, compare
from reconciliation._runtime.comparator_actor import LARGE_RUN, GilBudget, paused_gc
from reconciliation._wire.payloads import iter_payloads

if TYPE_CHECKING:
    import redis

    from reconciliation._domain.models import BrokerPosition, Position

__all__ = ["breaks_rows", "end_to_end_rows"]


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


BREAK_LEVELS = {"clean": 0.0, "1 % breaks": 1.0, "100 % breaks (the broker answered [])": 100.0}


def _books(n: int, pct: float) -> tuple[list[Position], list[BrokerPosition]]:
    if pct == 100.0:
        return make_books(n)[0], []
    return make_books(n, pct)


def end_to_end_rows(sizes: tuple[int, ...], repeats: int, client: redis.Redis, *, private: bool) -> list[Row]:
    """Ask → the run's last payload in Redis, clean, with 1 % and with 100 % breaks, one
    service each, interleaved; and on a private server, the longest single command the
    services sent meanwhile (from its slow log)."""
    rows: list[Row] = []
    landings = Landings(client, notify=private)
    slow = SlowLog(client) if private else None
    try:
        for n in sizes:
            rows += _end_to_end(n, repeats, client, landings, slow)
    finally:
        landings.close()
        if slow is not None:
            slow.close()
    return rows


def _end_to_end(n: int, repeats: int, client: redis.Redis, landings: Landings, slow: SlowLog | None) -> list[Row]:
    services = {}
    try:
        for name, pct in BREAK_LEVELS.items():
            services[name] = start_service(*_books(n, pct), client, account_id=f"{ACCOUNT}-{name}")
        found: dict[str, int] = {}

        def run(name: str) -> tuple[float, float]:
            """Milliseconds from the ask to the last payload in Redis, and to the answer."""
            start = time.perf_counter()
            result = services[name].ref.ask(ReconcileRequest(f"{ACCOUNT}-{name}", requested_by="bench"), timeout=600)
            answered = time.perf_counter()
            if result.error is not None:
                msg = f"the {name} run failed: {result.error}"
                raise RuntimeError(msg)
            found[name] = len(result.discrepancies)
            return (landings.wait(str(result.run_id)) - start) * 1000, (answered - start) * 1000

        for name in services:
            run(name)
        if slow is not None:
            slow.reset()
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in services}
        for _ in range(repeats):
            for name in services:
                gc.collect()
                times[name].append(run(name))
        longest = slow.longest() if slow is not None else None
    finally:
        for service in services.values():
            stop_service(service)
    return _end_to_end_table(n, times, found, longest)


def _end_to_end_table(
    n: int, times: dict[str, list[tuple[float, float]]], found: dict[str, int], longest: Longest | None
) -> list[Row]:
    def sample(name: str, which: int) -> Sample:
        return Sample([t[which] for t in times[name]], "ms")

    clean = sample("clean", 0)
    rows = []
    for name in list(BREAK_LEVELS)[1:]:
        total = sample(name, 0)
        ratio = total.median / clean.median
        worst = name.startswith("100")
        rows.append(
            Row(
                figure=f"end to end, ask → last payload in Redis, {n:,} positions, {name}",
                measured=f"{total.text()}, of which ask → result {sample(name, 1).text()}; {found[name]:,} discrepancies",
                baseline=f"clean {clean.text()}, of which ask → result {sample('clean', 1).text()}",
                ratio=f"{ratio:.2f}x",
                target="≤ 3x clean" if worst else "—",
                met=ratio <= 3.0 if worst else None,
            )
        )
    if longest is not None:
        rows.append(
            Row(
                figure=f"longest single Redis command of the {n:,}-position runs above (slow log)",
                measured=(
                    f"{longest.duration / 1000:.2f} ms ({longest.command}; {longest.logged:,} commands took "
                    f"≥ {SlowLog.THRESHOLD_US} µs; script calls: median {longest.script_median / 1000:.2f} ms, "
                    f"p99 {longest.script_p99 / 1000:.2f} ms)"
                ),
                baseline="—",
                ratio="—",
                target="≤ 5 ms",
                met=longest.duration <= 5000,
            )
        )
    return rows
