"""Every position break is published with the fills behind it, when both books can say them."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from decimal import Decimal
from typing import Any, Self

import fakeredis
import pykka
import pytest

from reconciliation import (
    CorrectionPolicy,
    DiscrepancyType,
    InMemoryPortfolio,
    OrderFill,
    PaperBroker,
    ReconciliationConfig,
    ReconciliationService,
)
from reconciliation._domain.fills import Fill
from reconciliation._domain.models import ExplanationPolicy
from reconciliation.testing import ManualClock, capture_published, settle

ACCOUNT = "ACC-1"
NOW = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)


def order_fill(fill_id: str, symbol: str, quantity: int, price: str, *, minutes: int = 0) -> OrderFill:
    return OrderFill(f"O-{fill_id}", fill_id, ACCOUNT, symbol, quantity, price, NOW + dt.timedelta(minutes=minutes))


class Session:
    def __init__(
        self, book: Any = None, broker: Any = None, correction: CorrectionPolicy | None = None, **explanations: Any
    ) -> None:
        self.clock = ManualClock(start=NOW)
        self.book = book if book is not None else InMemoryPortfolio(ACCOUNT, Decimal(100_000))
        self.broker = broker if broker is not None else PaperBroker(ACCOUNT, Decimal(100_000))
        config = ReconciliationConfig(
            ACCOUNT,
            equity_tolerance_pct=Decimal(100),
            explanations=ExplanationPolicy(**explanations),
            correction=correction,
        )
        self.service = ReconciliationService(self.book, self.broker, fakeredis.FakeRedis(), config, clock=self.clock)

    def __enter__(self) -> Self:
        self._capturing = capture_published()
        self.capture = self._capturing.__enter__()
        asyncio.run(self.service.start())
        settle(self.service)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run(self.service.stop())
        self._capturing.__exit__(None, None, None)

    def run(self) -> list[dict[str, Any]]:
        """The position breaks of a run made now (cash and equity breaks left out)."""
        self.clock.advance(60)
        asyncio.run(self.service.reconcile())
        settle(self.service)
        latest = self.capture.results[-1]["run_id"]
        return [d for d in self.capture.discrepancies if d["run_id"] == latest and d["symbol"] is not None]

    def both(self, fill: OrderFill) -> None:
        self.book.apply_fill(fill)
        self.broker.apply_fill(fill)


def test_a_fill_the_engine_never_booked_explains_its_quantity_mismatch() -> None:
    with Session() as session:
        session.both(order_fill("E-1", "MSFT", 100, "410.00", minutes=1))
        session.run()
        session.broker.apply_fill(order_fill("E-2", "MSFT", 10, "412.30", minutes=2))
        (found,) = session.run()

    explanation = found["explanation"]
    assert (found["type"], explanation["verdict"]) == ("quantity_mismatch", "explained")
    assert [fill["fill_id"] for fill in explanation["missing_locally"]] == ["E-2"]
    assert explanation["summary"] == "explained: broker fill E-2 BUY 10 @ 412.30 10:02:00 not booked"


def test_a_fill_the_broker_does_not_have_explains_a_position_missing_at_the_broker() -> None:
    with Session() as session:
        session.book.apply_fill(order_fill("L-1", "GOOG", 5, "170.00", minutes=1))
        (found,) = session.run()

    assert (found["type"], found["explanation"]["verdict"]) == ("missing_broker", "explained")
    assert [fill["fill_id"] for fill in found["explanation"]["missing_at_broker"]] == ["L-1"]


def test_fills_booked_before_the_last_clean_run_are_not_read() -> None:
    with Session() as session:
        session.both(order_fill("E-1", "MSFT", 100, "410.00", minutes=1))
        session.run()
        session.book.apply_fill(order_fill("L-2", "MSFT", -30, "411.00", minutes=3))
        (found,) = session.run()

    assert [fill["fill_id"] for fill in found["explanation"]["missing_at_broker"]] == ["L-2"]
    assert found["explanation"]["missing_locally"] == []


def test_a_break_without_fills_on_either_side_is_published_unexplained() -> None:
    book = InMemoryPortfolio(ACCOUNT, Decimal(100_000))
    book.apply_fill(order_fill("L-1", "GOOG", 5, "170.00", minutes=-6000))
    with Session(book=book) as session:
        (found,) = session.run()

    assert (found["type"], found["explanation"]["verdict"]) == ("missing_broker", "unexplained")


class HangingBroker(PaperBroker):
    """A broker whose trade history never answers until released."""

    def __init__(self) -> None:
        super().__init__(ACCOUNT, Decimal(100_000))
        self.release = threading.Event()

    async def get_fills(self, account_id: str, symbol: str, since: dt.datetime) -> list[Fill]:
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        return await super().get_fills(account_id, symbol, since)


class PlainHangingBroker(HangingBroker):
    """The same, with a plain (blocking) `get_fills`."""

    def get_fills(self, account_id: str, symbol: str, since: dt.datetime) -> list[Fill]:  # type: ignore[override]
        self.release.wait(30)
        return self.fills(symbol, since)


@pytest.mark.parametrize("hanging", [HangingBroker, PlainHangingBroker], ids=["async", "plain"])
def test_a_trade_history_that_hangs_never_holds_the_break_back_it_goes_out_saying_so(
    hanging: type[HangingBroker],
) -> None:
    broker = hanging()
    try:
        with Session(broker=broker, timeout_seconds=0.3) as session:
            broker.apply_fill(order_fill("E-1", "MSFT", 10, "410.00", minutes=1))
            session.clock.advance(60)
            asyncio.run(session.service.reconcile())
            session.clock.advance(2)
            settle(session.service)
            (found,) = [d for d in session.capture.discrepancies if d["symbol"] == "MSFT"]
    finally:
        broker.release.set()

    assert found["explanation"]["verdict"] == "unexplained"
    assert "did not answer within" in found["explanation"]["note"]


class HostileBroker(PaperBroker):
    """A broker whose trade history is full of rubbish around the one real fill."""

    async def get_fills(self, account_id: str, symbol: str, since: dt.datetime) -> list[Any]:
        real = await super().get_fills(account_id, symbol, since)
        other = Fill("X-1", "O-X", "AAPL", 1, "1", since)
        return [*real, *real, other, "NaN", {"fill_id": "nope"}]


def test_hostile_fills_give_a_clear_outcome_and_never_lose_the_break() -> None:
    broker = HostileBroker(ACCOUNT, Decimal(100_000))
    with Session(broker=broker) as session:
        broker.apply_fill(order_fill("E-1", "MSFT", 10, "410.00", minutes=1))
        (found,) = session.run()

    explanation = found["explanation"]
    assert (explanation["verdict"], [f["fill_id"] for f in explanation["missing_locally"]]) == ("explained", ["E-1"])
    assert "1 fills of other positions, left out" in explanation["note"]
    assert "1 fills reported twice were taken once" in explanation["note"]
    assert "gave a fill that is not one" in explanation["note"]


class FloodingBroker(PaperBroker):
    async def get_fills(self, account_id: str, symbol: str, since: dt.datetime) -> Any:
        return (Fill(f"F-{i}", "O", symbol, 1, "1", since) for i in range(1_000_000))


def test_a_million_fills_are_read_up_to_the_cap() -> None:
    broker = FloodingBroker(ACCOUNT, Decimal(100_000))
    with Session(broker=broker, max_fills=100) as session:
        broker.apply_fill(order_fill("E-1", "MSFT", 10, "410.00", minutes=1))
        (found,) = session.run()

    explanation = found["explanation"]
    assert len(explanation["missing_locally"]) == 100
    assert explanation["verdict"] == "partly_explained"
    assert "gave more than 100 fills: the first 100 were read" in explanation["note"]


def test_explanations_can_be_turned_off() -> None:
    with Session(enabled=False) as session:
        session.broker.apply_fill(order_fill("E-1", "MSFT", 10, "410.00", minutes=1))
        (found,) = session.run()

    assert "explanation" not in found
    assert found["type"] == DiscrepancyType.MISSING_LOCAL.value


def test_explained_breaks_are_counted_by_verdict() -> None:
    from prometheus_client import CollectorRegistry  # noqa: PLC0415 - the metrics extra

    from reconciliation.metrics import ReconciliationMetrics  # noqa: PLC0415

    registry = CollectorRegistry()
    with Session() as session:
        ReconciliationMetrics(registry).watch(session.service)
        session.broker.apply_fill(order_fill("E-1", "MSFT", 10, "410.00", minutes=1))
        session.run()

    count = registry.get_sample_value(
        "reconciliation_explained_breaks_total", {"account": ACCOUNT, "verdict": "explained"}
    )
    assert count == 1


def test_an_exactly_explained_break_is_corrected_by_booking_the_missed_fill() -> None:
    policy = CorrectionPolicy(mode="apply", confirm_after_runs=1, types=["quantity_mismatch"])
    with Session(correction=policy) as session:
        session.both(order_fill("E-1", "MSFT", 100, "410.00", minutes=1))
        session.run()
        session.broker.apply_fill(order_fill("E-2", "MSFT", 10, "421.00", minutes=2))
        session.run()
        events = session.capture.corrections
        (held,) = session.book.get_positions(ACCOUNT)
        after = session.run()

    assert [e["status"] for e in events] == ["proposed", "confirmed", "applied", "verified"]
    assert [f["fill_id"] for f in events[-1]["fills"]] == ["E-2"]
    assert events[-1]["avg_cost"] is None
    assert (held.quantity, held.avg_cost) == (110, Decimal(4521) / 11)  # (100 x 410 + 10 x 421) / 110
    assert after == []


def test_booking_a_missed_fill_is_refused_above_max_notional_valued_at_its_price() -> None:
    policy = CorrectionPolicy(mode="apply", confirm_after_runs=1, types=["quantity_mismatch"], max_notional=4200)
    with Session(correction=policy) as session:
        session.both(order_fill("E-1", "MSFT", 100, "410.00", minutes=1))
        session.run()
        session.broker.apply_fill(order_fill("E-2", "MSFT", 10, "421.00", minutes=2))  # 4210 at its own price
        session.run()
        (held,) = session.book.get_positions(ACCOUNT)

    assert [e["status"] for e in session.capture.corrections] == ["proposed", "refused"]
    assert session.capture.corrections[-1]["notional"] == "4210.00"
    assert held.quantity == 100


def unexplained_break(unexplained: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A break no fill in the lookback explains, under a policy that corrects quantity breaks at once."""
    policy = CorrectionPolicy(mode="apply", confirm_after_runs=1, types=["quantity_mismatch"], unexplained=unexplained)
    with Session(correction=policy) as session:
        session.both(order_fill("E-1", "MSFT", 100, "410.00", minutes=1))
        session.run()
        session.broker.apply_fill(order_fill("E-2", "MSFT", 10, "421.00", minutes=-6000))  # before the lookback
        session.run()
    (found, *_) = (d for d in session.capture.discrepancies if d["symbol"] == "MSFT")
    return found, session.capture.corrections


