"""Every goal of issue 27, measured in one process, at the sizes the issue names.

    python bench/goals27.py                  # 100k and 1M books, 10k breaks, 2,000 accounts
    python bench/goals27.py --sizes 20000 --accounts 50 200 --positions 50   # a quick look

The same functions `bench/run.py` calls; the table is printed (Markdown) for
docs/benchmarks.md's issue-27 section. Each row's ratio is to its baseline in this run.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

from _harness import Row, render_table
from _redis import PRIVATE, bench_redis
from _service import quiet_logging
from books import make_books
from fig_accounts import accounts_rows
from fig_bad_day import bad_day_row
from fig_check import check_row
from fig_columnar import columnar_rows
from fig_compare import time_rows
from fig_fill_path import fill_path_row
from fig_gc import gc_row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--breaks", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, nargs="*", default=[500, 2_000], help="none: skip")
    parser.add_argument("--positions", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    quiet_logging()
    started = time.perf_counter()
    rows: list[Row] = []

    def step(what: str) -> None:
        print(f"  [{time.perf_counter() - started:6.0f} s] {what}", file=sys.stderr, flush=True)

    for n in args.sizes:
        books = {0.0: make_books(n), 1.0: make_books(n, 1.0)}
        gc.freeze()
        rows += time_rows(n, books, args.repeats)
        del books
        gc.unfreeze()
        gc.collect()
        step(f"compare {n:,}")
    rows.append(gc_row(min(args.sizes), 3))
    step("ticker during a run")
    for n in args.sizes:
        rows += columnar_rows(n, args.repeats)[:2]
        step(f"columnar {n:,}")
    rows.append(check_row(max(args.sizes), 3))
    step("check end to end")
    with bench_redis(None) as (client, server):
        private = server.startswith(PRIVATE)
        rows.append(bad_day_row(args.breaks, args.repeats, client, private=private))
        step("bad day")
        rows.append(fill_path_row(100, 60, client, private=private))
        step("fill path")
        if args.accounts:
            rows += accounts_rows(tuple(args.accounts), args.positions, args.seconds, client)
            step("accounts")
    print(f"{server}; {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(render_table(rows))
    for row in rows:
        for note in row.notes:
            print(f"- {row.figure}: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
