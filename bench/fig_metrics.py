"""`/metrics` of a runtime of many accounts, scraped over HTTP while the accounts run.

One `ReconciliationRuntime` of N paper accounts (`fig_accounts.paper_account`), its
periodic interval planned as `fig_accounts` plans its load (the runs take a third of it),
watched by `ReconciliationMetrics` and served by `serve_metrics` as `reconciliation run
--metrics-port` serves it, the process's own collectors beside it. Once every account has
had its startup run, `/metrics` is scraped over HTTP while the periodic runs go on,
interleaved with the floor: the same server holding only the process collectors. The
target is issue 25's: under a second at 500 accounts (Prometheus' default scrape timeout
is 10 s).

    python bench/fig_metrics.py 500 200 9   # accounts, positions, scrapes
"""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.request
from typing import TYPE_CHECKING

from _harness import Row, Sample, interleave
from fig_accounts import _drained, _plan, _run_cost, paper_account
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from reconciliation import ReconciliationRuntime
from reconciliation.metrics import ReconciliationMetrics, serve_metrics

if TYPE_CHECKING:
    import redis

__all__ = ["metrics_row"]

TARGET_SECONDS = 1.0
SETTLE_SECONDS = 120.0
"""The longest the startup runs may take before the scrapes begin."""


def _process_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    return registry


def _scrape(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        body: bytes = answer.read()
    return body


def metrics_row(accounts: int, positions: int, repeats: int, client: redis.Redis) -> Row:
    """The scrape of `accounts` accounts' metrics under periodic load, against the process collectors alone."""
    interval = _plan(accounts, _run_cost(positions, client), 0.0)
    runtime = ReconciliationRuntime(
        [paper_account(f"BENCH-METRICS-{i:04d}", positions, interval) for i in range(accounts)], client
    )
    registry, floor = _process_registry(), _process_registry()
    ReconciliationMetrics(registry).watch(runtime)
    ours, bare = serve_metrics(registry, port=0), serve_metrics(floor, port=0)

    async def session() -> tuple[dict[str, list[float]], bytes]:
        await runtime.start()
        try:
            await _drained(runtime, accounts, deadline=time.monotonic() + SETTLE_SECONDS)
            return await asyncio.to_thread(
                lambda: (
                    interleave(
                        {"ours": lambda: _scrape(ours.port), "floor": lambda: _scrape(bare.port)},
                        repeats,
                        collect=False,
                    ),
                    _scrape(ours.port),
                )
            )
        finally:
            await runtime.stop()

    try:
        times, body = asyncio.run(session())
    finally:
        ours.close()
        bare.close()
    scrape, process = Sample(times["ours"], "ms"), Sample(times["floor"], "ms")
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    worst = max(scrape.values) / 1000
    return Row(
        figure=f"`/metrics` scrape over HTTP, {accounts:,} accounts running periodic runs",
        measured=f"{scrape.text()}; {series:,} series, {len(body) / 2**20:.1f} MiB",
        baseline=f"the process collectors alone: {process.text()}",
        ratio=f"{scrape.median / process.median:.1f}x",
        target=f"every scrape < {TARGET_SECONDS:g} s",
        met=worst < TARGET_SECONDS,
        notes=[f"slowest of {len(scrape.values)} scrapes: {worst * 1000:.0f} ms; periodic interval {interval:.1f} s"],
    )


if __name__ == "__main__":
    from _harness import render_table
    from _redis import bench_redis
    from _service import quiet_logging

    quiet_logging()
    size, book, scrapes = (int(argument) for argument in (sys.argv[1:] or ["500", "200", "9"]))
    with bench_redis(None) as (bench_client, _):
        row = metrics_row(size, book, scrapes, bench_client)
    print(render_table([row]))
    for note in row.notes:
        print(f"- {note}")
