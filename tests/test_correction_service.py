"""Auto-correction in a running service: the corrector, the book's apply_correction, the check after it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Self

import fakeredis
import jsonschema
import pytest

from reconciliation import (
    BrokerPosition,
    Correction,
    CorrectionPolicy,
    InMemoryPortfolio,
    LocalAccount,
    Position,
    ReconciliationConfig,
    ReconciliationService,
)
from reconciliation._publishing.inbound import SCHEMA
from reconciliation._publishing.redis_sink import CORRECTION_STREAM
from reconciliation._runtime.clock import SystemClock
from reconciliation.audit import open_store
from reconciliation.testing import ManualClock, ScriptedBroker, capture_published, settle

ACCOUNT = "ACC-1"
NVDA = BrokerPosition("NVDA", 40, "120.00", "4800")
CORRECTION_SCHEMA = jsonschema.Draft202012Validator(
    {**SCHEMA, "$ref": "#/$defs/correction"}, format_checker=jsonschema.FormatChecker()
)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Until `condition` holds: a late answer arrives on its own thread, after any settle."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


class Session:
    """A service over a scripted broker and a book, on fakeredis and a manual clock, run by hand."""

    def __init__(
        self,
        book: Any = None,
        *,
        redis: Any = None,
        audit_store: str | None = None,
        broker_cash: int = 1000,
        broker_timeout: float = 30.0,
        clock: Any = None,
        **policy: Any,
    ) -> None:
        self.redis = redis if redis is not None else fakeredis.FakeRedis()
        self.broker = ScriptedBroker(ACCOUNT, [NVDA], cash=Decimal(broker_cash))
        self.book = book if book is not None else InMemoryPortfolio(ACCOUNT, Decimal(1000))
        self._capturing = capture_published()
        self.capture = self._capturing.__enter__()
        config = ReconciliationConfig(
            ACCOUNT,
            equity_tolerance_pct=Decimal(100),
            broker_timeout_seconds=broker_timeout,
            audit_store=audit_store,
            correction=CorrectionPolicy(**policy),
        )
        self.service = ReconciliationService(
            self.book, self.broker, self.redis, config, clock=clock if clock is not None else ManualClock()
        )

    def __enter__(self) -> Self:
        asyncio.run(self.service.start())
        settle(self.service)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run(self.service.stop())
        self._capturing.__exit__(None, None, None)

    def run(self, times: int = 1) -> None:
        for _ in range(times):
            asyncio.run(self.service.reconcile())
            settle(self.service)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(fields[b"payload"]) for _, fields in self.redis.xrange(CORRECTION_STREAM)]

    def statuses(self) -> list[str]:
        return [event["status"] for event in self.events()]

    def severities(self, kind: str) -> list[str]:
        """The severity of each run's `kind` discrepancy, run after run (severities after escalation)."""
        return [
            d.severity.value for r in self.capture.runs() for d in r.discrepancies if d.type.value == kind
        ]


class RecordingBook(InMemoryPortfolio):
    """An in-memory book that counts the corrections it is given, and may misbehave."""

    def __init__(self, *, raising: BaseException | None = None, ignoring: bool = False) -> None:
        super().__init__(ACCOUNT, Decimal(1000))
        self.given: list[Correction] = []
        self._raising = raising
        self._ignoring = ignoring

    def apply_correction(self, correction: Correction) -> None:
        self.given.append(correction)
        if self._raising is not None:
            raise self._raising
        if not self._ignoring:
            super().apply_correction(correction)


class AsyncBook(InMemoryPortfolio):
    async def apply_correction(self, correction: Correction) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        super().apply_correction(correction)


class LoopBlockingBook(InMemoryPortfolio):
    """An async apply_correction that blocks its event loop until released."""

    def __init__(self) -> None:
        super().__init__(ACCOUNT, Decimal(1000))
        self.release = threading.Event()

    async def apply_correction(self, correction: Correction) -> None:  # type: ignore[override]
        self.release.wait(30)
        super().apply_correction(correction)


class ReadOnlyBook:
    """A local book without apply_correction."""

    def get_positions(self, account_id: str) -> list[Position]:
        return []

    def get_account(self, account_id: str) -> LocalAccount:
        return LocalAccount(account_id, Decimal(1000), Decimal(1000))


def test_propose_mode_publishes_the_correction_and_never_changes_the_book() -> None:
    with Session(mode="propose") as session:
        session.run(3)

        assert session.book.get_positions(ACCOUNT) == []
        assert session.statuses() == ["proposed", "confirmed"]
        assert session.capture.triggers() == ["startup", "on_demand", "on_demand", "on_demand"]


