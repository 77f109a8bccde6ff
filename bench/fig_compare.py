"""Comparator figures on real-shaped books (`books.make_books`): time against the best floor
written (`baselines.floor_join_netting`), peak memory, scaling."""

from __future__ import annotations

import gc
import math
import sys
import tracemalloc
from typing import TYPE_CHECKING

from _harness import Row, Sample, interleave
from baselines import floor_join_netting
from books import ACCOUNT, NOW, make_books

from reconciliation._domain.compare import compare_positions
from reconciliation._domain.models import ReconciliationConfig
from reconciliation._runtime.comparator_actor import GilBudget

if TYPE_CHECKING:
    from collections.abc import Sequence

    from reconciliation._domain.models import BrokerPosition, Position

__all__ = ["deep_size", "fit_exponent", "memory_row", "scaling", "time_rows"]

CONFIG = ReconciliationConfig(account_id=ACCOUNT)


def _package(local: Sequence[Position], broker: Sequence[BrokerPosition]) -> object:
    return compare_positions(local, broker, account_id=ACCOUNT, timestamp=NOW, config=CONFIG)


def _pausing(local: Sequence[Position], broker: Sequence[BrokerPosition]) -> object:
    """As the comparator actor runs it: releasing the GIL between chunks."""
    return compare_positions(
        local, broker, account_id=ACCOUNT, timestamp=NOW, config=CONFIG, pause=GilBudget()
    )


def time_rows(
    n: int, books: dict[float, tuple[list[Position], list[BrokerPosition]]], repeats: int
) -> list[Row]:
    """The package as a function and as the actor runs it (pausing), against the floor that
    gives the same answer on the same books: keyed by symbol and asset type, repeats netted."""
    rows = []
    for pct, (local, broker) in books.items():
        times = interleave(
            {
                "package": lambda local=local, broker=broker: _package(local, broker),
                "pausing": lambda local=local, broker=broker: _pausing(local, broker),
                "floor": lambda local=local, broker=broker: floor_join_netting(local, broker),
            },
            repeats,
        )
        package, pausing, floor = (Sample(times[k], "ms") for k in ("package", "pausing", "floor"))
        found = len(floor_join_netting(local, broker))
        label = "clean" if not pct else f"{pct:g} % breaks ({found:,} found)"
        floor_ratio = package.median / floor.median
        pausing_ratio = pausing.median / floor.median
        rows.append(
            Row(
                figure=f"compare {n:,} positions, {label}; mixed shapes, 10 % short, 0.1 % hedged in two legs",
                measured=f"package {package.text()}; as the actor runs it, pausing: {pausing.text()}",
                baseline=f"floor (dict join, repeats netted) {floor.text()}",
                ratio=f"{floor_ratio:.2f}x floor; pausing {pausing_ratio:.2f}x floor",
                target="≤ 1.2x floor; pausing ≤ 1.3x",
                met=floor_ratio <= 1.2 and pausing_ratio <= 1.3,
            )
        )
    return rows


def deep_size(local: Sequence[Position], broker: Sequence[BrokerPosition]) -> int:
    """Bytes held by both lists: the lists, the positions and each field's own object."""
    seen: set[int] = set()
    total = sys.getsizeof(local) + sys.getsizeof(broker)
    for side in (local, broker):
        for position in side:
            for obj in (
                position,
                position.symbol,
                position.quantity,
                position.avg_cost,
                getattr(position, "market_value", None),
            ):
                if obj is not None and id(obj) not in seen:
                    seen.add(id(obj))
                    total += sys.getsizeof(obj)
    return total


def memory_row(n: int, local: list[Position], broker: list[BrokerPosition]) -> Row:
    inputs = deep_size(local, broker)
    gc.collect()
    tracemalloc.start()
    result = _package(local, broker)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    ratio = peak / inputs
    mib = 1024 * 1024
    return Row(
        figure=f"peak memory of the {n:,}-position comparison (1 % breaks)",
        measured=f"{peak / mib:.0f} MiB allocated at peak (tracemalloc)",
        baseline=f"{inputs / mib:.0f} MiB: both input lists with their positions",
        ratio=f"{ratio:.2f}x (inputs + comparison: {1 + ratio:.2f}x)",
        target="≤ 2x",
        met=1 + ratio <= 2.0,
    )


def fit_exponent(points: Sequence[tuple[int, float]]) -> float:
    """The slope of log(time) against log(n), by least squares."""
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(t) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def scaling(
    sizes: Sequence[int], repeats: int, reuse: dict[int, tuple[list[Position], list[BrokerPosition]]]
) -> tuple[Row, dict[str, list[tuple[int, float, float, float]]]]:
    """Median time (and IQR) of the package and the floor at each size, 1 % breaks."""
    curves: dict[str, list[tuple[int, float, float, float]]] = {"package": [], "floor": []}
    for n in sizes:
        local, broker = reuse[n] if n in reuse else make_books(n, 1.0)
        reps = max(repeats, min(200, 2_000_000 // n // 10))
        times = interleave(
            {
                "package": lambda local=local, broker=broker: _package(local, broker),
                "floor": lambda local=local, broker=broker: floor_join_netting(local, broker),
            },
            reps,
            collect=n >= 100_000,
        )
        for name, values in times.items():
            sample = Sample(values, "ms")
            curves[name].append((n, sample.median, sample.q1, sample.q3))
    exponent = fit_exponent([(n, t) for n, t, _, _ in curves["package"]])
    floor_exponent = fit_exponent([(n, t) for n, t, _, _ in curves["floor"]])
    first, last = curves["package"][0], curves["package"][-1]
    row = Row(
        figure=f"scaling {sizes[0]:,} → {sizes[-1]:,} positions (1 % breaks, {len(sizes)} sizes)",
        measured=f"fitted exponent {exponent:.3f} ({_ms(first[1])} at {first[0]:,}, {_ms(last[1])} at {last[0]:,})",
        baseline=f"floor's exponent {floor_exponent:.3f}",
        ratio=f"{exponent / floor_exponent:.2f}x the floor's exponent",
        target="exponent ≤ 1.1",
        met=exponent <= 1.1,
    )
    return row, curves


def _ms(value: float) -> str:
    return f"{value:.3g} ms"
