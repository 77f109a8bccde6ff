"""Publishing one run's discrepancies: the package's publisher vs the same script sent by redis-py.

The baseline is the least any publisher with the same guarantees could do: redis-py
`EVALSHA` of the very script the sink uses, with the payloads already encoded and the
keys and arguments (each channel's payloads batched) already built, in the same parts,
one pipeline. Only each call's markers are new (a run already published is skipped by
the script).
"""

from __future__ import annotations

import itertools
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
from reconciliation._domain.sinks import FinishedRun
from reconciliation._publishing.connection import publishing_client
from reconciliation._publishing.redis_sink import (
    BATCH_SEPARATOR,
    MAX_PAYLOADS_PER_ROUND_TRIP,
    MAX_PAYLOADS_PER_SCRIPT,
    PUBLISH_SCRIPT,
    PUBLISHED_TTL_SECONDS,
    SCRIPT_SHA,
    STANDALONE_KEYS,
    PendingRun,
    RedisSink,
)
from reconciliation._runtime.delivery import BoundedQueue, Queued
from reconciliation._wire.payloads import iter_payloads

if TYPE_CHECKING:
    from collections.abc import Sequence

    import redis

__all__ = ["publish_row"]


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


def _batched(part: Sequence[tuple[str, str]]) -> list[str | bytes]:
    """The script's channel, batch pairs, as the sink builds them (outside the timing here)."""
    args: list[str | bytes] = []
    for channel, pairs in itertools.groupby(part, key=lambda pair: pair[0]):
        args += [channel, BATCH_SEPARATOR.join(text.encode() for _, text in pairs)]
    return args


def publish_row(n: int, repeats: int, client: redis.Redis, stream_maxlen: int = 10_000) -> Row:
    result = _result(n)
    payloads = iter_payloads(result)
    sink = RedisSink(lambda: publishing_client(client), stream_maxlen=stream_maxlen)
    queue: BoundedQueue[object] = BoundedQueue(10)
    failures: list[str] = []

    def prepare() -> PendingRun:
        run = attrs.evolve(result, run_id=uuid.uuid4())
        return sink.prepare(FinishedRun(run, AgeingUpdate(run.run_id, run.account_id)))

    prepared: list[PendingRun] = []

    def package(item: PendingRun | None = None) -> None:
        """What the Redis delivery actor does with one run: encode it, queue it, send it."""
        item = item or prepare()
        queue.append(Queued(item.run_id, ACCOUNT, item, sink.weight(item)))
        while queue:
            batch = queue.head(MAX_PAYLOADS_PER_ROUND_TRIP)
            sent = sink.send([entry.item for entry in batch])  # type: ignore[misc]
            if sent.refused or not sent.delivered:
                failures.append(str(sent))
                return
            queue.pop(sent.delivered)

    parts = [payloads[start : start + MAX_PAYLOADS_PER_SCRIPT] for start in range(0, len(payloads), MAX_PAYLOADS_PER_SCRIPT)]
    channels = [list(dict.fromkeys(channel for channel, _ in part)) for part in parts]
    streams = [[STANDALONE_KEYS.stream_of(channel) for channel in each] for each in channels]
    args = [
        [PUBLISHED_TTL_SECONDS, stream_maxlen, "", "", *each, *_batched(part)]
        for each, part in zip(channels, parts, strict=True)
    ]
    client.script_load(PUBLISH_SCRIPT)

    def same_script() -> None:
        run_id = str(uuid.uuid4())
        markers = [STANDALONE_KEYS.part_marker(run_id, part) for part in range(len(parts) - 1)]
        markers.append(STANDALONE_KEYS.marker(run_id))
        pipeline = client.pipeline(transaction=False)
        previous = markers[0]
        for marker, keys, values in zip(markers, streams, args, strict=True):
            pipeline.evalsha(SCRIPT_SHA, len(keys) + 2, marker, previous, *keys, *values)
            previous = marker
        if pipeline.execute() != [1] * len(parts):
            failures.append("the same-script baseline was not published")

    def send_alone() -> None:
        package(prepared.pop())

    prepared.extend(prepare() for _ in range(repeats + 1))
    times = interleave({"package": package, "send": send_alone, "script": same_script}, repeats)
    if failures:
        msg = f"publishing failed: {failures[0]}"
        raise RuntimeError(msg)
    count = len(payloads)
    ours = Sample([count / t for t in times["package"]], "k payloads/s")
    theirs = Sample([count / t for t in times["script"]], "k payloads/s")
    ratio = ours.median / theirs.median
    return Row(
        figure=f"publish {n:,} discrepancies + 1 result (channels + streams), encoding included",
        measured=(
            f"{ours.text()}; {Sample(times['package'], 'ms').text()}; "
            f"of which sending (the run encoded beforehand) {Sample(times['send'], 'ms').text()}"
        ),
        baseline=(
            f"redis-py EVALSHA of the same script, payloads encoded beforehand, same {len(parts)} parts: "
            f"{theirs.text()}; {Sample(times['script'], 'ms').text()}"
        ),
        ratio=f"{ratio:.2f}x throughput",
        target="≥ 0.7x",
        met=ratio >= 0.7,
    )
