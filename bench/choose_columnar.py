"""How the columnar comparison's library was chosen: the same work, four ways.

    python bench/choose_columnar.py [positions] [repeats]     # default 1,000,000 and 5

Each candidate does what any columnar comparison must, from two books of string symbols
with decimal128 quantities and costs (1 % breaks, the broker's rows shuffled): find the
symbols a side lists twice (to net them), join both sides by symbol, and classify every
position. The checking of the batches and the building of the discrepancies are the
same whichever library joins, and left out. Each is timed next to the bare Python dict
join over the same positions as objects (the floor), interleaved, with a 1 ms ticker
thread measuring how late it wakes; then, each in a fresh interpreter, how far its
resident set rises above the input tables. The results are in docs/architecture.md.
Needs pyarrow, numpy and polars (the test extra).
"""

from __future__ import annotations

import gc
import random
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from _harness import interleave, percentile
from _ticker import Ticker
from baselines import floor_join
from books import ACCOUNT, make_books
from fig_columnar import _status_bytes

from reconciliation._columnar.compare import _Classified, _position_ids
from reconciliation._columnar.input import columns_from_table
from reconciliation._domain.models import ReconciliationConfig

CONFIG = ReconciliationConfig(ACCOUNT)


def low_words(column: Any) -> np.ndarray:
    """A decimal128 column's unscaled values (all fit in 64 bits here)."""
    array = column.combine_chunks()
    words = np.frombuffer(array.buffers()[1], dtype="<i8", count=2 * len(array))
    return words[0::2]


def classify(lq: np.ndarray, bq: np.ndarray, lc: np.ndarray, bc: np.ndarray) -> np.ndarray:
    kinds = np.zeros(len(lq), np.int8)
    equal = lq == bq
    kinds[equal & (lq != 0) & (lc != bc)] = 4
    kinds[~equal & (bq == 0)] = 2
    kinds[~equal & (lq == 0) & (bq != 0)] = 1
    kinds[~equal & (lq != 0) & (bq != 0)] = 3
    return kinds


def arrow_numpy(local: Any, broker: Any) -> object:
    """The package's way: one dictionary encoding of both sides (Arrow), numpy scatter."""
    return _Classified.of(local, broker, *_ids(local, broker), CONFIG.cost_tolerance_pct)


def _ids(local: Any, broker: Any) -> tuple[tuple[Any, Any], int]:
    local_ids, broker_ids, count = _position_ids(local, broker)
    return (local_ids, broker_ids), count


def polars_join(local: Any, broker: Any) -> object:
    """A full outer join on the symbol in polars, classified with polars expressions."""
    left = pl.DataFrame(
        {"symbol": local["symbol"], "q": low_words(local["quantity"]), "c": low_words(local["avg_cost"])}
    )
    right = pl.DataFrame(
        {"symbol": broker["symbol"], "q": low_words(broker["quantity"]), "c": low_words(broker["avg_cost"])}
    )
    joined = left.join(right, on="symbol", how="full", coalesce=True, suffix="_b")
    lq, bq = pl.col("q").fill_null(0), pl.col("q_b").fill_null(0)
    kind = (
        pl.when(lq == bq)
        .then(pl.when((lq != 0) & (pl.col("c") != pl.col("c_b"))).then(4).otherwise(0))
        .when(bq == 0)
        .then(2)
        .when(lq == 0)
        .then(1)
        .otherwise(3)
    )
    return joined.with_columns(kind.alias("kind")).filter(pl.col("kind") != 0).sort("symbol")


def polars_hash(local: Any, broker: Any) -> object:
    """polars' string hash, a sort of both sides' hashes, numpy around it; the pairs' symbols
    compared to rule out a collision."""
    symbols = (local["symbol"].combine_chunks(), broker["symbol"].combine_chunks())
    held = len(symbols[0])
    keys = np.concatenate(
        [
            pl.Series(symbols[0]).hash().to_numpy() & ~np.uint64(1),
            pl.Series(symbols[1]).hash().to_numpy() | np.uint64(1),
        ]
    )
    order = pl.Series(keys).arg_sort().to_numpy()
    ordered = keys[order]
    if (ordered[1:] == ordered[:-1]).any():
        msg = "a symbol listed twice: the benchmark's books have none"
        raise AssertionError(msg)
    ordered >>= np.uint64(1)
    pair = np.flatnonzero(ordered[1:] == ordered[:-1])
    li, bi = order[pair], order[pair + 1] - held
    same = pc.equal(symbols[0].take(pa.array(li)), symbols[1].take(pa.array(bi)))
    kinds = classify(
        low_words(local["quantity"])[li],
        low_words(broker["quantity"])[bi],
        low_words(local["avg_cost"])[li],
        low_words(broker["avg_cost"])[bi],
    )
    return same, kinds


