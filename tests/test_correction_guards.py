"""Auto-correction cannot hurt the book: each attack on apply mode is refused, held or made harmless.

Each test is a running service (fakeredis, a manual clock) in apply mode, confirmed by one
run, whose broker answers what an attacker or a glitch would make it answer.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any, Self

import fakeredis
import pytest

from reconciliation import (
    BrokerPosition,
    Correction,
    CorrectionLimits,
    CorrectionPolicy,
    LocalAccount,
    PlausibilityPolicy,
    Position,
    ReconciliationConfig,
    ReconciliationService,
)
from reconciliation._publishing.leases import Lease
from reconciliation._runtime.runtime import _refusal
from reconciliation.testing import ManualClock, ScriptedBroker, capture_published, settle

ACCOUNT = "ACC-1"
SETTLE_SECONDS = 60.0
"""Generous: a run of a thousand breaks on a shared, loaded machine (settling returns as soon as it is done)."""


class Book:
    """The engine's book as a list of positions; corrections are counted and applied to it."""

    def __init__(self, positions: list[Position] = (), *, cash: int = 100_000) -> None:  # type: ignore[assignment]
        self.positions = {p.symbol: p for p in positions}
        self.cash = Decimal(cash)
        self.given: list[Correction] = []

    def get_positions(self, account_id: str) -> list[Position]:
        return list(self.positions.values())

    def get_account(self, account_id: str) -> LocalAccount:
        return LocalAccount(account_id, self.cash, self.cash)

    def apply_correction(self, correction: Correction) -> None:
        self.given.append(correction)
        if correction.cash is not None:
            self.cash += correction.cash
        elif correction.quantity is not None and correction.symbol is not None:
            held = self.positions.get(correction.symbol)
            quantity = correction.quantity + (held.quantity if held else 0)
            self.positions[correction.symbol] = Position(correction.symbol, quantity, correction.price)


class Session:
    def __init__(
        self,
        book: Book,
        broker: ScriptedBroker,
        *,
        redis: Any = None,
        plausibility: PlausibilityPolicy | None = None,
        **policy: Any,
    ) -> None:
        self.book, self.broker = book, broker
        self.redis = redis if redis is not None else fakeredis.FakeRedis()
        config = ReconciliationConfig(
            ACCOUNT,
            equity_tolerance_pct=Decimal(100),
            correction=CorrectionPolicy(mode="apply", confirm_after_runs=1, **policy),
            plausibility=plausibility or PlausibilityPolicy(),
        )
        self.service = ReconciliationService(book, broker, self.redis, config, clock=ManualClock())

    def __enter__(self) -> Self:
        self._capturing = capture_published()
        self.capture = self._capturing.__enter__()
        asyncio.run(self.service.start())
        settle(self.service, SETTLE_SECONDS)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run(self.service.stop())
        self._capturing.__exit__(None, None, None)

    def run(self, times: int = 1) -> None:
        for _ in range(times):
            asyncio.run(self.service.reconcile())
            settle(self.service, SETTLE_SECONDS)

    def events(self) -> list[dict[str, Any]]:
        return list(self.capture.corrections)

    def statuses(self) -> list[str]:
        return [event["status"] for event in self.events()]


def book_of(count: int) -> list[Position]:
    return [Position(f"S{i:03d}", 10, "100") for i in range(count)]


def broker_of(count: int) -> list[BrokerPosition]:
    return [BrokerPosition(f"S{i:03d}", 10, "100", "1000") for i in range(count)]


@pytest.mark.parametrize(
    "phantom",
    [BrokerPosition("PHNTM", 1_000_000_000, "0", "0"), BrokerPosition("PHNTM", 1_000_000_000, None, "0")],
    ids=["cost 0", "no cost, market value 0"],
)
def test_a_phantom_position_without_a_positive_price_is_refused_never_booked(phantom: BrokerPosition) -> None:
    book = Book(book_of(5))
    with Session(book, ScriptedBroker(ACCOUNT, [*broker_of(5), phantom], cash=Decimal(100_000)), max_notional=25_000) as session:
        session.run()

        assert session.statuses() == ["proposed", "refused"]
        assert "its value is unknown" in session.events()[-1]["reason"]
        assert book.given == []


