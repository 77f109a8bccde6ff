"""The benchmark suite runs end to end in its quick mode (it must run, not meet targets)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FIGURES = (
    "| compare 100,000 positions, clean |",
    "| compare 100,000 positions, 1 % breaks",
    "| peak memory of the 100,000-position comparison",
    "| scaling 1,000 → 100,000 positions",
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
