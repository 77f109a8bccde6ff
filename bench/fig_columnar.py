"""The columnar comparison: a book of a million positions a side, read from Parquet.

Both sides are written to Parquet files (string symbols, decimal128 quantities, costs and
market values, the broker's rows shuffled) and read back as Arrow tables, as an
end-of-day statement or an engine that keeps its book in arrays would answer. What the
service does with them in the engine's process — check both batches (the fetcher) and
compare them with the collector paused and the GIL budget (the comparator) — is timed
against the bare Python dict join over the same positions as objects (the floor), in the
same run, interleaved, against the best Arrow/numpy floor written (`arrow_floor`: the same
answer from the same tables, every position netted by Acero's hash aggregation, both sides
joined by its hash join, the breaks picked by integer arithmetic); a 1 ms ticker thread
measures how late it wakes meanwhile; and the peak memory of the check and comparison is
set against the input columns.

    python bench/fig_columnar.py 1000000 7   # just these figures (size, repeats), as table rows
"""

from __future__ import annotations

import gc
import json
import math
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _harness import Row, Sample, interleave, percentile, render_table
from _ticker import Ticker
from baselines import floor_join_netting
from books import ACCOUNT, NOW, make_books

from reconciliation._domain.compare import compare, compare_positions
from reconciliation._domain.models import (
    BrokerAccount,
    BrokerPosition,
    LocalAccount,
    Position,
    ReconciliationConfig,
    Snapshot,
)
from reconciliation._runtime.comparator_actor import GilBudget, paused_gc
from reconciliation._runtime.snapshot import parse_positions

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["columnar_rows"]

CONFIG = ReconciliationConfig(ACCOUNT)
MIB = 1024 * 1024
_POOLS: list[Any] = []
"""The proxy memory pools of the memory figure, kept to the end: Arrow buffers they made must not outlive them."""


def columnar_rows(n: int, repeats: int) -> list[Row]:
    """The columnar figures at `n` positions a side, or one row saying why they were skipped."""
    try:
        import pyarrow as pa  # noqa: PLC0415 - the fast extra's
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError as exc:
        return _skipped(n, f"the fast extra is not installed ({exc})")
    local, broker = make_books(n, 1.0)
    broker = list(broker)
    random.Random(7).shuffle(broker)
    with tempfile.TemporaryDirectory() as directory:
        paths = (Path(directory) / "book.parquet", Path(directory) / "statement.parquet")
        pq.write_table(_table(pa, local), paths[0])
        pq.write_table(_table(pa, broker, market_values=True), paths[1])
        gc.collect()
        started = time.perf_counter()
        tables = (pq.read_table(paths[0]), pq.read_table(paths[1]))
        read_ms = (time.perf_counter() - started) * 1000
        memory = _memory_row(n, paths)
    found = len(floor_join_netting(local, broker))
    phases: dict[str, list[float]] = {"check": [], "compare": []}

    def columnar() -> None:
        with paused_gc(pause=True):
            started = time.perf_counter()
            snapshot = _checked(tables)
            checked = time.perf_counter()
            compare(snapshot, CONFIG, pause=GilBudget())
            phases["check"].append((checked - started) * 1000)
            phases["compare"].append((time.perf_counter() - checked) * 1000)

    arrow_found = len(arrow_floor(*tables))
    if arrow_found != found:
        msg = f"the Arrow floor found {arrow_found:,} breaks, the Python floor {found:,}: not the same work"
        raise RuntimeError(msg)
    times = interleave(
        {
            "columnar": columnar,
            "arrow": lambda: arrow_floor(*tables),
            "floor": lambda: floor_join_netting(local, broker),
        },
        repeats,
    )
    warm = len(phases["check"]) - repeats
    check, compared = (Sample(phases[name][warm:], "ms") for name in ("check", "compare"))
    floor = Sample(times["floor"], "ms")
    arrow = Sample(times["arrow"], "ms")
    return [
        _time_row(n, found, compared, check, floor, arrow, read_ms),
        _ticker_row(n, tables, local, broker, repeats),
        memory,
        _objects_row(n, local, broker, repeats),
    ]