def test_a_position_is_valued_at_the_larger_of_both_sides_prices() -> None:
    book = Book([Position("NVDA", 10, "500")])
    with Session(book, ScriptedBroker(ACCOUNT, [BrokerPosition("NVDA", 60, "1", "60")], cash=Decimal(100_000)), max_notional=24_999) as session:
        session.run()

        assert session.statuses() == ["proposed", "refused"]
        assert session.events()[-1]["notional"] == "25000"  # 50 x 500, the book's cost, not the broker's 1
        assert book.given == []


def test_two_empty_broker_answers_change_nothing() -> None:
    book = Book(book_of(200))
    broker = ScriptedBroker(ACCOUNT, broker_of(200), cash=Decimal(100_000))
    with Session(book, broker) as session:
        broker.then_return([])
        broker.then_return([])
        session.run(2)
        suspect = [run.suspect for run in session.capture.runs()[-2:]]

        assert all(reason and "0 positions where recent answers held 200" in reason for reason in suspect)
        assert session.statuses() == []
        assert book.given == []
        assert len(book.positions) == 200


def test_an_empty_answer_at_startup_is_judged_against_the_book() -> None:
    book = Book(book_of(200))
    broker = ScriptedBroker(ACCOUNT, broker_of(200), cash=Decimal(100_000))
    broker.then_return([])
    with Session(book, broker) as session:
        assert session.capture.runs()[0].suspect is not None
        assert book.given == []


def test_a_cash_glitch_is_suspect_and_never_booked() -> None:
    book = Book(book_of(20))
    broker = ScriptedBroker(ACCOUNT, broker_of(20), cash=Decimal(100_000))
    with Session(book, broker) as session:
        broker.cash = Decimal(1_100_000)
        session.run(2)

        assert "its cash is 1100000" in (session.capture.runs()[-1].suspect or "")
        assert book.given == []
        assert book.cash == 100_000


def test_a_new_accounts_first_purchases_are_not_suspect() -> None:
    book = Book(cash=100_000)
    broker = ScriptedBroker(ACCOUNT, [], cash=Decimal(100_000))
    with Session(book, broker, types=["missing_local"]) as session:
        broker.positions = [BrokerPosition("NVDA", 300, "150", "45000")]  # booked by the broker alone
        broker.cash = Decimal(55_000)
        session.run()
        broker.positions = [*broker.positions, BrokerPosition("AAPL", 25, "200", "5000")]
        broker.cash = Decimal(50_000)
        session.run()

        assert [run.suspect for run in session.capture.runs()] == [None] * len(session.capture.runs())
        assert [e["symbol"] for e in session.events() if e["status"] == "verified"] == ["NVDA", "AAPL"]


def test_a_notional_ten_times_the_usual_is_suspect_and_never_booked() -> None:
    book = Book(book_of(20))
    broker = ScriptedBroker(ACCOUNT, broker_of(20), cash=Decimal(100_000))
    with Session(book, broker) as session:
        broker.positions = [BrokerPosition(f"S{i:03d}", 100, "100", "10000") for i in range(20)]
        session.run(2)

        assert "its gross notional is 200000 where recent answers had 20000" in (session.capture.runs()[-1].suspect or "")
        assert book.given == []


def test_the_aggregate_limits_stop_a_thousand_corrections_just_under_max_notional() -> None:
    book = Book()
    broker = ScriptedBroker(ACCOUNT, [BrokerPosition(f"S{i:04d}", 1, "24950", "24950") for i in range(1000)])
    lenient = PlausibilityPolicy(min_position_change=10**6, max_notional_change=Decimal(10**6), max_cash_change=Decimal(10**6))
    with Session(book, broker, plausibility=lenient, max_notional=25_000) as session:
        after_start = len(book.given)
        session.run(10)

        assert after_start == 50  # ten a run: the startup run and the four runs that checked them
        assert len(book.given) == 50
        assert session.statuses().count("held") == 1
        assert "limit per_run (10)" in next(e["reason"] for e in session.events() if e["status"] == "held")
        assert "limit per_day (50)" in session.service.health().corrections_held[ACCOUNT]


def test_a_limit_on_notional_holds_what_counts_would_allow() -> None:
    book = Book()
    broker = ScriptedBroker(ACCOUNT, [BrokerPosition(f"S{i}", 1, "1000", "1000") for i in range(5)], cash=Decimal(100_000))
    limits = CorrectionLimits(per_run=None, per_day=None, notional_per_day=Decimal(2500))
    lenient = PlausibilityPolicy(min_position_change=100, max_notional_change=Decimal(100))
    with Session(book, broker, plausibility=lenient, limits=limits) as session:
        session.run(3)

        assert len(book.given) == 2
        assert "notional_per_day (2500)" in session.service.health().corrections_held[ACCOUNT]


