"""Run the benchmarks: one table, printed and written with a plot.

    python bench/run.py             # the full table (1M positions), under ten minutes: docs/benchmarks.md
    python bench/run.py --quick     # about 5 min on a 2-core machine, smaller books: build/bench/benchmarks.md (.ci/run --bench)
    python bench/run.py --smoke --out /tmp/bench   # tiny sizes, for the smoke test

Only the full run writes the tracked docs/benchmarks.md; a quick or smoke run writes
to build/bench/ (or --out) and refuses to write into docs/.

Every figure is measured next to its baseline in the same process, interleaved, and
reported as medians with their interquartile range and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _harness import Row, render_table
from _redis import PRIVATE, bench_redis
from _service import quiet_logging
from books import make_books
from fig_accounts import accounts_rows
from fig_bad_day import bad_day_row
from fig_breaks import breaks_rows, end_to_end_rows
from fig_check import check_row
from fig_columnar import columnar_rows
from fig_compare import memory_row, scaling, time_rows
from fig_dicts import dicts_row
from fig_explain import explain_rows
from fig_fill_path import fill_path_row
from fig_fills import fills_rows
from fig_gc import gc_row
from fig_isolation import ISOLATION, isolation_rows
from fig_jitter import jitter_rows
from fig_metrics import metrics_row
from fig_pipeline import pipeline_row
from fig_publish import publish_row
from fig_startup import startup_row

ROOT = Path(__file__).resolve().parent.parent
NOTES = Path(__file__).resolve().parent / "notes.md"
DOCS = ROOT / "docs"
SCRATCH = ROOT / "build" / "bench"
"""Where the figures of a quick or smoke run go: untracked (build/ is ignored)."""


@dataclass(frozen=True)
class Mode:
    name: str
    compare_n: int
    compare_repeats: int
    scaling_sizes: tuple[int, ...]
    scaling_repeats: int
    pipeline_n: int
    pipeline_repeats: int
    fills_n: int
    fills_repeats: int
    publish_n: int
    publish_repeats: int
    jitter_n: int
    jitter_runs: int
    breaks_sizes: tuple[int, ...]
    breaks_repeats: int
    gc_n: int
    gc_runs: int
    columnar_n: int
    columnar_repeats: int
    end_to_end_sizes: tuple[int, ...]
    end_to_end_repeats: int
    dicts_n: int
    dicts_repeats: int
    accounts_sizes: tuple[int, ...]
    accounts_positions: int
    accounts_seconds: float
    startup_repeats: int
    metrics_scrapes: int = 9
    bad_day_breaks: int = 10_000
    bad_day_repeats: int = 5


MODES = {
    "smoke": Mode(
        "smoke",
        2_000,
        3,
        (500, 1_000, 2_000, 4_000),
        3,
        500,
        5,
        2_000,
        2,
        200,
        3,
        2_000,
        3,
        (1_000, 2_000),
        2,
        5_000,
        2,
        2_000,
        2,
        (1_000,),
        2,
        1_000,
        3,
        (1, 5),
        100,
        2.0,
        5,
        bad_day_breaks=1_000,
        bad_day_repeats=2,
    ),
    "quick": Mode(
        "quick",
        100_000,
        3,
        (1_000, 3_000, 10_000, 30_000, 100_000),
        3,
        10_000,
        15,
        50_000,
        3,
        10_000,
        3,
        100_000,
        5,
        (10_000, 100_000),
        3,
        100_000,
        3,
        100_000,
        3,
        (10_000,),
        5,
        10_000,
        15,
        (1, 50, 500),
        200,
        5.0,
        30,
    ),
    "full": Mode(
        "full",
        1_000_000,
        7,
        (1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000),
        5,
        10_000,
        60,
        200_000,
        7,
        10_000,
        9,
        100_000,
        15,
        (10_000, 100_000),
        7,
        1_000_000,
        5,
        1_000_000,
        7,
        (10_000, 100_000),
        7,
        10_000,
        35,
        (1, 50, 500, 2_000),
        200,
        20.0,
        100,
    ),
}


EXPLAIN = {"smoke": (100, 10, 2), "quick": (1_000, 100, 5), "full": (1_000, 100, 9)}
"""Per mode: position breaks, fills a side per break, repeats of the explanation figures."""


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()} "
        f"({platform.python_implementation()}) on {platform.system()} {platform.release()}"
    )


def measure(
    mode: Mode, redis_url: str | None
) -> tuple[list[Row], dict[str, list[tuple[int, float, float, float]]], str]:
    quiet_logging()
    rows: list[Row] = []
    step = _Progress()
    rows.append(startup_row(mode.startup_repeats))
    step("reconciliation --help start-up")
    rows.append(gc_row(mode.gc_n, mode.gc_runs))
    step("gc stalls (before any gc.freeze)")
    rows += breaks_rows(mode.breaks_sizes, mode.breaks_repeats)
    step("breaks")
    books = {0.0: make_books(mode.compare_n), 1.0: make_books(mode.compare_n, 1.0)}
    gc.freeze()  # the books live to the end: keep them out of the collections between timings
    step("books built")
    rows += time_rows(mode.compare_n, books, mode.compare_repeats)
    step("compare")
    rows.append(memory_row(mode.compare_n, *books[1.0]))
    step("memory")
    scaling_row, curves = scaling(mode.scaling_sizes, mode.scaling_repeats, {mode.compare_n: books[1.0]})
    rows.append(scaling_row)
    del books
    step("scaling")
    rows += columnar_rows(mode.columnar_n, mode.columnar_repeats)
    step("columnar")
    rows.append(check_row(mode.columnar_n, max(1, mode.columnar_repeats // 2)))
    step("reconciliation check, end to end")
    with bench_redis(redis_url) as (client, server):
        private = server.startswith(PRIVATE)
        rows.append(pipeline_row(mode.pipeline_n, mode.pipeline_repeats, client))
        step("pipeline")
        rows.append(dicts_row(mode.dicts_n, mode.dicts_repeats, client))
        step("broker answering dicts")
        rows += end_to_end_rows(mode.end_to_end_sizes, mode.end_to_end_repeats, client, private=private)
        step("end to end, 0 / 1 / 100 % breaks")
        rows.append(bad_day_row(mode.bad_day_breaks, mode.bad_day_repeats, client, private=private))
        step("bad day against redis-benchmark")
        rows += fills_rows(mode.fills_n, mode.fills_repeats, client)
        step("fills")
        rows.append(fill_path_row(100, 10 if mode.name == "smoke" else 60, client, private=private))
        step("fill path to Redis")
        rows += explain_rows(*EXPLAIN[mode.name], client)
        step("the fills behind the breaks")
        rows.append(publish_row(mode.publish_n, mode.publish_repeats, client))
        step("publish")
        rows += jitter_rows(mode.jitter_n, mode.jitter_runs, client, private=private)
        step("jitter")
        rows += accounts_rows(mode.accounts_sizes, mode.accounts_positions, mode.accounts_seconds, client)
        step("accounts")
        rows += isolation_rows(ISOLATION[mode.name], client)
        step("isolation: slow brokers, large books")
        rows.append(metrics_row(max(mode.accounts_sizes), mode.accounts_positions, mode.metrics_scrapes, client))
        step("/metrics scrape")
    return rows, curves, server


class _Progress:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, what: str) -> None:
        print(f"  [{time.perf_counter() - self.start:6.1f} s] {what}", file=sys.stderr, flush=True)


def plot(curves: dict[str, list[tuple[int, float, float, float]]], path: Path, title: str) -> str:
    try:
        import matplotlib as mpl  # noqa: PLC0415 - optional: only the plot needs it

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return "matplotlib is not installed: the plot was skipped (pip install matplotlib)"
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, points in curves.items():
        sizes = [p[0] for p in points]
        axes.errorbar(
            sizes,
            [p[1] for p in points],
            yerr=[[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]],
            marker="o",
            capsize=3,
            label="reconciliation._domain.compare" if name == "package" else "bare dict join (floor)",
        )
    first_n, first_t = curves["package"][0][0], curves["package"][0][1]
    last_n = curves["package"][-1][0]
    axes.plot([first_n, last_n], [first_t, first_t * last_n / first_n], ":", color="grey", label="linear")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("positions per side (1 % breaks)")
    axes.set_ylabel("run time, ms (median, IQR bars)")
    axes.set_title(title)
    axes.grid(visible=True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"plot written to {path}"


def write_markdown(path: Path, mode: Mode, table: str, server: str, png: Path, elapsed: float) -> None:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    notes = NOTES.read_text() if NOTES.exists() else ""
    command = "python bench/run.py" + ("" if mode.name == "full" else f" --{mode.name}")
    text = f"""# Benchmarks