def test_apply_mode_changes_the_book_only_once_the_runs_have_confirmed_the_break() -> None:
    with Session(mode="apply", confirm_after_runs=3) as session:
        session.run()
        unchanged = session.book.get_positions(ACCOUNT)
        session.run()

        assert unchanged == []
        assert session.book.get_positions(ACCOUNT) == [Position("NVDA", 40, Decimal("120.00"))]
        assert session.statuses() == ["proposed", "confirmed", "applied", "verified"]


def test_an_applied_correction_is_checked_by_a_run_asked_for_by_the_corrector() -> None:
    with Session(mode="apply") as session:
        session.run()

        check = session.capture.runs()[-1]
        assert check.context == {"trigger": "on_demand", "requested_by": "correction"}
        assert check.is_clean
        (resolved,) = session.capture.resolved
        assert resolved["type"] == "missing_local"


def test_an_async_apply_correction_is_awaited() -> None:
    with Session(AsyncBook(ACCOUNT, Decimal(1000)), mode="apply") as session:
        session.run()

        assert session.statuses()[-2:] == ["applied", "verified"]


def test_an_async_apply_correction_that_freezes_its_loop_is_unknown_and_later_runs_go_on() -> None:
    book = LoopBlockingBook()
    try:
        with Session(book, mode="apply", broker_timeout=0.3, clock=SystemClock()) as session:
            session.run()
            unknown = session.events()[-1]
            assert unknown["status"] == "unknown"
            assert "frozen by a blocking call inside an async method (local.apply_correction" in unknown["reason"]
            book.release.set()

            session.run()

            assert session.capture.runs()[-1].error is None
            wait_for(lambda: session.statuses()[-1] == "verified")
            assert session.statuses()[-3:] == ["unknown", "applied_late", "verified"]
    finally:
        book.release.set()


def test_a_correction_above_max_notional_is_never_applied_and_its_break_escalated() -> None:
    book = RecordingBook()
    with Session(book, mode="apply", max_notional="4799.99") as session:
        session.run(2)

        assert book.given == []
        assert session.statuses() == ["proposed", "refused"]
        assert session.events()[-1]["severity"] == "critical"


def test_a_cash_correction_over_the_limit_holds_its_break_at_critical() -> None:
    with Session(
        RecordingBook(), mode="apply", types=["cash_mismatch"], max_notional=1, broker_cash=1005
    ) as session:
        session.run(3)

        assert session.severities("cash_mismatch") == ["warning", "warning", "critical", "critical"]


def test_a_correction_that_does_not_resolve_its_break_is_escalated_and_never_tried_again() -> None:
    book = RecordingBook(ignoring=True)
    with Session(book, mode="apply", types=["cash_mismatch"], broker_cash=1005) as session:
        session.run(4)

        assert len(book.given) == 1
        assert session.statuses() == ["proposed", "confirmed", "applied", "unresolved"]
        assert session.severities("cash_mismatch")[-2:] == ["critical", "critical"]


def test_a_failed_run_proposes_nothing() -> None:
    failing = Session(mode="apply", confirm_after_runs=1)
    failing.broker.then_raise(ConnectionError("gateway down"))
    with failing as session:
        assert session.capture.runs()[-1].error is not None
        assert session.events() == []
        assert session.book.get_positions(ACCOUNT) == []


@pytest.mark.parametrize("raised", [RuntimeError("book locked"), SystemExit(3), KeyboardInterrupt()])
def test_an_apply_correction_that_raises_is_reported_and_leaves_the_break_open(raised: BaseException) -> None:
    book = RecordingBook(raising=raised)
    with Session(book, mode="apply") as session:
        session.run()

        failed = session.events()[-1]
        assert failed["status"] == "failed"
        assert type(raised).__name__ in failed["reason"]
        assert [d.type.value for d in session.capture.runs()[-1].discrepancies] == ["missing_local"]
        assert session.service.is_running


def test_after_a_failed_application_a_later_confirming_run_tries_again() -> None:
    book = RecordingBook(raising=RuntimeError("book locked"))
    with Session(book, mode="apply") as session:
        session.run(2)

        assert len(book.given) == 2
        assert book.given[0].correction_id != book.given[1].correction_id


def test_apply_mode_is_refused_for_a_book_that_cannot_be_corrected() -> None:
    config = ReconciliationConfig(ACCOUNT, correction=CorrectionPolicy(mode="apply"))

    with pytest.raises(TypeError, match=r"implements apply_correction\(correction\).*mode='propose'"):
        ReconciliationService(ReadOnlyBook(), ScriptedBroker(ACCOUNT), fakeredis.FakeRedis(), config)


def test_propose_mode_works_with_a_book_that_cannot_be_corrected() -> None:
    with Session(ReadOnlyBook(), mode="propose") as session:
        session.run()

        assert session.statuses() == ["proposed", "confirmed"]