def numpy_unique(local: Any, broker: Any) -> object:
    """numpy alone: ids from np.unique over both sides' symbols as fixed-width strings."""
    symbols = np.concatenate(
        [local["symbol"].to_numpy().astype(str), broker["symbol"].to_numpy().astype(str)]
    )
    _, ids = np.unique(symbols, return_inverse=True)
    held = len(local)
    count = int(ids.max()) + 1
    if (np.bincount(ids[:held], minlength=count) > 1).any() or (
        np.bincount(ids[held:], minlength=count) > 1
    ).any():
        msg = "a symbol listed twice: the benchmark's books have none"
        raise AssertionError(msg)
    rows = np.full((2, count), -1, np.int64)
    rows[0, ids[:held]] = np.arange(held)
    rows[1, ids[held:]] = np.arange(len(ids) - held)
    both = (rows[0] >= 0) & (rows[1] >= 0)
    li, bi = rows[0, both], rows[1, both]
    return classify(
        low_words(local["quantity"])[li],
        low_words(broker["quantity"])[bi],
        low_words(local["avg_cost"])[li],
        low_words(broker["avg_cost"])[bi],
    )


def books(n: int) -> tuple[list[Any], list[Any], tuple[Any, Any]]:
    local, broker = make_books(n, 1.0)
    broker = list(broker)
    random.Random(7).shuffle(broker)

    def table(entries: list[Any]) -> Any:
        return pa.table(
            {
                "symbol": pa.array([e.symbol for e in entries], pa.string()),
                "quantity": pa.array([e.quantity for e in entries], pa.decimal128(18, 0)),
                "avg_cost": pa.array([e.avg_cost for e in entries], pa.decimal128(18, 2)),
            }
        )

    return local, broker, (table(local), table(broker))


def candidates(local: list[Any], broker: list[Any], tables: tuple[Any, Any]) -> dict[str, Any]:
    checked = (
        columns_from_table(tables[0], "local", call="local"),
        columns_from_table(tables[1], "broker", call="broker"),
    )
    return {
        "floor (dict join over objects)": lambda: floor_join(local, broker),
        "pyarrow dictionary_encode + numpy (chosen)": lambda: arrow_numpy(*checked),
        "polars full join + expressions": lambda: polars_join(*tables),
        "polars hash + sort + numpy": lambda: polars_hash(*tables),
        "numpy alone (np.unique on strings)": lambda: numpy_unique(*tables),
    }


def memory(name: str, n: int) -> int:
    """How far the resident set rises above the inputs while `name` runs, in a fresh interpreter."""
    run = subprocess.run(
        [sys.executable, __file__, "--memory", name, str(n)], capture_output=True, text=True, check=True
    )
    return int(run.stdout)


def measure_memory(name: str, n: int) -> int:
    local, broker, tables = books(n)
    call = candidates(local, broker, tables)[name]
    pa.default_memory_pool().release_unused()
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_bytes("VmRSS")
    call()
    return _status_bytes("VmHWM") - before


def main() -> None:
    if sys.argv[1:2] == ["--memory"]:
        print(measure_memory(sys.argv[2], int(sys.argv[3])))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    local, broker, tables = books(n)
    inputs = sum(table.nbytes for table in tables)
    ways = candidates(local, broker, tables)
    times = interleave(ways, repeats)
    ticker = Ticker()
    late = {name: percentile(ticker.measure(call), 99) for name, call in ways.items()}
    ticker.close()
    floor = statistics.median(times["floor (dict join over objects)"])
    print(f"{n:,} positions a side, 1 % breaks, medians of {repeats}; input tables {inputs / 2**20:.0f} MiB:")
    for name, values in times.items():
        median = statistics.median(values)
        rise = memory(name, n) / 2**20
        print(
            f"  {name:45s} {median:6.0f} ms  {median / floor:5.2f}x floor  ticker p99 {late[name]:5.1f} ms"
            f"  resident +{rise:4.0f} MiB"
        )


if __name__ == "__main__":
    main()