class HalfWayError(RuntimeError):
    changed = "booked 20 of the 40 NVDA"


def test_a_half_way_application_is_recorded_with_what_the_book_changed() -> None:
    class HalfWay(Book):
        def apply_correction(self, correction: Correction) -> None:
            raise HalfWayError("journal locked")

    with Session(HalfWay(), ScriptedBroker(ACCOUNT, [BrokerPosition("NVDA", 1, "120", "120")], cash=Decimal(100_000))) as session:
        failed = session.events()[-1]

        assert failed["status"] == "failed"
        assert "the book reports it changed: booked 20 of the 40 NVDA" in failed["reason"]


def test_a_second_runtime_for_the_same_account_is_standby_and_neither_reads_nor_corrects_it() -> None:
    server = fakeredis.FakeServer()
    first_book, second_book = Book(), Book()
    nvda = [BrokerPosition("NVDA", 1, "120", "120")]
    second_broker = ScriptedBroker(ACCOUNT, nvda, cash=Decimal(100_000))
    first = Session(first_book, ScriptedBroker(ACCOUNT, nvda, cash=Decimal(100_000)), redis=fakeredis.FakeRedis(server=server))
    with first, Session(second_book, second_broker, redis=fakeredis.FakeRedis(server=server)) as second:
        standby = second.service.health().standby
        answer = asyncio.run(second.service.reconcile())

    assert len(first_book.given) == 1
    assert (second_book.given, second_broker.calls) == ([], [])
    assert standby[ACCOUNT].startswith("standby (owned by reconciliation@")
    assert answer.status == "failed"
    assert f"not reconciled here: {standby[ACCOUNT]}" == answer.error


def test_each_correction_step_in_the_stream_names_the_runtime_and_lease_token_it_was_taken_under() -> None:
    server = fakeredis.FakeServer()
    book = Book()
    with Session(book, ScriptedBroker(ACCOUNT, [BrokerPosition("NVDA", 1, "120", "120")], cash=Decimal(100_000)), redis=fakeredis.FakeRedis(server=server)):
        entries = fakeredis.FakeRedis(server=server, decode_responses=True).xrange("reconciliation:stream:correction")

    assert len(book.given) == 1
    assert entries
    assert {fields["fencing_token"] for _, fields in entries} == {"1"}
    assert {fields["runtime"] for _, fields in entries} == {json_actor(fields) for _, fields in entries}


def json_actor(fields: dict[str, str]) -> str:
    return str(json.loads(fields["payload"])["actor"])


def test_a_correction_confirmed_under_an_older_lease_is_held_not_applied() -> None:
    server = fakeredis.FakeServer()
    book = Book()
    nvda = [BrokerPosition("NVDA", 1, "120", "120")]
    reader = fakeredis.FakeRedis(server=server, decode_responses=True)
    with Session(book, ScriptedBroker(ACCOUNT, [], cash=Decimal(100_000)), redis=fakeredis.FakeRedis(server=server)) as session:
        owner = reader.get("reconciliation:lease:ACC-1").rpartition("|")[0]
        reader.set("reconciliation:lease:ACC-1", f"{owner}|7", px=30_000)  # the lease changed hands and came back
        session.broker.positions = nvda
        session.run()
        held = [e for e in session.events() if e["status"] == "held"]

    assert book.given == []
    assert "made under lease token 1 of ACC-1, and this runtime now holds token 7" in held[0]["reason"]


def test_nothing_is_corrected_while_redis_cannot_confirm_the_lease_though_the_account_is_reconciled() -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    book = Book()
    broker = ScriptedBroker(ACCOUNT, [BrokerPosition("NVDA", 1, "120", "120")], cash=Decimal(100_000))
    with Session(book, broker, redis=fakeredis.FakeRedis(server=server)) as session:
        session.run()
        held = [e for e in session.events() if e["status"] == "held"]

    assert broker.calls != []
    assert book.given == []
    assert held


def test_a_correction_confirmed_by_a_run_made_without_a_lease_is_not_applied_under_one() -> None:
    why = _refusal(ACCOUNT, Lease(ACCOUNT, 1, 30_000), None)

    assert why is not None
    assert "could not confirm this runtime's lease" in why
