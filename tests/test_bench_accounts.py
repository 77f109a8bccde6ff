"""The many-accounts figure runs end to end at tiny sizes (it must run, not meet targets)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.real_redis
def test_accounts_rows_give_every_figure_for_every_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    bench_redis = importlib.import_module("_redis").bench_redis
    accounts_rows = importlib.import_module("fig_accounts").accounts_rows

    with bench_redis(None) as (client, _):
        rows = accounts_rows((1, 3), 20, 0.5, client)

    figures = [row.figure for row in rows]
    assert len(figures) == 9
    for size in ("1 account of 20 positions", "3 accounts of 20 positions"):
        assert f"runtime threads, {size}" in figures
        assert f"memory per account beyond its books, {size}" in figures
        assert f"idle CPU at rest (no run due), {size}" in figures
        assert f"periodic runs, start to result, p99, {size}" in figures
    assert "startup of 3 accounts of 20 positions (`await runtime.start()`)" in figures
    assert all("nan" not in row.measured for row in rows if row.figure.startswith("periodic runs"))