Generated by `{command}` ({mode.name} mode, {elapsed:.0f} s) on {when}.

- Machine: {machine()}; shared with other work, so read the ratios first.
- Redis: {server}.
- Each figure is measured next to its baseline in the same run, interleaved; medians
  with the interquartile range over the repeats, and the ratio of the medians.

{table}

![run time against book size]({png.name})

{notes}"""
    path.write_text(text)


def output_directory(mode: Mode, out: Path | None) -> Path:
    """Where `mode` writes benchmarks.md and its plot.

    Raises:
        ValueError: a quick or smoke run was pointed at docs/, whose figures are the full run's.
    """
    if mode.name == "full":
        return out or DOCS
    if out is None:
        return SCRATCH
    if out.resolve() == DOCS.resolve():
        msg = f"--{mode.name} figures must not replace the full run's docs/benchmarks.md: leave out --out (build/bench/)"
        raise ValueError(msg)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller books and fewer repeats (about 5 min)")
    size.add_argument("--smoke", action="store_true", help="tiny sizes: only checks that everything runs")
    parser.add_argument(
        "--out",
        type=Path,
        help="directory for benchmarks.md and the PNG (default: docs/ for the full run, build/bench/ otherwise)",
    )
    parser.add_argument("--redis-url", help="use this Redis instead of a private redis-server")
    args = parser.parse_args()
    mode = MODES["smoke" if args.smoke else "quick" if args.quick else "full"]
    try:
        out = output_directory(mode, args.out)
    except ValueError as exc:
        parser.error(str(exc))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"reconciliation benchmarks, {mode.name} mode, on {machine()}", file=sys.stderr)
    rows, curves, server = measure(mode, args.redis_url)
    table = render_table(rows)
    print(table)
    png = out / "benchmarks-scaling.png"
    print(plot(curves, png, f"compare_positions, {mode.name} mode"), file=sys.stderr)
    md = out / "benchmarks.md"
    write_markdown(md, mode, table, server, png, time.perf_counter() - started)
    missed = sum(1 for r in rows if r.met is False)
    print(f"{len(rows)} figures, {missed} targets missed; written to {md}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
