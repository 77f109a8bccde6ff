"""`reconciliation check` against hostile statements: time, peak memory and output, per file.

Each attack is a pair of files written to a temporary directory, then checked by
`python -m reconciliation check --json` in a process of its own (its address space capped,
so that a regression cannot take the machine down), whose peak resident set is read from
the kernel (`wait4`). The files are those of issue 25: a short Parquet file of a million
rows of one symbol, the same with costs and market values, a file whose every position
breaks, four million rows, and a symbol that expands a few kilobytes into gigabytes. The
last rows are real statements of a million positions a side, for the multiple.

    python bench/statement_attacks.py                 # with the default limits
    python bench/statement_attacks.py --no-limits     # every limit raised past the files
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from collections.abc import Callable

ADDRESS_SPACE = 8 * 2**30
"""The most memory a checked process may map: far above what a bounded check needs."""
TIMEOUT_SECONDS = 900
"""A check still running after this is killed (exit -9)."""


@dataclass(frozen=True)
class Attack:
    name: str
    write: Callable[[Path], tuple[Path, Path]]


def _parquet(path: Path, columns: dict[str, Any]) -> Path:
    pq.write_table(pa.table(columns), path, compression="zstd")
    return path


def _symbols(count: int) -> pa.Array:
    return pa.array([f"S{i:08d}" for i in range(count)], pa.string())


def one_symbol(rows: int, *, costs: bool) -> Callable[[Path], tuple[Path, Path]]:
    def write(directory: Path) -> tuple[Path, Path]:
        broker = {
            "symbol": pa.array(["AAPL"] * rows, pa.string()),
            "quantity": pa.array([1] * rows, pa.int64()),
            "avg_cost": pa.array(["187.5" if costs else None] * rows, pa.string()),
        }
        if costs:
            broker["market_value"] = pa.array(["187.5"] * rows, pa.string())
        local = {"symbol": ["AAPL"], "quantity": pa.array([rows], pa.int64()), "avg_cost": ["187.5" if costs else None]}
        return _parquet(directory / "local.parquet", local), _parquet(directory / "broker.parquet", broker)

    return write


def distinct(rows: int, *, breaks_every: int) -> Callable[[Path], tuple[Path, Path]]:
    """`rows` positions a side; one in `breaks_every` differs (1: every one)."""

    def write(directory: Path) -> tuple[Path, Path]:
        symbols = _symbols(rows)
        local = {"symbol": symbols, "quantity": pa.array([1] * rows, pa.int64()), "avg_cost": pa.nulls(rows, pa.string())}
        quantities = [2 if i % breaks_every == 0 else 1 for i in range(rows)]
        broker = {"symbol": symbols, "quantity": pa.array(quantities, pa.int64()), "avg_cost": pa.nulls(rows, pa.string())}
        return _parquet(directory / "local.parquet", local), _parquet(directory / "broker.parquet", broker)

    return write


def long_symbol(rows: int, length: int) -> Callable[[Path], tuple[Path, Path]]:
    def write(directory: Path) -> tuple[Path, Path]:
        symbol = "X" * length
        broker = {
            "symbol": pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array([symbol])),
            "quantity": pa.array([1] * rows, pa.int64()),
            "avg_cost": pa.nulls(rows, pa.string()),
        }
        local = {"symbol": ["AAPL"], "quantity": pa.array([1], pa.int64()), "avg_cost": pa.nulls(1, pa.string())}
        return _parquet(directory / "local.parquet", local), _parquet(directory / "broker.parquet", broker)

    return write


ATTACKS = (
    Attack("1M rows of one symbol", one_symbol(1_000_000, costs=False)),
    Attack("1M rows of one symbol, costs and values", one_symbol(1_000_000, costs=True)),
    Attack("1M positions, every one a break", distinct(1_000_000, breaks_every=1)),
    Attack("4M positions", distinct(4_000_000, breaks_every=100)),
    Attack("1M rows of one 100 kB symbol", long_symbol(1_000_000, 100_000)),
    Attack("tiny: 1 position a side (the interpreter)", distinct(1, breaks_every=2)),
    Attack("1M positions a side, 1 % breaks (a real statement)", distinct(1_000_000, breaks_every=100)),
)

NO_LIMITS = "[limits]\nmax_rows = 100_000_000\nmax_symbols = 100_000_000\nmax_entries_per_symbol = 100_000_000\n"


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def measure(local: Path, broker: Path, config: Path | None) -> dict[str, Any]:
    """One `check --json` of the two files: exit code, seconds, peak RSS (MiB), output bytes, stderr."""
    command = [sys.executable, "-m", "reconciliation", "check", "--local", str(local), "--broker", str(broker), "--json"]
    if config is not None:
        command += ["--config", str(config)]
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=errors, preexec_fn=_limit_address_space)  # noqa: PLW1509 - this interpreter; only setrlimit before exec
        timer = threading.Timer(TIMEOUT_SECONDS, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except KeyboardInterrupt:
            process.kill()
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0, os.SEEK_END)
        errors.seek(0)
        return {
            "exit": process.returncode,
            "seconds": seconds,
            "peak_mib": usage.ru_maxrss / 1024,
            "output_bytes": output.tell(),
            "stderr": errors.read().decode(errors="replace").strip().splitlines()[:1],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-limits", action="store_true", help="raise every statement limit past the files")
    parser.add_argument("--only", help="run only the attacks whose name contains this")
    arguments = parser.parse_args()
    print("| File | Sizes (local, broker) | Exit | Time | Peak resident set | Output |")
    print("|---|---|---|---|---|---|")
    for attack in ATTACKS:
        if arguments.only and arguments.only not in attack.name:
            continue
        with tempfile.TemporaryDirectory() as scratch:
            directory = Path(scratch)
            local, broker = attack.write(directory)
            config = None
            if arguments.no_limits:
                config = directory / "limits.toml"
                config.write_text(NO_LIMITS)
            found = measure(local, broker, config)
            sizes = f"{local.stat().st_size / 1024:,.0f} kB, {broker.stat().st_size / 1024:,.0f} kB"
            said = f" ({found['stderr'][0][:110]})" if found["exit"] == 2 and found["stderr"] else ""
            print(
                f"| {attack.name} | {sizes} | {found['exit']}{said} | {found['seconds']:.1f} s | "
                f"{found['peak_mib']:,.0f} MiB | {found['output_bytes'] / 2**20:,.1f} MiB |",
                flush=True,
            )


if __name__ == "__main__":
    main()
