"""The fills behind a run's position breaks: what explaining them adds to the run.

Every position of the book is a quantity break (the broker holds one more), and each side
answers `fills` fills per position from its own store, built on its own: `fills - 1`
executions both sides booked (the same ids, separate objects) and, on the broker's side
alone, the one the engine missed (the gap, exactly). Measured against the comparison of the
same run, in the same process, interleaved: first the matching alone (fills already read),
then whole runs through the service with explanations on and off, whose difference is
what reading the fills through both books' `get_fills` and matching them adds.
"""

from __future__ import annotations

import datetime as dt
import gc
import time
from decimal import Decimal
from typing import TYPE_CHECKING

from _harness import Row, Sample, interleave
from _service import CASH, FixedBook, start_service, stop_service
from books import ACCOUNT, NOW, make_snapshot

from reconciliation import ReconcileRequest, ReconciliationConfig
from reconciliation._domain.compare import Comparison, compare
from reconciliation._domain.fills import Fill, FillWindows, explained
from reconciliation._domain.models import AssetType, BrokerPosition, ExplanationPolicy, Position
from reconciliation.testing import ScriptedBroker

if TYPE_CHECKING:
    import redis

__all__ = ["explain_rows"]

_WINDOW = dt.timedelta(seconds=60)


def _books(breaks: int) -> tuple[list[Position], list[BrokerPosition]]:
    local = [Position(f"SYM{i:06d}", Decimal(100 + i % 97), Decimal("25.10")) for i in range(breaks)]
    broker = [
        BrokerPosition("".join(("SYM", f"{i:06d}")), Decimal(101 + i % 97), Decimal("25.10"), Decimal(2535))
        for i in range(breaks)
    ]
    return local, broker


def _fills(breaks: int, per_side: int, *, broker: bool) -> dict[str, list[Fill]]:
    """Each symbol's fills as one side's store gives them: its own strings and Decimals."""
    book: dict[str, list[Fill]] = {}
    for i in range(breaks):
        symbol = f"SYM{i:06d}" if broker else "".join(("SYM", f"{i:06d}"))
        fills = [
            Fill(f"E-{i}-{k}", f"O-{i}-{k // 4}", symbol, Decimal(1), Decimal("25.10"), NOW - dt.timedelta(seconds=k))
            for k in range(per_side - 1)
        ]
        if broker:
            fills.append(Fill(f"E-{i}-missed", f"O-{i}-missed", symbol, Decimal(1), Decimal("25.12"), NOW))
        book[symbol] = fills
    return book


class _FillingBook(FixedBook):
    def __init__(self, positions: list[Position], fills: dict[str, list[Fill]]) -> None:
        super().__init__(positions)
        self.fills = fills

    def get_fills(self, account_id: str, symbol: str, since: dt.datetime) -> list[Fill]:  # noqa: ARG002
        return self.fills[symbol]


class _FillingBroker(ScriptedBroker):
    def __init__(
        self, positions: list[BrokerPosition], fills: dict[str, list[Fill]], account_id: str = ACCOUNT
    ) -> None:
        super().__init__(account_id, positions, cash=CASH, total_equity=CASH)
        self.fills = fills

    def get_fills(self, account_id: str, symbol: str, since: dt.datetime) -> list[Fill]:  # noqa: ARG002
        return self.fills[symbol]


def explain_rows(breaks: int, per_side: int, repeats: int, client: redis.Redis) -> list[Row]:
    local, broker = _books(breaks)
    local_fills, broker_fills = _fills(breaks, per_side, broker=False), _fills(breaks, per_side, broker=True)
    return [
        _matching_row(local, broker, local_fills, broker_fills, repeats, per_side),
        _run_row(local, broker, local_fills, broker_fills, repeats, per_side, client),
    ]


