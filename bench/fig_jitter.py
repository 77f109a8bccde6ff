"""Engine jitter: how late an unrelated actor answers while a big run is in progress."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import pykka
from _harness import Row, Sample, percentile
from _service import start_service, stop_service
from books import ACCOUNT, make_books

from reconciliation import ReconcileRequest

if TYPE_CHECKING:
    import redis

__all__ = ["jitter_row"]

PING_GAP_SECONDS = 0.0005


class EngineActor(pykka.ThreadingActor):
    """Stands for any actor of the host engine: it answers at once."""

    def on_receive(self, message: Any) -> Any:
        return message


def _ping_while(engine: pykka.ActorRef[Any], busy: threading.Event | None, seconds: float) -> list[float]:
    """Round trips (µs) for `seconds`, or (with `busy`) for as long as `busy` is set."""
    rtts = []
    deadline = time.perf_counter() + seconds
    while busy.is_set() if busy is not None else time.perf_counter() < deadline:
        start = time.perf_counter()
        engine.ask(1, timeout=10)
        elapsed = (time.perf_counter() - start) * 1e6
        if busy is None or busy.is_set():
            rtts.append(elapsed)
        time.sleep(PING_GAP_SECONDS)
    return rtts


def jitter_row(n: int, runs: int, client: redis.Redis) -> Row:
    local, broker = make_books(n)
    service = start_service(local, broker, client)
    engine = EngineActor.start()
    busy_p99: list[float] = []
    idle_p99: list[float] = []
    run_ms: list[float] = []
    try:
        service.ref.ask(ReconcileRequest(ACCOUNT), timeout=120)  # warm up
        for _ in range(runs):
            busy = threading.Event()
            busy.set()
            done = threading.Event()

            def run(busy: threading.Event = busy, done: threading.Event = done) -> None:
                start = time.perf_counter()
                service.ref.ask(ReconcileRequest(ACCOUNT, requested_by="bench"), timeout=120)
                run_ms.append((time.perf_counter() - start) * 1000)
                busy.clear()
                done.set()

            thread = threading.Thread(target=run, name="bench-risk")
            thread.start()
            rtts = _ping_while(engine, busy, 0)
            done.wait()
            thread.join()
            busy_p99.append(percentile(rtts, 99))
            idle_p99.append(percentile(_ping_while(engine, None, run_ms[-1] / 1000), 99))
    finally:
        engine.stop()
        stop_service(service)
    busy_s, idle_s = Sample(busy_p99, "µs"), Sample(idle_p99, "µs")
    ratio = busy_s.median / idle_s.median
    return Row(
        figure=f"engine jitter: p99 round trip to an unrelated actor during a {n:,}-position run",
        measured=f"{busy_s.text()} (p99 of each run; runs took {Sample(run_ms, 'ms').text()})",
        baseline=f"service idle {idle_s.text()}",
        ratio=f"{ratio:.1f}x",
        target="≤ 3x and ≤ 5 ms",
        met=ratio <= 3.0 and busy_s.median <= 5000,
    )
