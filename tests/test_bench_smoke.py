"""The benchmark suite runs end to end in its quick mode (it must run, not meet targets)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent

FIGURES = (
    "| compare 100,000 positions, clean |",
    "| compare 100,000 positions, 1 % breaks",
    "| peak memory of the 100,000-position comparison",
    "| scaling 1,000 → 100,000 positions",
    "| compare 100,000 positions from Parquet, both sides columnar, 1 % breaks",
    "| 1 ms ticker while 100,000 columnar positions a side are checked and compared",
    "| peak memory of checking and comparing 100,000 columnar positions a side",
    "| 100,000 positions a side given as objects, put in columns and compared there",
    "| on-demand reconcile of 10,000 positions",
    "| 50,000 fills told by an execution actor while debouncing",
    "| the same 50,000 fills, until the debouncer has handled the last",
    "| publish 10,000 discrepancies",
    "| engine jitter: p99 round trip",
)


@pytest.mark.real_redis
def test_quick_mode_prints_and_writes_every_figure(tmp_path: Path) -> None:
    run = subprocess.run(  # noqa: S603 - our own script, with our own interpreter
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    for figure in FIGURES:
        assert figure in run.stdout, f"{figure!r} missing from:\n{run.stdout}"
    written = (tmp_path / "benchmarks.md").read_text()
    assert all(figure in written for figure in FIGURES)


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
