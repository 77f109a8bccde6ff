"""Fills told by an execution actor: into the service while it debounces, or into a bare
actor; and a fill's way to its post-fill run in Redis, against one actor hop + XADD."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pykka
from _harness import Row, Sample, percentile
from _service import start_service, stop_service
from books import ACCOUNT

from reconciliation._domain.models import BrokerPosition, OrderFill, Position
from reconciliation._publishing.redis_sink import RESULT_STREAM
from reconciliation._runtime.messages import Barrier

if TYPE_CHECKING:
    import redis

__all__ = ["fill_path_row", "fills_rows"]

BASELINE_STREAM = "bench:fill-path:baseline"

_SYNC = object()


class ExecutionActor(pykka.ThreadingActor):
    """The engine's execution actor: tells each fill, timing every tell."""

    def on_receive(self, message: Any) -> Any:
        target, fills = message
        latencies = [0] * len(fills)
        clock = time.perf_counter_ns
        tell = target.tell
        start = clock()
        for index, fill in enumerate(fills):
            before = clock()
            tell(fill)
            latencies[index] = clock() - before
        return clock() - start, latencies


class BareActor(pykka.ThreadingActor):
    """A pykka actor that receives and does nothing: the baseline."""

    def on_receive(self, message: Any) -> Any:  # noqa: ARG002 - the baseline does nothing
        return None


def _fills(n: int) -> list[OrderFill]:
    now = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
    return [
        OrderFill(f"O{i}", f"F{i}", ACCOUNT, f"SYM{i % 500:05d}", Decimal(i % 7 + 1), Decimal("10.5"), now)
        for i in range(n)
    ]


def _burst(
    execution: pykka.ActorRef[Any], target: pykka.ActorRef[Any], fills: list[OrderFill], drain: Any
) -> tuple[float, float, list[int]]:
    """Told rate (fills/s), drained rate (fills/s), tell latencies (ns)."""
    start = time.perf_counter()
    told_ns, latencies = execution.ask((target, fills), timeout=120)
    drain()
    drained = time.perf_counter() - start
    return len(fills) / (told_ns / 1e9), len(fills) / drained, latencies


def fills_rows(n: int, repeats: int, client: redis.Redis) -> list[Row]:
    fills = _fills(n)
    service = start_service(
        [], [], client, enabled=True, post_fill_delay_seconds=3600, post_fill_max_wait_seconds=3600
    )
    execution = ExecutionActor.start()
    bare = BareActor.start()
    try:

        def drain_service() -> None:
            service.ref.ask(Barrier(), timeout=120)

        runs: dict[str, list[tuple[float, float, list[int]]]] = {"service": [], "bare": []}
        for round_ in range(repeats + 1):
            service_run = _burst(execution, service.ref, fills, drain_service)
            bare_run = _burst(execution, bare, fills, lambda: bare.ask(_SYNC, timeout=120))
            if round_:
                runs["service"].append(service_run)
                runs["bare"].append(bare_run)
    finally:
        execution.stop()
        bare.stop()
        stop_service(service)

    def told(name: str) -> Sample:
        return Sample([r[0] / 1000 for r in runs[name]], "k fills/s")

    def drained(name: str) -> Sample:
        return Sample([r[1] / 1000 for r in runs[name]], "k fills/s")

    def p99(name: str) -> Sample:
        return Sample([percentile(r[2], 99) / 1000 for r in runs[name]], "µs")

    told_ratio = told("service").median / told("bare").median
    drained_ratio = drained("service").median / drained("bare").median
    service_p99 = p99("service")
    return [
        Row(
            figure=f"{n:,} fills told by an execution actor while debouncing: rate at the sender",
            measured=f"{told('service').text()}; p99 tell {service_p99.text()}",
            baseline=f"bare actor {told('bare').text()}; p99 tell {p99('bare').text()}",
            ratio=f"{told_ratio:.2f}x rate",
            target="≥ 0.8x and ≥ 200k fills/s; p99 tell ≤ 50 µs",
            met=told_ratio >= 0.8 and told("service").median >= 200 and service_p99.median <= 50,
        ),
        Row(
            figure=f"the same {n:,} fills, until the debouncer has handled the last",
            measured=drained("service").text(),
            baseline=f"bare actor {drained('bare').text()}",
            ratio=f"{drained_ratio:.2f}x rate",
            target="≥ 0.8x and ≥ 200k fills/s",
            met=drained_ratio >= 0.8 and drained("service").median >= 200,
        ),
    ]


