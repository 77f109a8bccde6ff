"""Timing, statistics and the one table every figure lands in.

A figure is always measured against its baseline in the same run, interleaved
(A, B, A, B, ...) so that a noisy neighbour slows both alike, and reported as medians
with their spread (interquartile range) plus the ratio of the medians.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["Row", "Sample", "interleave", "percentile", "render_table"]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; `values` need not be sorted."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Sample:
    """Repeated measurements of one quantity, in `unit`."""

    values: list[float]
    unit: str

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def q1(self) -> float:
        return percentile(self.values, 25)

    @property
    def q3(self) -> float:
        return percentile(self.values, 75)

    def text(self) -> str:
        if len(self.values) == 1:
            return f"{_fmt(self.median)} {self.unit}"
        return f"{_fmt(self.median)} {self.unit} (IQR {_fmt(self.q1)}-{_fmt(self.q3)}, n={len(self.values)})"


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 100_000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def interleave(
    candidates: dict[str, Callable[[], object]], repeats: int, *, warmup: int = 1, collect: bool = True
) -> dict[str, list[float]]:
    """Wall time in ms of each callable, `repeats` times, alternating between them.

    A full garbage collection runs before each timed call (outside the timing), so one
    call does not pay for the garbage of the one before.
    """
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for round_ in range(warmup + repeats):
        for name, call in candidates.items():
            if collect:
                gc.collect()
            start = time.perf_counter()
            call()
            elapsed = (time.perf_counter() - start) * 1000.0
            if round_ >= warmup:
                times[name].append(elapsed)
    return times


@dataclass
class Row:
    """One line of the table: a figure, its baseline, their ratio, and the target."""

    figure: str
    measured: str
    baseline: str
    ratio: str
    target: str
    met: bool | None
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "—"
        return "yes" if self.met else "**no**"


HEADER = ("figure", "measured", "baseline (same run)", "ratio", "target", "met")


def render_table(rows: Sequence[Row]) -> str:
    """A Markdown table, readable as plain text too."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines.extend(
        f"| {r.figure} | {r.measured} | {r.baseline} | {r.ratio} | {r.target} | {r.verdict} |" for r in rows
    )
    return "\n".join(lines)
