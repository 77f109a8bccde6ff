"""Engine jitter while a big run is in progress, from the ask until its last payload is in Redis.

Two views of the same harm: how late a 1 ms ticker thread wakes (the engine's own
periodic work), and how late an unrelated actor answers a round trip. Each is measured
against the same probe while the service is idle, for as long as the run took.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import pykka
from _harness import Row, Sample, percentile
from _landed import Landings
from _service import start_service, stop_service
from _ticker import Ticker
from books import ACCOUNT, make_books

from reconciliation import ReconcileRequest

if TYPE_CHECKING:
    import redis

    from reconciliation import ReconciliationService

__all__ = ["jitter_rows"]

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


class _Run:
    """One run, ask → last payload in Redis, in a thread of its own (as the risk layer would ask)."""

    def __init__(self, service: ReconciliationService, landings: Landings) -> None:
        self.busy = threading.Event()
        self.busy.set()
        self.ms = 0.0
        self._service, self._landings = service, landings
        self._thread = threading.Thread(target=self._run, name="bench-risk")
        self._thread.start()

    def _run(self) -> None:
        try:
            start = time.perf_counter()
            result = self._service.ref.ask(ReconcileRequest(ACCOUNT, requested_by="bench"), timeout=600)
            self.ms = (self._landings.wait(str(result.run_id)) - start) * 1000
        finally:
            self.busy.clear()

    def join(self) -> float:
        self._thread.join()
        return self.ms


def jitter_rows(n: int, runs: int, client: redis.Redis, *, private: bool) -> list[Row]:
    local, broker = make_books(n, 1.0)
    service = start_service(local, broker, client)
    landings = Landings(client, notify=private)
    engine = EngineActor.start()
    ticker = Ticker()
    busy_p99: list[float] = []
    idle_p99: list[float] = []
    tick: dict[str, list[tuple[float, float]]] = {"run": [], "idle": []}
    run_ms: list[float] = []
    try:
        landings.wait(str(service.ref.ask(ReconcileRequest(ACCOUNT), timeout=600).run_id))  # warm up
        for _ in range(runs):
            late = ticker.measure(lambda: run_ms.append(_Run(service, landings).join()))
            tick["run"].append((percentile(late, 99), max(late, default=0.0)))
            late = ticker.measure(lambda: time.sleep(run_ms[-1] / 1000))
            tick["idle"].append((percentile(late, 99), max(late, default=0.0)))
            run = _Run(service, landings)
            rtts = _ping_while(engine, run.busy, 0)
            run_ms.append(run.join())
            busy_p99.append(percentile(rtts, 99))
            idle_p99.append(percentile(_ping_while(engine, None, run_ms[-1] / 1000), 99))
    finally:
        ticker.close()
        engine.stop()
        landings.close()
        stop_service(service)
    return [_ticker_row(n, tick, run_ms), _round_trip_row(n, busy_p99, idle_p99, run_ms)]


def _ticker_row(n: int, tick: dict[str, list[tuple[float, float]]], run_ms: list[float]) -> Row:
    p99 = {name: Sample([t[0] for t in values], "ms") for name, values in tick.items()}
    worst = {name: Sample([t[1] for t in values], "ms") for name, values in tick.items()}
    return Row(
        figure=f"engine jitter: 1 ms ticker's oversleep during a {n:,}-position run with 1 % breaks, ask → last payload in Redis",
        measured=f"p99 {p99['run'].text()}, max {worst['run'].text()} (runs took {Sample(run_ms, 'ms').text()})",
        baseline=f"service idle: p99 {p99['idle'].text()}, max {worst['idle'].text()}",
        ratio=f"{p99['run'].median / max(p99['idle'].median, 1e-3):.1f}x p99",
        target="p99 ≤ 5 ms and max ≤ 10 ms",
        met=p99["run"].median <= 5 and worst["run"].median <= 10,
    )


def _round_trip_row(n: int, busy_p99: list[float], idle_p99: list[float], run_ms: list[float]) -> Row:
    busy_s, idle_s = Sample(busy_p99, "µs"), Sample(idle_p99, "µs")
    ratio = busy_s.median / idle_s.median
    return Row(
        figure=f"engine jitter: p99 round trip to an unrelated actor during the same {n:,}-position runs",
        measured=f"{busy_s.text()} (p99 of each run; runs took {Sample(run_ms, 'ms').text()})",
        baseline=f"service idle {idle_s.text()}",
        ratio=f"{ratio:.1f}x",
        target="≤ 3x and ≤ 5 ms",
        met=ratio <= 3.0 and busy_s.median <= 5000,
    )