def _table(
    pa: Any, entries: Sequence[Position] | Sequence[BrokerPosition], *, market_values: bool = False
) -> Any:
    columns = {
        "symbol": pa.array([entry.symbol for entry in entries], pa.string()),
        "quantity": pa.array([entry.quantity for entry in entries], pa.decimal128(18, 0)),
        "avg_cost": pa.array([entry.avg_cost for entry in entries], pa.decimal128(18, 2)),
        "asset_type": pa.array([entry.asset_type.value for entry in entries], pa.string()),
    }
    if market_values:
        columns["market_value"] = pa.array(
            [getattr(entry, "market_value", None) for entry in entries], pa.decimal128(24, 2)
        )
    return pa.table(columns)


def _checked(tables: tuple[Any, Any]) -> Snapshot:
    """The snapshot the fetcher makes of two columnar answers: both checked."""
    cash = LocalAccount(ACCOUNT, 0, 0)
    return Snapshot(
        ACCOUNT,
        parse_positions(Position, tables[0], call="local.get_positions"),
        cash,
        parse_positions(BrokerPosition, tables[1], call="broker.get_positions"),
        BrokerAccount(ACCOUNT, 0, 0, 0, 0),
        NOW,
    )


def _unscaled(column: Any) -> Any:
    """A decimal128 column's unscaled integers as int64 (low words; the bench values fit)."""
    import numpy as np  # noqa: PLC0415 - the fast extra's
    import pyarrow as pa  # noqa: PLC0415

    array = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    words = np.frombuffer(array.buffers()[1], dtype=np.int64)[2 * array.offset :: 2][: len(array)]
    return pa.array(words)


_ASSET_TYPES = ("stock", "option", "future", "swap", "crypto", "other")


def arrow_floor(local: Any, broker: Any) -> Any:
    """The least Arrow and numpy can do for the same breaks from the same tables (the fastest
    of those written: an Acero group-by and hash join took 1.6x this): both sides' symbols
    dictionary-encoded together, each position (symbol id, asset type) numbered densely by a
    running count over the table of pairs, each side netted by `np.bincount` (quantities, |q| and |q| x cost: netted costs
    compare exactly by cross-multiplication; the weights are float64, exact for the bench's
    integers below 2**53), and the breaks picked by array arithmetic. Returns the keys of
    the breaking positions (unsorted, not objects)."""
    import numpy as np  # noqa: PLC0415 - the fast extra's
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    def both(name: str) -> Any:
        return pa.chunked_array(local[name].chunks + broker[name].chunks)

    encoded = pc.dictionary_encode(both("symbol"))  # one dictionary, grown chunk by chunk
    symbols = np.concatenate([chunk.indices.to_numpy() for chunk in encoded.chunks]).astype(np.int64)
    kinds = pc.index_in(both("asset_type"), value_set=pa.array(_ASSET_TYPES)).to_numpy()
    pairs = symbols * len(_ASSET_TYPES) + kinds
    held_pairs = np.zeros(len(encoded.chunks[-1].dictionary) * len(_ASSET_TYPES), np.bool_)
    held_pairs[pairs] = True
    dense = np.cumsum(held_pairs, dtype=np.int32)
    keys = dense[pairs] - 1  # each (symbol, asset type) numbered densely
    size = int(dense[-1])
    sides = []
    for side_keys, table in ((keys[: local.num_rows], local), (keys[local.num_rows :], broker)):
        quantity = _unscaled(table["quantity"]).to_numpy()
        weight = np.abs(quantity)
        cost_weight = weight * _unscaled(table["avg_cost"]).to_numpy()
        sides.append(
            tuple(np.bincount(side_keys, values, size) for values in (quantity, weight, cost_weight))
        )
    (held, held_weight, held_cost), (reported, reported_weight, reported_cost) = sides
    breaks = (held != reported) | ((held != 0) & (held_cost * reported_weight != reported_cost * held_weight))
    return np.flatnonzero(breaks)


