"""Fills told by an execution actor: into the service while it debounces, or into a bare actor."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pykka
from _harness import Row, Sample, percentile
from _service import start_service, stop_service
from books import ACCOUNT

from reconciliation._domain.models import OrderFill
from reconciliation._runtime.messages import Barrier

if TYPE_CHECKING:
    import redis

__all__ = ["fills_rows"]

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