def test_a_break_its_fills_do_not_explain_is_left_alone_when_the_policy_says_so() -> None:
    found, corrections = unexplained_break("leave")

    assert found["explanation"]["verdict"] == "unexplained"
    assert corrections == []


def test_a_break_its_fills_do_not_explain_is_corrected_to_the_broker_by_default() -> None:
    found, corrections = unexplained_break("correct")

    assert found["explanation"]["verdict"] == "unexplained"
    assert [c["status"] for c in corrections] == ["proposed", "confirmed", "applied", "verified"]
    assert corrections[-1]["fills"] == []


class _DeferredBroker(PaperBroker):
    """A broker whose plain `get_fills` hands back a coroutine (a sync wrapper over an async client)."""

    def get_fills(self, account_id: str, symbol: str, since: dt.datetime) -> Any:  # type: ignore[override]
        return PaperBroker.get_fills(self, account_id, symbol, since)


def test_a_plain_get_fills_that_answers_coroutines_is_read_all_the_same() -> None:
    with Session(broker=_DeferredBroker(ACCOUNT, Decimal(100_000))) as session:
        session.both(order_fill("E-1", "MSFT", 100, "410.00", minutes=1))
        session.run()
        session.broker.apply_fill(order_fill("E-2", "MSFT", 10, "412.30", minutes=2))
        (found,) = session.run()

    assert found["explanation"]["verdict"] == "explained"



def test_the_watchdog_gives_a_run_that_reads_fills_their_time_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import eventually  # noqa: PLC0415 - the tests' own helper

    from reconciliation import ReconcileRequest  # noqa: PLC0415
    from reconciliation._runtime import fetcher_actor  # noqa: PLC0415

    with Session(timeout_seconds=7) as session:  # book calls 30 s, the fills 7 s, the grace 10 s
        fetching: list[object] = []
        monkeypatch.setattr(fetcher_actor.FetcherActor, "_fetch", lambda _self, ticket: fetching.append(ticket))
        pending = session.service.ref.ask(ReconcileRequest(ACCOUNT), block=False)
        eventually(lambda: bool(fetching), what="the run reaching the fetcher")
        session.clock.advance(40)
        with pytest.raises(pykka.Timeout):
            pending.get(timeout=0.3)
        session.clock.advance(7)
        result = pending.get(timeout=5)

    assert result.error == "the run produced no result within 47 s and was abandoned"