def _time_row(
    n: int, found: int, compared: Sample, check: Sample, floor: Sample, arrow: Sample, read_ms: float
) -> Row:
    ratio = compared.median / arrow.median
    whole = (compared.median + check.median) / arrow.median
    return Row(
        figure=f"compare {n:,} positions from Parquet, both sides columnar, 1 % breaks ({found:,} found)",
        measured=(
            f"columnar {compared.text()} as the comparator runs it (collector paused, GIL budget); "
            f"checking both batches first {check.text()}; reading both files {read_ms:.0f} ms"
        ),
        baseline=(
            f"Arrow/numpy floor (dictionary-encoded keys, np.bincount netting) {arrow.text()}; "
            f"the Python floor over the objects {floor.text()}"
        ),
        ratio=(
            f"{ratio:.2f}x the Arrow floor; check + compare {whole:.2f}x; "
            f"{compared.median / floor.median:.2f}x the Python floor"
        ),
        target="≤ 1.1x the Arrow floor",
        met=ratio <= 1.1,
    )


def _ticker_row(
    n: int, tables: tuple[Any, Any], local: list[Position], broker: list[BrokerPosition], runs: int
) -> Row:
    def columnar() -> None:
        with paused_gc(pause=True):
            compare(_checked(tables), CONFIG, pause=GilBudget())

    ticker = Ticker()
    p99: dict[str, list[float]] = {"columnar": [], "floor": []}
    worst: dict[str, list[float]] = {"columnar": [], "floor": []}
    try:
        for _ in range(runs):
            for name, work in (("columnar", columnar), ("floor", lambda: floor_join_netting(local, broker))):
                gc.collect()
                late = ticker.measure(work)
                p99[name].append(percentile(late, 99))
                worst[name].append(max(late, default=0.0))
    finally:
        ticker.close()
    ours, theirs = Sample(p99["columnar"], "ms"), Sample(p99["floor"], "ms")
    return Row(
        figure=f"1 ms ticker while {n:,} columnar positions a side are checked and compared",
        measured=f"p99 {ours.text()}, max {Sample(worst['columnar'], 'ms').text()}",
        baseline=f"during the Python floor: p99 {theirs.text()}",
        ratio="—" if math.isnan(theirs.median) else f"{ours.median / max(theirs.median, 1e-9):.2f}x p99",
        target="p99 ≤ 5 ms",
        met=ours.median <= 5,
    )


