"""One way to every sink: a bounded queue, a capped jittered backoff, and the delivery
actor that uses them — in order, nothing lost that fit, every drop counted."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import fakeredis
import pytest
import redis

from reconciliation._domain.ageing import AgeingUpdate
from reconciliation._domain.backoff import Backoff
from reconciliation._domain.models import ReconciliationResult
from reconciliation._domain.sinks import FinishedRun, Sent, SinkUnavailableError
from reconciliation._publishing.redis_sink import RESULT_STREAM, RedisSink
from reconciliation._runtime.clock import ManualClock
from reconciliation._runtime.delivery import BoundedQueue, Queued
from reconciliation._runtime.delivery_actor import RETRY_BASE_SECONDS, DeliveryActor
from reconciliation._runtime.health import ComponentState, HealthBoard
from reconciliation._runtime.messages import Barrier
from reconciliation.audit import AuditStoreUnavailableError, open_store
from reconciliation.audit._sink import AuditSink

AT = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
DAY = 24 * 3600.0


def entry(name: str, weight: int = 1) -> Queued[str]:
    return Queued(run_id=name, account_id="ACC-1", item=name, weight=weight)


def finished(n: int = 0) -> FinishedRun:
    result = ReconciliationResult(
        run_id=uuid.uuid4(), account_id="ACC-1", timestamp=AT, context={"trigger": "periodic", "n": str(n)}
    )
    return FinishedRun(result, AgeingUpdate(result.run_id, result.account_id))


class TestBoundedQueue:
    def test_entries_come_out_in_the_order_they_went_in(self) -> None:
        queue: BoundedQueue[str] = BoundedQueue(10)
        for name in "abc":
            queue.append(entry(name))
        assert [e.item for e in queue.pop(3)] == ["a", "b", "c"]

    def test_when_full_the_oldest_entry_is_dropped_for_the_newest_and_counted(self) -> None:
        queue: BoundedQueue[str] = BoundedQueue(2)
        queue.append(entry("a", weight=3))
        queue.append(entry("b"))
        dropped = queue.append(entry("c"))
        assert [e.item for e in dropped] == ["a"]
        assert [e.item for e in queue] == ["b", "c"]
        assert (queue.dropped, queue.weight) == (1, 2)

    def test_appending_with_room_drops_nothing(self) -> None:
        queue: BoundedQueue[str] = BoundedQueue(2)
        assert queue.append(entry("a")) == []
        assert queue.dropped == 0

    def test_head_takes_whole_entries_up_to_the_weight_budget(self) -> None:
        queue: BoundedQueue[str] = BoundedQueue(10)
        for name in "abc":
            queue.append(entry(name, weight=4))
        assert [e.item for e in queue.head(9)] == ["a", "b"]
        assert len(queue) == 3

    def test_head_takes_an_entry_heavier_than_the_budget_alone(self) -> None:
        queue: BoundedQueue[str] = BoundedQueue(10)
        queue.append(entry("big", weight=50))
        queue.append(entry("small"))
        assert [e.item for e in queue.head(10)] == ["big"]

    def test_popping_delivered_entries_is_not_a_drop(self) -> None:
        queue: BoundedQueue[str] = BoundedQueue(10)
        queue.append(entry("a", weight=2))
        queue.pop(1)
        assert (queue.dropped, queue.weight, len(queue)) == (0, 0, 0)

    def test_a_queue_holds_at_least_one_entry(self) -> None:
        with pytest.raises(ValueError, match="at least 1"):
            BoundedQueue(0)


class TestBackoff:
    def test_the_pause_doubles_from_the_base_up_to_the_cap(self) -> None:
        backoff = Backoff(0.1, 1.0)
        assert [backoff.delay(attempt) for attempt in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])

    def test_a_jittered_pause_is_drawn_from_the_upper_half(self) -> None:
        drawn: list[tuple[float, float]] = []
        backoff = Backoff(0.1, 30.0)
        backoff.delay(1, uniform=lambda low, high: drawn.append((low, high)) or low)
        backoff.delay(2, uniform=lambda low, high: drawn.append((low, high)) or low)
        assert drawn == [(0.05, 0.1), (0.1, 0.2)]

    def test_a_days_long_outage_neither_overflows_nor_passes_the_cap(self) -> None:
        assert Backoff(0.1, 30.0).delay(100_000) == 30.0


class FakeSink:
    """A sink that is down while `down`, refuses the runs whose `n` is in `refuse`."""

    name = "fake"

    def __init__(self) -> None:
        self.down = False
        self.refuse: set[str] = set()
        self.delivered: list[str] = []
        self.attempts = 0
        self.closed = False

    def prepare(self, run: FinishedRun) -> str:
        return run.result.context["n"]

    def weight(self, item: str) -> int:
        return 1

    def send(self, items: Sequence[str]) -> Sent:
        self.attempts += 1
        if self.down:
            msg = "the fake sink is down"
            raise SinkUnavailableError(msg)
        for index, item in enumerate(items):
            if item in self.refuse:
                return Sent(index, refused=f"refused {item}")
            self.delivered.append(item)
        return Sent(len(items))

    def close(self) -> None:
        self.closed = True


def start_actor(sink: Any, clock: ManualClock, board: HealthBoard, max_runs: int = 1000) -> Any:
    return DeliveryActor.start(
        sink=sink, max_runs=max_runs, max_batch_weight=100, retry_max_seconds=30.0, board=board, clock=clock
    )


def handled(actor: Any) -> None:
    """Everything told to the actor before has been handled."""
    actor.ask(Barrier(), timeout=5)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(AT)


@pytest.fixture
def board() -> HealthBoard:
    return HealthBoard()


def test_runs_are_delivered_in_the_order_they_finished(clock: ManualClock, board: HealthBoard) -> None:
    sink = FakeSink()
    actor = start_actor(sink, clock, board)
    for n in range(5):
        actor.tell(finished(n))
    handled(actor)
    assert sink.delivered == ["0", "1", "2", "3", "4"]
    assert board.read().delivery["fake"].delivered_runs == 5


def test_while_the_sink_is_down_runs_wait_and_arrive_in_order_once_it_is_back(
    clock: ManualClock, board: HealthBoard
) -> None:
    sink = FakeSink()
    sink.down = True
    actor = start_actor(sink, clock, board)
    for n in range(3):
        actor.tell(finished(n))
    handled(actor)
    assert board.read().delivery["fake"].queued_runs == 3
    sink.down = False
    clock.advance(30)
    handled(actor)
    assert sink.delivered == ["0", "1", "2"]


def test_a_run_arriving_during_the_backoff_does_not_retry_early(clock: ManualClock, board: HealthBoard) -> None:
    sink = FakeSink()
    sink.down = True
    actor = start_actor(sink, clock, board)
    actor.tell(finished(0))
    handled(actor)
    attempts = sink.attempts
    actor.tell(finished(1))
    handled(actor)
    assert sink.attempts == attempts


def test_the_outage_and_the_recovery_are_in_health(clock: ManualClock, board: HealthBoard) -> None:
    sink = FakeSink()
    sink.down = True
    actor = start_actor(sink, clock, board)
    actor.tell(finished(0))
    handled(actor)
    down = board.read()
    assert not down.delivery["fake"].reachable
    assert down.delivery["fake"].last_error is not None
    assert "the fake sink is down" in down.delivery["fake"].last_error
    assert down.components["delivery:fake"].state is ComponentState.DEGRADED
    assert not down.healthy
    sink.down = False
    clock.advance(30)
    handled(actor)
    up = board.read()
    assert up.delivery["fake"].reachable
    assert up.components["delivery:fake"].state is ComponentState.RUNNING


def test_a_full_queue_drops_the_oldest_run_counts_it_and_logs_it_at_error(
    clock: ManualClock, board: HealthBoard, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FakeSink()
    sink.down = True
    actor = start_actor(sink, clock, board, max_runs=2)
    runs = [finished(n) for n in range(3)]
    with caplog.at_level(logging.ERROR, logger="reconciliation"):
        for run in runs:
            actor.tell(run)
        handled(actor)
    assert board.read().delivery["fake"].dropped_runs == 1
    assert any(str(runs[0].result.run_id) in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    sink.down = False
    clock.advance(30)
    handled(actor)
    assert sink.delivered == ["1", "2"]


def test_a_refused_run_is_set_aside_and_the_runs_behind_it_are_delivered(
    clock: ManualClock, board: HealthBoard, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FakeSink()
    sink.refuse = {"1"}
    actor = start_actor(sink, clock, board)
    runs = [finished(n) for n in range(3)]
    with caplog.at_level(logging.ERROR, logger="reconciliation"):
        for run in runs:
            actor.tell(run)
        handled(actor)
    assert sink.delivered == ["0", "2"]
    health = board.read().delivery["fake"]
    assert (health.set_aside_runs, health.queued_runs, health.reachable) == (1, 0, True)
    assert any(str(runs[1].result.run_id) in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_a_sink_whose_prepare_raises_loses_that_run_only(clock: ManualClock, board: HealthBoard) -> None:
    sink = FakeSink()
    actor = start_actor(sink, clock, board)
    broken = finished(1)
    broken = FinishedRun(ReconciliationResult(broken.result.run_id, "ACC-1", AT), broken.ageing)
    for run in (finished(0), broken, finished(2)):
        actor.tell(run)
    handled(actor)
    assert sink.delivered == ["0", "2"]
    assert board.read().delivery["fake"].set_aside_runs == 1
    assert actor.is_alive()


def test_at_stop_what_the_sink_takes_is_delivered_and_the_sink_is_closed(
    clock: ManualClock, board: HealthBoard
) -> None:
    sink = FakeSink()
    sink.down = True
    actor = start_actor(sink, clock, board)
    actor.tell(finished(0))
    handled(actor)
    sink.down = False
    actor.stop(block=True, timeout=5)
    assert sink.delivered == ["0"]
    assert sink.closed
    assert board.read().components["delivery:fake"].state is ComponentState.STOPPED


def test_stopping_with_the_sink_down_reports_the_runs_not_delivered(
    clock: ManualClock, board: HealthBoard, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FakeSink()
    sink.down = True
    actor = start_actor(sink, clock, board)
    actor.tell(finished(0))
    handled(actor)
    with caplog.at_level(logging.ERROR, logger="reconciliation"):
        actor.stop(block=True, timeout=5)
    assert any("1 runs" in r.getMessage() and "not delivered" in r.getMessage() for r in caplog.records)


def advance_through_outage(clock: ManualClock, actor: Any, *, hours: float, run_every: float) -> int:
    """Move the clock `hours`, a run finishing every `run_every` seconds; returns how many."""
    made = 0
    elapsed = 0.0
    while elapsed < hours * 3600:
        actor.tell(finished(made))
        made += 1
        handled(actor)
        clock.advance(run_every)
        handled(actor)
        elapsed += run_every
    return made


def test_a_day_long_redis_outage_ends_with_every_run_that_fit_delivered_in_order(clock: ManualClock) -> None:
    server = fakeredis.FakeServer()
    reader = fakeredis.FakeRedis(server=server, decode_responses=True)
    board = HealthBoard()
    sink = RedisSink(lambda: fakeredis.FakeRedis(server=server), stream_maxlen=10_000)
    actor = start_actor(sink, clock, board, max_runs=1000)
    server.connected = False
    made = advance_through_outage(clock, actor, hours=24, run_every=300)
    assert made == 288
    assert board.read().delivery["redis"].queued_runs == made
    server.connected = True
    clock.advance(30)
    handled(actor)
    published = [fields["run_id"] for _, fields in _results(reader)]
    assert published == [f"{n}" for n in range(made)]
    assert board.read().delivery["redis"].dropped_runs == 0


def test_a_day_long_outage_longer_than_the_queue_keeps_the_newest_runs_in_order(clock: ManualClock) -> None:
    server = fakeredis.FakeServer()
    reader = fakeredis.FakeRedis(server=server, decode_responses=True)
    board = HealthBoard()
    actor = start_actor(RedisSink(lambda: fakeredis.FakeRedis(server=server), stream_maxlen=10_000), clock, board, 100)
    server.connected = False
    made = advance_through_outage(clock, actor, hours=24, run_every=300)
    server.connected = True
    clock.advance(30)
    handled(actor)
    published = [fields["run_id"] for _, fields in _results(reader)]
    assert published == [f"{n}" for n in range(made - 100, made)]
    assert board.read().delivery["redis"].dropped_runs == made - 100


def _results(reader: redis.Redis) -> list[tuple[str, dict[str, str]]]:
    """Each published result's `n` (the test's run number), read back from the stream."""
    return [
        (entry_id, {"run_id": json.loads(fields["payload"])["context"]["n"]})
        for entry_id, fields in reader.xrange(RESULT_STREAM)
    ]


class UnavailableStore:
    """An audit store that is down until `up` is set; then records into a real SQLite file."""

    def __init__(self, target: str) -> None:
        self._store = open_store(target)
        self.up = False
        self.recorded: list[str] = []

    def migrate(self) -> None:
        self._check()
        self._store.migrate()

    def record_run(self, result: ReconciliationResult, aged: AgeingUpdate) -> None:
        self._check()
        self._store.record_run(result, aged)
        self.recorded.append(result.context["n"])

    def close(self) -> None:
        self._store.close()

    def _check(self) -> None:
        if not self.up:
            msg = "the audit database is down"
            raise AuditStoreUnavailableError(msg)


def test_a_day_long_audit_store_outage_ends_with_every_run_recorded_in_order(
    clock: ManualClock, tmp_path: Any
) -> None:
    target = str(tmp_path / "audit.db")
    store = UnavailableStore(target)
    board = HealthBoard()
    actor = start_actor(AuditSink(store), clock, board, max_runs=1000)  # type: ignore[arg-type]
    made = advance_through_outage(clock, actor, hours=24, run_every=300)
    assert board.read().delivery["audit"].queued_runs == made
    store.up = True
    clock.advance(30)
    handled(actor)
    actor.stop(block=True, timeout=5)
    assert store.recorded == [str(n) for n in range(made)]
    persisted = open_store(target).list_runs("ACC-1", limit=1000)
    assert sorted(int(r.context["n"]) for r in persisted) == list(range(made))


def test_the_sink_is_tried_at_least_every_retry_max_however_long_the_outage(clock: ManualClock) -> None:
    sink = FakeSink()
    sink.down = True
    actor = start_actor(sink, clock, HealthBoard())
    actor.tell(finished(0))
    handled(actor)
    for _ in range(200):
        attempts = sink.attempts
        clock.advance(30.0)
        handled(actor)
        assert sink.attempts > attempts


def test_the_first_retry_comes_after_the_base_delay(clock: ManualClock) -> None:
    sink = FakeSink()
    sink.down = True
    actor = start_actor(sink, clock, HealthBoard())
    actor.tell(finished(0))
    handled(actor)
    sink.down = False
    clock.advance(RETRY_BASE_SECONDS)
    handled(actor)
    assert sink.delivered == ["0"]
