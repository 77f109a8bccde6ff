"""A bad day at the server's speed: a run of 10,000 breaks (the broker answered []), ask →
last payload in Redis, against what Redis itself needs for the same commands plus the floor
of the comparison. The CPU this process and the server used during each run is shown beside
it: on a shared machine the wall time also counts the waits for a CPU.

The Redis baseline is `redis-benchmark` on the same private server, one client, deeply
pipelined: an XADD (with the sink's MAXLEN ~) and a PUBLISH of a payload of the run's own
median size, as many of each as the run sends. The comparison's is the netting dict join of
`baselines.floor_join_netting` on the same books. Only on a private server: the baseline
pounds the server it measures.
"""

from __future__ import annotations

import csv
import gc
import io
import shutil
import subprocess
import time
from typing import TYPE_CHECKING

from _harness import Row, Sample
from _landed import Landings
from _service import start_service, stop_service
from baselines import floor_join_netting
from books import ACCOUNT, make_books

from reconciliation import ReconcileRequest
from reconciliation._publishing.redis_sink import DISCREPANCY_STREAM, STREAM_FIELD
from reconciliation._wire.payloads import DISCREPANCY_CHANNEL, iter_payloads

if TYPE_CHECKING:
    import redis

__all__ = ["bad_day_row"]

PIPELINE = 1_000
"""redis-benchmark's pipeline depth: the deepest the sink uses in one round trip."""

_BENCH_STREAM = "bench:bad-day:stream"
_BENCH_CHANNEL = "bench:bad-day:channel"


RATE_REQUESTS = 50_000
"""At least this many requests give redis-benchmark's rate (it times in milliseconds)."""


def _redis_benchmark_ms(port: int, requests: int, command: list[str]) -> float:
    """Milliseconds `requests` of `command` take at the rate `redis-benchmark` measures."""
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", "1", "-P", str(PIPELINE), "-n", str(max(requests, RATE_REQUESTS)), "--csv", *command],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    rows = list(csv.reader(io.StringIO(out)))
    return requests / float(rows[1][-7]) * 1000  # the test's name may hold commas: count from the end


def _server_cpu_seconds(client: redis.Redis) -> float:
    """The CPU the server has used (its main thread and the others), from INFO."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def bad_day_row(n: int, repeats: int, client: redis.Redis, *, private: bool) -> Row:
    figure = f"bad day: a run of {n:,} breaks (the broker answered []), ask → last payload in Redis"
    target = "≤ 3x redis-benchmark + compare floor"
    if not private or shutil.which("redis-benchmark") is None:
        return Row(figure, "not measured", "needs a private redis-server and redis-benchmark", "—", target, None)
    port = int(client.connection_pool.connection_kwargs["port"])
    local, _ = make_books(n)
    service = start_service(local, [], client)
    landings = Landings(client, notify=True)
    runs: list[float] = []
    servers: list[float] = []
    floors: list[float] = []
    process_cpus: list[float] = []
    server_cpus: list[float] = []
    found = 0
    try:
        landings.wait(str(service.ref.ask(ReconcileRequest(ACCOUNT), timeout=600).run_id))  # warm up
        for _ in range(repeats):
            gc.collect()
            server_cpu = _server_cpu_seconds(client)
            cpu = time.process_time()
            start = time.perf_counter()
            result = service.ref.ask(ReconcileRequest(ACCOUNT, requested_by="bench"), timeout=600)
            runs.append((landings.wait(str(result.run_id)) - start) * 1000)
            process_cpus.append((time.process_time() - cpu) * 1000)
            server_cpus.append((_server_cpu_seconds(client) - server_cpu) * 1000)
            found = len(result.discrepancies)
            texts = sorted((text for _, text in iter_payloads(result)), key=len)
            payload = texts[len(texts) // 2]
            xadd = ["XADD", _BENCH_STREAM, "MAXLEN", "~", "10000", "*", STREAM_FIELD, payload]
            servers.append(
                _redis_benchmark_ms(port, found, xadd)
                + _redis_benchmark_ms(port, found, ["PUBLISH", _BENCH_CHANNEL, payload])
            )
            gc.collect()
            start = time.perf_counter()
            floor_join_netting(local, [])
            floors.append((time.perf_counter() - start) * 1000)
    finally:
        landings.close()
        stop_service(service)
        client.delete(_BENCH_STREAM)
    run, server, floor = Sample(runs, "ms"), Sample(servers, "ms"), Sample(floors, "ms")
    ratio = run.median / (server.median + floor.median)
    return Row(
        figure=figure,
        measured=(
            f"{run.text()}; {found:,} discrepancies + 1 result ({DISCREPANCY_CHANNEL} and {DISCREPANCY_STREAM}); "
            f"CPU meanwhile: this process {Sample(process_cpus, 'ms').text()}, "
            f"redis-server {Sample(server_cpus, 'ms').text()}"
        ),
        baseline=(
            f"redis-benchmark, 1 client, pipeline {PIPELINE}, XADD MAXLEN ~ + PUBLISH of a median payload, "
            f"{found:,} each: {server.text()}; + compare floor {floor.text()}"
        ),
        ratio=f"{ratio:.2f}x",
        target=target,
        met=ratio <= 3.0,
    )


if __name__ == "__main__":
    import os
    import sys

    from _harness import render_table
    from _redis import PRIVATE, bench_redis
    from _service import quiet_logging

    quiet_logging()
    load_before = os.getloadavg()[0]
    with bench_redis(None) as (bench_client, server):
        row = bad_day_row(int(sys.argv[1]), int(sys.argv[2]), bench_client, private=server.startswith(PRIVATE))
    print(render_table([row]))
    print(f"{server}; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after", file=sys.stderr)
