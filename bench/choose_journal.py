"""How the outbox journal's store was chosen: what writing a run down, then deleting it once
Redis has it, costs each candidate, next to delivering the same run to Redis.

    python bench/choose_journal.py [runs] [repeats] [--postgres URL]   # default 200, 5

Each repeat journals `runs` runs one after another, as the Redis delivery actor does while
Redis answers: append the run (committed), then delete it (committed) — the price every
run pays for surviving a crash. The baseline is the work the journal protects: publishing
the same runs to a private redis-server, one script call each, through the package's sink.
A run is a result and five discrepancies (about 2 KB of JSON). The candidates:

- the chosen store: SQLite in WAL mode on the host, `synchronous=NORMAL` (a commit is
  in the operating system before it returns: it survives the process being killed);
- the same with `synchronous=FULL` (each commit waits for the disk: it survives a power cut);
- the audit store's PostgreSQL (`--postgres`, default the test server), a table of its own,
  each statement committed (PostgreSQL's default `synchronous_commit=on`).

Interleaved, medians of `repeats`, per run. The results are in docs/architecture.md.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _harness import interleave
from _redis import bench_redis
from books import ACCOUNT, NOW

from reconciliation._domain.ageing import AgeingUpdate
from reconciliation._domain.models import (
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    ReconciliationResult,
)
from reconciliation._domain.sinks import FinishedRun
from reconciliation._publishing.connection import publishing_client
from reconciliation._publishing.redis_sink import PendingRun, RedisSink
from reconciliation._runtime import journal as journal_module
from reconciliation._runtime.journal import Journal

if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def finished_run() -> FinishedRun:
    discrepancies = [
        Discrepancy(
            DiscrepancyType.QUANTITY_MISMATCH,
            DiscrepancySeverity.CRITICAL,
            f"SYM{i:04d}",
            Decimal(i + 1),
            Decimal(i + 2),
            NOW,
            ACCOUNT,
        )
        for i in range(5)
    ]
    result = ReconciliationResult(uuid.uuid4(), ACCOUNT, NOW, discrepancies, positions_checked=100)
    return FinishedRun(result, AgeingUpdate(result.run_id, ACCOUNT))


def sqlite_candidate(directory: Path, *, full: bool, items: list[tuple[PendingRun, bytes]]) -> Callable[[], None]:
    journal_module.JOURNAL_SYNC_FULL = full
    journal = Journal.open(str(directory))
    journal_module.JOURNAL_SYNC_FULL = False

    def run() -> None:
        for pending, data in items:
            seq = journal.append(pending.run_id, ACCOUNT, data)
            journal.remove([seq])

    return run


def postgres_candidate(url: str, items: list[tuple[PendingRun, bytes]]) -> tuple[Callable[[], None], Any]:
    import psycopg  # noqa: PLC0415 - only for this candidate

    table = f"bench_outbox_{uuid.uuid4().hex[:8]}"
    connection = psycopg.connect(url, autocommit=True)
    connection.execute(
        f"CREATE TABLE {table} (seq BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL, account_id TEXT NOT NULL, data BYTEA NOT NULL)"
    )

    def run() -> None:
        for pending, data in items:
            row = connection.execute(
                f"INSERT INTO {table} (run_id, account_id, data) VALUES (%s, %s, %s) RETURNING seq",  # noqa: S608 - our own name
                (pending.run_id, ACCOUNT, data),
            ).fetchone()
            connection.execute(f"DELETE FROM {table} WHERE seq = %s", (row[0],))  # noqa: S608 - our own name

    def drop() -> None:
        connection.execute(f"DROP TABLE {table}")
        connection.close()

    return run, drop


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    runs = int(args[0]) if args else 200
    repeats = int(args[1]) if len(args) > 1 else 5
    postgres = sys.argv[sys.argv.index("--postgres") + 1] if "--postgres" in sys.argv else DEFAULT_POSTGRES
    with bench_redis(None) as (client, where), tempfile.TemporaryDirectory() as tmp:
        sink = RedisSink(lambda: publishing_client(client), stream_maxlen=10_000)
        items = []
        for _ in range(runs):
            pending = sink.prepare(finished_run())
            items.append((pending, sink.encode(pending)))
        size = statistics.median(len(data) for _, data in items)

        def publish() -> None:
            fresh = [PendingRun(str(uuid.uuid4()), pending.payloads) for pending, _ in items]
            for pending in fresh:
                sink.send([pending])

        candidates: dict[str, Callable[[], None]] = {"Redis delivery (baseline)": publish}
        candidates["SQLite WAL, synchronous=NORMAL"] = sqlite_candidate(Path(tmp) / "normal", full=False, items=items)
        candidates["SQLite WAL, synchronous=FULL"] = sqlite_candidate(Path(tmp) / "full", full=True, items=items)
        drop = None
        try:
            candidates["PostgreSQL (audit store's server)"], drop = postgres_candidate(postgres, items)
        except Exception as error:  # noqa: BLE001 - a missing server leaves the row out, saying why
            print(f"PostgreSQL left out: {error}")
        try:
            times = interleave(candidates, repeats)
        finally:
            if drop is not None:
                drop()
            sink.close()
    baseline = statistics.median(times["Redis delivery (baseline)"]) / runs
    print(f"{runs} runs of {size:.0f} bytes, medians of {repeats}; Redis: {where}\n")
    print("| Candidate | Per run (append + delete) | Ratio to the Redis delivery |")
    print("|---|---|---|")
    for name, values in times.items():
        per_run = statistics.median(values) / runs
        print(f"| {name} | {per_run * 1000:,.0f} µs | {per_run / baseline:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
