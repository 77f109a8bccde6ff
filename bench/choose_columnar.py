"""How the columnar comparison's library was chosen: the same join and classification, four ways.

    python bench/choose_columnar.py [positions] [repeats]     # default 1,000,000 and 5

Each candidate joins two books of string symbols with decimal128 quantities and costs
(1 % breaks, the broker's rows shuffled) and classifies every position, starting from
Arrow tables (as read from Parquet); each is timed next to the bare Python dict join
over the same positions as objects (the floor), interleaved, with a 1 ms ticker thread
measuring how late it wakes. Prints one line per candidate: median ms, ratio to the
floor, the ticker's p99. The results are in docs/architecture.md. Needs pyarrow, numpy
and polars (the test extra).
"""

from __future__ import annotations

import random
import statistics
import sys
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from _harness import interleave, percentile
from baselines import floor_join
from books import ACCOUNT, NOW, make_books
from fig_gc import Ticker

from reconciliation._domain.columnar_compare import compare_columns
from reconciliation._domain.columnar_input import columns_from_table
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
    """The package's way: checked columns, one dictionary encoding, numpy scatter (compare_columns)."""
    return compare_columns(
        columns_from_table(local, "local", call="local"),
        columns_from_table(broker, "broker", call="broker"),
        account_id=ACCOUNT,
        timestamp=NOW,
        config=CONFIG,
    )


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
    ordered = keys[order] >> np.uint64(1)
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


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
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

    tables = (table(local), table(broker))
    candidates = {
        "floor (dict join over objects)": lambda: floor_join(local, broker),
        "pyarrow dictionary_encode + numpy (chosen)": lambda: arrow_numpy(*tables),
        "polars full join + expressions": lambda: polars_join(*tables),
        "polars hash + sort + numpy": lambda: polars_hash(*tables),
        "numpy alone (np.unique on strings)": lambda: numpy_unique(*tables),
    }
    times = interleave(candidates, repeats)
    ticker = Ticker()
    late = {name: percentile(ticker.measure(call), 99) for name, call in candidates.items()}
    ticker.close()
    floor = statistics.median(times["floor (dict join over objects)"])
    print(f"{n:,} positions a side, 1 % breaks, medians of {repeats}:")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:45s} {median:8.0f} ms  {median / floor:5.2f}x floor  ticker p99 {late[name]:6.1f} ms")


if __name__ == "__main__":
    main()
