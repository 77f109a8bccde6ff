"""`reconciliation check` end to end: a whole command on two Parquet files of real-shaped
books, against the same work in-process.

The command runs as an operator runs it, output to a pipe (not a terminal: plain lines);
the in-process baseline reads and checks both files and compares them
(`read_statements` + `reconcile_once`, what the command does before it prints), in this
warm process. Interleaved; the command's extra is start-up, imports and printing. The
CPU time of each (user + system, every thread) is given beside the wall time: on a shared
machine it moves less with the other work than the wall time does.

    python bench/fig_check.py 100000 3   # just this figure (size, repeats)
"""

from __future__ import annotations

import datetime as dt
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import Row, Sample, interleave, render_table
from books import make_books

from reconciliation._cli.check import load_check_config, read_statements, reconcile_once

__all__ = ["check_row"]

LIMITS = "[limits]\nmax_rows = 100_000_000\nmax_symbols = 100_000_000\nmax_entries_per_symbol = 100_000_000\n"
"""Raised past the bench's files, so that the default limits (2M rows) never decide."""


def check_row(n: int, repeats: int) -> Row:
    figure = f"`reconciliation check` of two {n:,}-position Parquet files (1 % breaks), output to a pipe"
    try:
        import pyarrow as pa  # noqa: PLC0415 - the fast extra's
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError as exc:
        return Row(figure, f"skipped: the fast extra is not installed ({exc})", "—", "—", "≤ 1.5x", None)
    from fig_columnar import _table  # noqa: PLC0415 - its Parquet layout

    local, broker = make_books(n, 1.0)
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        paths = (directory / "book.parquet", directory / "statement.parquet")
        pq.write_table(_table(pa, local), paths[0])
        pq.write_table(_table(pa, broker, market_values=True), paths[1])
        del local, broker
        config_path = directory / "check.toml"
        config_path.write_text(LIMITS)
        config = load_check_config(config_path)
        command = [
            sys.executable, "-m", "reconciliation", "check", "--config", str(config_path),
            "--local", str(paths[0]), "--broker", str(paths[1]),
        ]  # fmt: skip
        exits: list[int] = []
        cpu: dict[str, list[float]] = {"command": [], "in-process": []}

        def whole_command() -> None:
            before = _children_cpu()
            with tempfile.TemporaryFile() as output:
                exits.append(subprocess.run(command, stdout=output, stderr=subprocess.PIPE, check=False).returncode)
            cpu["command"].append((_children_cpu() - before) * 1000.0)

        def in_process() -> None:
            before = time.process_time()
            book, reported = read_statements(config, paths[0], paths[1])
            reconcile_once(config, book, reported, client=None, now=dt.datetime.now(dt.UTC))
            cpu["in-process"].append((time.process_time() - before) * 1000.0)

        times = interleave({"command": whole_command, "in-process": in_process}, repeats)
    if set(exits) - {0, 1}:
        return Row(figure, f"the command failed (exit {sorted(set(exits))})", "—", "—", "≤ 1.5x", met=False)
    ours, theirs = Sample(times["command"], "ms"), Sample(times["in-process"], "ms")
    ours_cpu, theirs_cpu = (Sample(cpu[name][-repeats:], "ms") for name in ("command", "in-process"))
    ratio = ours.median / theirs.median
    return Row(
        figure=figure,
        measured=f"{ours.text()} wall time, the whole process; CPU {ours_cpu.text()}",
        baseline=f"read_statements + reconcile_once in-process {theirs.text()}; CPU {theirs_cpu.text()}",
        ratio=f"{ratio:.2f}x (CPU {ours_cpu.median / theirs_cpu.median:.2f}x)",
        target="≤ 1.5x",
        met=ratio <= 1.5,
    )


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    started = time.perf_counter()
    print(render_table([check_row(size, count)]))
    print(f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
