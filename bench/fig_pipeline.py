"""On-demand reconcile through the whole pipeline vs the comparator alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from _harness import Row, Sample, interleave
from _service import start_service, stop_service
from books import ACCOUNT, make_books, make_snapshot

from reconciliation import ReconcileRequest, ReconciliationConfig
from reconciliation._domain.compare import compare
from reconciliation._publishing.redis_sink import RESULT_STREAM

if TYPE_CHECKING:
    import redis

__all__ = ["pipeline_row"]


def pipeline_row(n: int, repeats: int, client: redis.Redis) -> Row:
    local, broker = make_books(n)
    snapshot = make_snapshot(local, broker)
    config = ReconciliationConfig(account_id=ACCOUNT)
    before = client.xlen(RESULT_STREAM)
    service = start_service(local, broker, client)
    results = []
    try:

        def ask() -> None:
            results.append(service.ref.ask(ReconcileRequest(ACCOUNT, requested_by="bench"), timeout=60))

        times = interleave(
            {"pipeline": ask, "comparator": lambda: compare(snapshot, config)}, repeats, warmup=3
        )
    finally:
        stop_service(service)
    if not all(r.error is None and r.is_clean for r in results):
        msg = f"a run was not clean: {results[-1]}"
        raise RuntimeError(msg)
    published = client.xlen(RESULT_STREAM) - before
    if published != len(results):
        msg = f"{published} of {len(results)} runs reached Redis"
        raise RuntimeError(msg)
    pipeline, alone = Sample(times["pipeline"], "ms"), Sample(times["comparator"], "ms")
    overhead = pipeline.median - alone.median
    return Row(
        figure=f"on-demand reconcile of {n:,} positions, ask → result, published to Redis",
        measured=f"{pipeline.text()}; overhead {overhead:.2f} ms at the median",
        baseline=f"comparator alone {alone.text()}",
        ratio=f"{pipeline.median / alone.median:.2f}x",
        target="overhead ≤ 2 ms at the median",
        met=overhead <= 2.0,
    )