class XaddActor(pykka.ThreadingActor):
    """The baseline of the fill path: one actor hop, then one XADD of a run-sized payload."""

    def __init__(self, client: redis.Redis, stream: str) -> None:
        super().__init__()
        self._client = client
        self._stream = stream

    def on_receive(self, message: Any) -> Any:
        self._client.xadd(self._stream, {"payload": message}, maxlen=1000, approximate=True)


def _published_after(client: redis.Redis, stream: str, tell: Any) -> float:
    """ms from `tell()` until a new entry is in `stream`, seen by a blocked XREAD."""
    last = client.xrevrange(stream, count=1)
    after = last[0][0] if last else "0-0"
    start = time.perf_counter()
    tell()
    if not client.xread({stream: after}, count=1, block=30_000):
        msg = f"nothing reached {stream} within 30 s"
        raise RuntimeError(msg)
    return (time.perf_counter() - start) * 1000


def fill_path_row(repeats: int, client: redis.Redis) -> Row:
    """A fill told to the service -> its post-fill run in the result stream, against one
    actor hop + XADD of a payload the size of that run's."""
    local = [Position(f"SYM{i:03d}", Decimal(10), Decimal("10.5")) for i in range(10)]
    broker = [BrokerPosition(p.symbol, p.quantity, p.avg_cost, p.quantity * Decimal("10.5")) for p in local]
    service = start_service(
        local, broker, client, enabled=True, post_fill_delay_seconds=0, post_fill_max_wait_seconds=1
    )
    reader = redis_from(client)
    baseline = XaddActor.start(reader, BASELINE_STREAM)
    now = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
    payload = "x" * _run_size(reader)
    times: dict[str, list[float]] = {"service": [], "bare": []}
    try:
        for index in range(repeats + 3):
            fill = OrderFill(f"O-path-{index}", f"F-path-{index}", ACCOUNT, "SYM000", Decimal(1), Decimal(1), now)
            service_ms = _published_after(reader, RESULT_STREAM, lambda fill=fill: service.ref.tell(fill))
            bare_ms = _published_after(reader, BASELINE_STREAM, lambda: baseline.tell(payload))
            if index >= 3:
                times["service"].append(service_ms)
                times["bare"].append(bare_ms)
    finally:
        baseline.stop()
        stop_service(service)
        reader.delete(BASELINE_STREAM)
    service_sample, bare = Sample(times["service"], "ms"), Sample(times["bare"], "ms")
    ratio = service_sample.median / bare.median
    return Row(
        figure="a fill -> its post-fill run in the result stream (delay 0, 10 positions)",
        measured=f"{service_sample.text()}; p99 {percentile(times['service'], 99):.2f} ms",
        baseline=f"one actor hop + XADD {bare.text()}",
        ratio=f"{ratio:.2f}x",
        target="≤ 3x at the median",
        met=ratio <= 3.0,
    )


def _run_size(client: redis.Redis) -> int:
    """Bytes of the last run in the result stream (the service's startup run, once it is there)."""
    for _ in range(300):
        last = client.xrevrange(RESULT_STREAM, count=1)
        if last:
            return sum(len(key) + len(value) for key, value in last[0][1].items())
        time.sleep(0.01)
    msg = "the startup run never reached the result stream"
    raise RuntimeError(msg)


def redis_from(client: redis.Redis) -> redis.Redis:
    """A client of its own to the same server (a blocked XREAD must not hold the service's)."""
    return type(client)(connection_pool=type(client.connection_pool)(**client.connection_pool.connection_kwargs))