def _memory_row(n: int, paths: tuple[Path, Path]) -> Row:
    """Resident memory of checking and comparing the two files' tables, measured in a fresh
    interpreter (`measure_memory`) so that no other figure's garbage is reused or counted."""
    run = subprocess.run(
        [sys.executable, __file__, "--memory", str(paths[0]), str(paths[1])],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if run.returncode != 0:
        return Row(
            figure=f"peak memory of checking and comparing {n:,} columnar positions a side (1 % breaks)",
            measured=f"not measured: {(run.stderr.strip().splitlines() or ['no output'])[-1]}",
            baseline="—",
            ratio="—",
            target="≤ 2x",
            met=False,
        )
    measured = json.loads(run.stdout)
    inputs, extra = measured["inputs"], measured["extra"]
    total = (inputs + extra) / inputs
    return Row(
        figure=f"peak memory of checking and comparing {n:,} columnar positions a side (1 % breaks)",
        measured=f"{extra / MIB:.0f} MiB more at peak ({measured['how']})",
        baseline=f"{inputs / MIB:.0f} MiB: both input tables as read from Parquet",
        ratio=f"{extra / inputs:.2f}x (inputs + comparison: {total:.2f}x)",
        target="≤ 2x",
        met=total <= 2.0,
    )


def measure_memory(paths: tuple[str, str]) -> dict[str, Any]:
    """Read both tables, then check and compare them as the service would; how much memory
    that took above the tables: the resident set's high-water mark (reset through
    /proc/self/clear_refs) where Linux has one, else the sum of the peaks of Python and numpy
    (tracemalloc) and of Arrow's pool (an upper bound: the two peaks need not coincide)."""
    import pyarrow as pa  # noqa: PLC0415 - the fast extra's
    import pyarrow.parquet as pq  # noqa: PLC0415

    tables = (pq.read_table(paths[0]), pq.read_table(paths[1]))
    inputs = sum(table.nbytes for table in tables)
    compare(
        _checked((tables[0].slice(0, 10), tables[1].slice(0, 10))), CONFIG
    )  # imports, caches: not the book's
    pa.default_memory_pool().release_unused()
    gc.collect()
    clear_refs = Path("/proc/self/clear_refs")
    if clear_refs.exists():
        clear_refs.write_text("5")
        before = _status_bytes("VmRSS")
        with paused_gc(pause=True):
            compare(_checked(tables), CONFIG, pause=GilBudget())
        return {
            "inputs": inputs,
            "extra": _status_bytes("VmHWM") - before,
            "how": "resident set, high-water mark",
        }
    pool = pa.proxy_memory_pool(pa.default_memory_pool())
    _POOLS.append(pool)
    pa.set_memory_pool(pool)
    tracemalloc.start()
    with paused_gc(pause=True):
        compare(_checked(tables), CONFIG, pause=GilBudget())
    _, python_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "inputs": inputs,
        "extra": python_peak + pool.max_memory(),
        "how": "tracemalloc peak + Arrow pool peak, an upper bound",
    }


def _status_bytes(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    msg = f"no {key} in /proc/self/status"
    raise LookupError(msg)


def _objects_row(n: int, local: list[Position], broker: list[BrokerPosition], repeats: int) -> Row:
    """Why objects stay objects: books of objects put in columns and compared there, against
    comparing the objects."""
    from reconciliation._columnar.compare import compare_any_positions  # noqa: PLC0415

    times = interleave(
        {
            "columns": lambda: compare_any_positions(
                local, broker, account_id=ACCOUNT, timestamp=NOW, config=CONFIG
            ),
            "objects": lambda: compare_positions(
                local, broker, account_id=ACCOUNT, timestamp=NOW, config=CONFIG
            ),
        },
        repeats,
    )
    columns, objects = Sample(times["columns"], "ms"), Sample(times["objects"], "ms")
    return Row(
        figure=f"{n:,} positions a side given as objects, put in columns and compared there",
        measured=columns.text(),
        baseline=f"compared as objects (the package) {objects.text()}",
        ratio=f"{columns.median / objects.median:.2f}x",
        target="objects stay objects unless this is below 1x",
        met=None,
    )


def _skipped(n: int, why: str) -> list[Row]:
    figures = (
        (f"compare {n:,} positions from Parquet, both sides columnar, 1 % breaks", "≤ 1.1x the Arrow floor"),
        (f"1 ms ticker while {n:,} columnar positions a side are checked and compared", "p99 ≤ 5 ms"),
        (f"peak memory of checking and comparing {n:,} columnar positions a side (1 % breaks)", "≤ 2x"),
        (f"{n:,} positions a side given as objects, put in columns and compared there", "—"),
    )
    return [
        Row(figure=figure, measured=f"skipped: {why}", baseline="—", ratio="—", target=target, met=False)
        for figure, target in figures
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory"]:
        print(json.dumps(measure_memory((sys.argv[2], sys.argv[3]))))
    else:
        size = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
        count = int(sys.argv[2]) if len(sys.argv) > 2 else 5
        print(render_table(columnar_rows(size, count)))
