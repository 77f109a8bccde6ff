"""Publishing one run's discrepancies: the package's publisher vs a raw redis-py pipeline."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

import attrs
from _harness import Row, Sample, interleave
from books import ACCOUNT, NOW

from reconciliation._domain.ageing import AgeingUpdate
from reconciliation._domain.models import (
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    ReconciliationResult,
)
from reconciliation._publishing.connection import publishing_client
from reconciliation._publishing.payloads import iter_payloads
from reconciliation._publishing.redis_sink import (
    DISCREPANCY_STREAM,
    MAX_PAYLOADS_PER_ROUND_TRIP,
    RESULT_STREAM,
    STREAM_FIELD,
    RedisSink,
)
from reconciliation._runtime.delivery import BoundedQueue, Queued
from reconciliation._runtime.messages import FinishedRun

if TYPE_CHECKING:
    import redis

__all__ = ["publish_row"]

_STREAM_OF = {"reconciliation:result": RESULT_STREAM, "reconciliation:discrepancy": DISCREPANCY_STREAM}


def _result(n: int) -> ReconciliationResult:
    discrepancies = [
        Discrepancy(
            DiscrepancyType.QUANTITY_MISMATCH,
            DiscrepancySeverity.CRITICAL,
            f"SYM{i:08d}",
            Decimal(i % 997 + 1),
            Decimal(i % 997 + 2),
            NOW,
            ACCOUNT,
        )
        for i in range(n)
    ]
    return ReconciliationResult(uuid.uuid4(), ACCOUNT, NOW, discrepancies, positions_checked=n)


def publish_row(n: int, repeats: int, client: redis.Redis, stream_maxlen: int = 10_000) -> Row:
    result = _result(n)
    payloads = iter_payloads(result)
    sink = RedisSink(lambda: publishing_client(client), stream_maxlen=stream_maxlen)
    queue: BoundedQueue[object] = BoundedQueue(10)
    failures: list[str] = []

    def package() -> None:
        """What the Redis delivery actor does with one run: encode it, queue it, send it."""
        run = attrs.evolve(result, run_id=uuid.uuid4())
        item = sink.prepare(FinishedRun(run, AgeingUpdate(run.run_id, run.account_id)))
        queue.append(Queued(str(run.run_id), run.account_id, item, sink.weight(item)))
        while queue:
            batch = queue.head(MAX_PAYLOADS_PER_ROUND_TRIP)
            sent = sink.send([entry.item for entry in batch])  # type: ignore[misc]
            if sent.refused or not sent.delivered:
                failures.append(str(sent))
                return
            queue.pop(sent.delivered)

    def raw() -> None:
        pipeline = client.pipeline(transaction=False)
        for channel, payload in payloads:
            pipeline.publish(channel, payload)
            pipeline.xadd(
                _STREAM_OF[channel], {STREAM_FIELD: payload}, maxlen=stream_maxlen, approximate=True
            )
        pipeline.execute()

    times = interleave({"package": package, "raw": raw}, repeats)
    if failures:
        msg = f"publishing failed: {failures[0]}"
        raise RuntimeError(msg)
    count = len(payloads)
    ours = Sample([count / t for t in times["package"]], "k payloads/s")
    theirs = Sample([count / t for t in times["raw"]], "k payloads/s")
    ratio = ours.median / theirs.median
    return Row(
        figure=f"publish {n:,} discrepancies + 1 result (channels + streams), encoding included",
        measured=f"{ours.text()}; {Sample(times['package'], 'ms').text()}",
        baseline=f"raw pipeline of the same bytes {theirs.text()}; {Sample(times['raw'], 'ms').text()}",
        ratio=f"{ratio:.2f}x throughput",
        target="≥ 0.7x",
        met=ratio >= 0.7,
    )