def _matching_row(
    local: list[Position],
    broker: list[BrokerPosition],
    local_fills: dict[str, list[Fill]],
    broker_fills: dict[str, list[Fill]],
    repeats: int,
    per_side: int,
) -> Row:
    config = ReconciliationConfig(ACCOUNT)
    snapshot = make_snapshot(local, broker)
    compared: list[Comparison] = [compare(snapshot, config)]
    wanted = FillWindows().wanted(compared[0].discrepancies, snapshot, ExplanationPolicy(max_breaks=len(local)))
    mine = {(symbol, AssetType.STOCK): local_fills[symbol] for symbol, _, _ in wanted}
    theirs = {(symbol, AssetType.STOCK): broker_fills[symbol] for symbol, _, _ in wanted}
    verdicts: set[str] = set()

    def matching() -> None:
        done = explained(compared[0], wanted, mine, theirs, None, window=_WINDOW)
        verdicts.update(d.explanation.verdict for d in done.discrepancies if d.explanation is not None)

    times = interleave({"compare": lambda: compare(snapshot, config), "explain": matching}, repeats)
    alone, added = Sample(times["compare"], "ms"), Sample(times["explain"], "ms")
    ratio = added.median / alone.median
    return Row(
        figure=(
            f"explaining {len(wanted):,} position breaks, {per_side} fills at the broker and {per_side - 1} in the book each "
            f"(matching the fills read; verdicts: {', '.join(sorted(verdicts))})"
        ),
        measured=added.text(),
        baseline=f"comparing the same run {alone.text()}",
        ratio=f"{ratio:.2f}x",
        target="≤ 1x",
        met=ratio <= 1.0,
    )


def _run_row(
    local: list[Position],
    broker: list[BrokerPosition],
    local_fills: dict[str, list[Fill]],
    broker_fills: dict[str, list[Fill]],
    repeats: int,
    per_side: int,
    client: redis.Redis,
) -> Row:
    config = ReconciliationConfig(ACCOUNT)
    snapshot = make_snapshot(local, broker)
    policy = ExplanationPolicy(max_breaks=len(local), timeout_seconds=600)
    services = {
        name: start_service(
            local,
            broker,
            client,
            portfolio=_FillingBook(local, local_fills),
            broker_query=_FillingBroker(broker, broker_fills, f"{ACCOUNT}-{name}"),
            explanations=explanations,
            account_id=f"{ACCOUNT}-{name}",
        )
        for name, explanations in (("on", policy), ("off", ExplanationPolicy(enabled=False)))
    }
    try:
        explained_breaks: dict[str, int] = {}

        def run(name: str) -> float:
            start = time.perf_counter()
            result = services[name].ref.ask(ReconcileRequest(f"{ACCOUNT}-{name}", requested_by="bench"), timeout=600)
            took = (time.perf_counter() - start) * 1000
            if result.error is not None:
                msg = f"the {name} run failed: {result.error}"
                raise RuntimeError(msg)
            explained_breaks[name] = sum(d.explanation is not None for d in result.discrepancies)
            return took

        for name in services:
            run(name)
        times: dict[str, list[float]] = {name: [] for name in services}
        comparing: list[float] = []
        for _ in range(repeats):
            for name in services:
                gc.collect()
                times[name].append(run(name))
            gc.collect()
            start = time.perf_counter()
            compare(snapshot, config)
            comparing.append((time.perf_counter() - start) * 1000)
    finally:
        for service in services.values():
            stop_service(service)
    on, off, alone = Sample(times["on"], "ms"), Sample(times["off"], "ms"), Sample(comparing, "ms")
    added = on.median - off.median
    ratio = added / alone.median
    return Row(
        figure=(
            f"a whole run of {len(local):,} position breaks with their fills read through both books' get_fills "
            f"({per_side} at the broker and {per_side - 1} in the book each; {explained_breaks['on']:,} explained), ask → result"
        ),
        measured=f"{on.text()}: +{added:.1f} ms over the same run without explanations ({off.text()})",
        baseline=f"comparing the same run {alone.text()}",
        ratio=f"{ratio:.2f}x (added / comparison)",
        target="≤ 1x",
        met=ratio <= 1.0,
    )