def test_every_published_correction_satisfies_the_schema() -> None:
    book = RecordingBook(ignoring=True)
    with Session(book, mode="apply", types=["missing_local", "cash_mismatch"], broker_cash=1005) as session:
        session.run(3)
        events = session.events()

    assert {event["status"] for event in events} == {"proposed", "confirmed", "applied", "unresolved"}
    for event in events:
        CORRECTION_SCHEMA.validate(event)


def test_each_step_is_recorded_in_the_audit_store(audit_target: str) -> None:
    with Session(mode="apply", audit_store=audit_target) as session:
        session.run()

    store = open_store(audit_target)
    recorded = store.list_corrections(ACCOUNT)
    assert [event.status.value for event in reversed(recorded)] == [
        "proposed",
        "confirmed",
        "applied",
        "verified",
    ]
    assert all(event.actor.startswith("reconciliation@") for event in recorded)
    assert recorded[0].correction.quantity == 40
    store.close()


def test_a_break_a_correction_did_not_resolve_stays_uncorrected_and_critical_after_a_restart(
    audit_target: str,
) -> None:
    book = RecordingBook(ignoring=True)
    with Session(
        book, mode="apply", types=["cash_mismatch"], audit_store=audit_target, broker_cash=1005
    ) as session:
        session.run()
    again = RecordingBook()
    with Session(
        again, mode="apply", types=["cash_mismatch"], audit_store=audit_target, broker_cash=1005
    ) as session:
        session.run(2)

        assert again.given == []
        assert session.severities("cash_mismatch") == ["critical", "critical", "critical"]


class BlockingBook(InMemoryPortfolio):
    """A book whose apply_correction hangs until released."""

    def __init__(self) -> None:
        super().__init__(ACCOUNT, Decimal(1000))
        self.entered = threading.Event()
        self.release = threading.Event()

    def apply_correction(self, correction: Correction) -> None:
        self.entered.set()
        self.release.wait(timeout=30)
        super().apply_correction(correction)


def test_an_apply_correction_that_hangs_is_unknown_and_applied_once_when_it_lands_late() -> None:
    book = BlockingBook()
    with Session(book, mode="apply", broker_timeout=0.2) as session:
        session.run()
        unknown = session.events()[-1]
        session.run(2)
        still = session.statuses()
        book.release.set()
        wait_for(lambda: session.statuses()[-1] == "verified")

        assert (unknown["status"], unknown["reason"]) == (
            "unknown",
            "local.apply_correction did not answer within 0.2 s: whether it changed the book is unknown until it returns",
        )
        assert still == ["proposed", "confirmed", "unknown"]
        assert session.statuses() == ["proposed", "confirmed", "unknown", "applied_late", "verified"]
        assert [(p.symbol, p.quantity) for p in book.get_positions(ACCOUNT)] == [("NVDA", 40)]
        assert session.capture.runs()[-1].error is None


def test_several_breaks_of_one_run_are_applied_one_after_another_and_checked_by_one_run() -> None:
    with Session(mode="apply", broker_cash=1005) as session:
        session.run()

        assert session.statuses()[-2:] == ["verified", "verified"]
        assert [r.context.get("requested_by") for r in session.capture.runs()].count("correction") == 1
        assert session.capture.runs()[-1].is_clean


def test_the_corrector_is_a_component_of_health() -> None:
    with Session(mode="propose") as session:
        assert session.service.health().components["corrector"].state.value == "running"


def test_a_correction_still_being_applied_when_the_service_stops_is_reported_unknown() -> None:
    book = BlockingBook()
    session = Session(book, mode="apply", confirm_after_runs=1)
    asyncio.run(session.service.start())
    assert book.entered.wait(5)
    session.__exit__(None, None, None)
    book.release.set()

    last = session.events()[-1]
    assert last["status"] == "unknown"
    assert "the service stopped before apply_correction answered" in last["reason"]


def test_every_correction_event_is_captured_in_process_as_it_is_published() -> None:
    with Session(mode="apply") as session:
        session.run()

        assert [event["status"] for event in session.capture.corrections] == session.statuses()


def test_a_break_found_in_a_broker_book_answered_as_columns_is_corrected_from_its_row() -> None:
    pa = pytest.importorskip("pyarrow")
    columns = pa.table(
        {
            "symbol": ["AAPL", "NVDA"],
            "quantity": pa.array([Decimal(0), Decimal(40)], pa.decimal128(18, 0)),
            "avg_cost": pa.array([Decimal("187.50"), Decimal("120.00")], pa.decimal128(18, 2)),
            "market_value": pa.array([Decimal(0), Decimal(4800)], pa.decimal128(18, 2)),
        }
    )
    with Session(mode="apply") as session:
        session.broker.get_positions = lambda _account_id: columns  # type: ignore[method-assign]
        session.run(2)

        assert session.book.get_positions(ACCOUNT) == [Position("NVDA", 40, Decimal("120.00"))]
        assert session.statuses()[-2:] == ["applied", "verified"]
