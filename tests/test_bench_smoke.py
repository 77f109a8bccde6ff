"""The benchmark suite runs end to end in its smoke mode and prints every figure (it must
run, not meet targets: CI runs the quick mode after the tests for the figures)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent

FIGURES = (
    "| `reconciliation --help` start-up, a whole process |",
    "| compare {n} positions, clean; mixed shapes, 10 % short, 0.1 % hedged in two legs |",
    "| compare {n} positions, 1 % breaks",
    "| peak memory of the {n}-position comparison",
    "| scaling {n} → {n} positions",
    "| compare {n} positions from Parquet, both sides columnar, 1 % breaks",
    "| 1 ms ticker while {n} columnar positions a side are checked and compared",
    "| peak memory of checking and comparing {n} columnar positions a side",
    "| {n} positions a side given as objects, put in columns and compared there",
    "| `reconciliation check` of two {n}-position Parquet files (1 % breaks), output to a pipe |",
    "| 1 ms ticker during a {n}-position run with 1 % breaks",
    "| ageing, escalation and payloads of a run with {n} breaks",
    "| on-demand reconcile of {n} positions, ask → result, published to Redis |",
    "| on-demand reconcile of {n} positions, ask → result, the broker answering dicts of decimal text |",
    "| end to end, ask → last payload in Redis, {n} positions, 1 % breaks |",
    "| end to end, ask → last payload in Redis, {n} positions, 100 % breaks (the broker answered []) |",
    "| bad day: a run of {n} breaks (the broker answered []), ask → last payload in Redis |",
    "| longest single Redis command of the {n}-position runs above (slow log) | ",
    "| {n} fills told by an execution actor while debouncing",
    "| the same {n} fills, until the debouncer has handled the last",
    "| fill → post-fill run's last payload in Redis, {n}-position book, no debounce delay, p50 |",
    "| explaining {n} position breaks, {n} fills at the broker and {n} in the book each",
    "| a whole run of {n} position breaks with their fills read through both books' get_fills",
    "| publish {n} discrepancies",
    "| engine jitter: 1 ms ticker's oversleep during a {n}-position run with 1 % breaks, ask → last payload in Redis |",
    "| engine jitter: p99 round trip to an unrelated actor",
    "| runtime threads, {n} account",
    "| memory per account beyond its books, {n} account",
    "| idle CPU at rest (no run due), {n} account",
    "| periodic runs, start to result, p99, {n} account",
    "| startup of {n} accounts of {n} positions (`await runtime.start()`) |",
    "| `/metrics` scrape over HTTP, {n} accounts running periodic runs |",
    "| {n} brokers answering in 80% of their 1 s limit among {n} accounts (interval 1 s): the healthy accounts' runs |",
    "| two accounts of {n} agreeing positions among {n} (interval 2 s): the others' periodic runs |",
)
"""The start of each row; `{n}` stands for a book size."""


def _row(figure: str) -> re.Pattern[str]:
    pattern = re.escape(figure).replace(re.escape("{n}"), r"[\d,]+")
    return re.compile(pattern + r".* \| (yes|\*\*no\*\*|—) \|$", re.MULTILINE)


@pytest.mark.real_redis
def test_smoke_mode_prints_and_writes_every_figure(tmp_path: Path) -> None:
    run = subprocess.run(  # noqa: S603 - our own script, with our own interpreter
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    written = (tmp_path / "benchmarks.md").read_text()
    for figure in FIGURES:
        assert _row(figure).search(run.stdout), f"{figure!r} missing from:\n{run.stdout}"
        assert _row(figure).search(written), f"{figure!r} missing from benchmarks.md"


@pytest.fixture
def bench_run(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """bench/run.py as a module (its siblings importable, as when it runs as a script)."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_run", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mode", ["quick", "smoke"])
def test_a_quick_or_smoke_run_writes_outside_the_tracked_docs_by_default(bench_run: ModuleType, mode: str) -> None:
    out = bench_run.output_directory(bench_run.MODES[mode], None)

    assert out == ROOT / "build" / "bench"
    assert "build/" in (ROOT / ".gitignore").read_text().splitlines()


def test_only_the_full_run_writes_docs_by_default(bench_run: ModuleType) -> None:
    assert bench_run.output_directory(bench_run.MODES["full"], None) == ROOT / "docs"


def test_quick_mode_refuses_to_replace_the_tracked_benchmarks_md() -> None:
    tracked = ROOT / "docs" / "benchmarks.md"
    before = tracked.read_bytes()

    run = subprocess.run(  # noqa: S603 - our own script, with our own interpreter
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(ROOT / "docs")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert run.returncode == 2, run.stderr
    assert "must not replace the full run's docs/benchmarks.md" in run.stderr
    assert tracked.read_bytes() == before
