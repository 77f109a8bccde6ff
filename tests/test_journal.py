"""The outbox journal: runs waiting for Redis kept on disk, in order, bounded, and delivered first
after a restart; a damaged journal is set aside without stopping the service."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fakeredis
import pytest
from click.testing import CliRunner

from reconciliation import Account, InMemoryPortfolio, ReconciliationConfig, ReconciliationRuntime
from reconciliation._cli.main import main
from reconciliation._cli.runner import load_config
from reconciliation._domain.ageing import AgeingUpdate
from reconciliation._domain.fencing import Fence
from reconciliation._domain.models import ReconciliationResult
from reconciliation._domain.sinks import FinishedRun, Sent, SinkUnavailableError
from reconciliation._publishing.redis_sink import PendingRun, RedisSink
from reconciliation._runtime.clock import ManualClock
from reconciliation._runtime.delivery import Queued
from reconciliation._runtime.delivery_actor import DeliveryActor, JournalingRef
from reconciliation._runtime.health import ComponentState, HealthBoard
from reconciliation._runtime.journal import JOURNAL_FILE, Journal, JournalError
from reconciliation._runtime.messages import Barrier
from reconciliation.testing import ScriptedBroker

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

AT = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(str(tmp_path / "state"))
    yield opened
    opened.close()


class TestJournal:
    def test_what_was_written_is_there_after_reopening(self, tmp_path: Path) -> None:
        first = Journal.open(str(tmp_path))
        first.append("run-1", "ACC-1", b"payloads of run 1")
        first.close()
        again = Journal.open(str(tmp_path))
        try:
            assert [(e.run_id, e.account_id, e.data) for e in again.entries()] == [
                ("run-1", "ACC-1", b"payloads of run 1")
            ]
        finally:
            again.close()

    def test_entries_come_back_in_the_order_they_were_written(self, journal: Journal) -> None:
        for n in range(20):
            journal.append(f"run-{n}", "ACC-1", str(n).encode())
        assert [e.run_id for e in journal.entries()] == [f"run-{n}" for n in range(20)]

    def test_a_removed_entry_is_gone_and_the_order_of_the_rest_kept(self, journal: Journal) -> None:
        seqs = [journal.append(f"run-{n}", "ACC-1", b"x") for n in range(4)]
        journal.remove([seqs[0], seqs[2]])
        assert [e.run_id for e in journal.entries()] == ["run-1", "run-3"]

    def test_the_journal_is_in_wal_mode(self, journal: Journal) -> None:
        assert Path(f"{journal.path}-wal").exists()

    def test_the_directory_is_created_when_missing(self, tmp_path: Path) -> None:
        opened = Journal.open(str(tmp_path / "a" / "b"))
        opened.close()
        assert (tmp_path / "a" / "b" / JOURNAL_FILE).is_file()

    def test_a_second_opener_of_the_same_directory_is_refused_naming_the_holder(self, journal: Journal) -> None:
        with pytest.raises(JournalError, match=r"in use by another reconciliation process \(pid \d+\)"):
            Journal.open(str(journal.directory))

    def test_the_directory_is_free_again_once_closed(self, tmp_path: Path) -> None:
        Journal.open(str(tmp_path)).close()
        Journal.open(str(tmp_path)).close()

    def test_a_state_dir_that_is_a_file_is_refused_clearly(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("")
        with pytest.raises(JournalError, match="is not a directory"):
            Journal.open(str(tmp_path / "file"))

    def test_a_state_dir_below_a_file_cannot_be_created(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("")
        with pytest.raises(JournalError, match="cannot be created"):
            Journal.open(str(tmp_path / "file" / "state"))

    def test_an_unwritable_state_dir_is_refused_clearly(self) -> None:
        unwritable = Path("/sys/kernel")  # refused even to root
        if not unwritable.is_dir():
            pytest.skip("no /sys/kernel here")
        with pytest.raises(JournalError, match="is not writable by this process"):
            Journal.open(str(unwritable))

    def test_a_journal_file_that_is_not_a_database_is_moved_aside_and_a_new_one_begun(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        (tmp_path / JOURNAL_FILE).write_bytes(b"this is not a SQLite database, it is garbage " * 100)
        with caplog.at_level(logging.ERROR):
            opened = Journal.open(str(tmp_path))
        try:
            assert opened.entries() == []
            opened.append("run-1", "ACC-1", b"x")
            assert opened.problem is not None
            assert "could not be read" in opened.problem
            assert "moved aside" in caplog.text
            aside = [p.name for p in tmp_path.iterdir() if p.name.startswith(f"{JOURNAL_FILE}.unusable-")]
            assert len(aside) == 1
            assert (tmp_path / aside[0]).read_bytes().startswith(b"this is not a SQLite database")
        finally:
            opened.close()


def finished(n: int) -> FinishedRun:
    result = ReconciliationResult(
        run_id=uuid.uuid4(), account_id="ACC-1", timestamp=AT, context={"trigger": "periodic", "n": str(n)}
    )
    return FinishedRun(result, AgeingUpdate(result.run_id, result.account_id))


class TextSink:
    """A sink of run numbers (as text) that is down while `down`, with a journal codec."""

    name = "fake"

    def __init__(self) -> None:
        self.down = False
        self.delivered: list[str] = []

    def prepare(self, run: FinishedRun) -> str:
        return run.result.context["n"]

    def weight(self, item: str) -> int:
        return 1

    def send(self, items: Sequence[str]) -> Sent:
        if self.down:
            msg = "down"
            raise SinkUnavailableError(msg)
        self.delivered.extend(items)
        return Sent(len(items))

    def close(self) -> None:
        pass

    def encode(self, item: str) -> bytes:
        return item.encode()

    def decode(self, data: bytes) -> str:
        if not data.isdigit():
            msg = f"not a run number: {data!r}"
            raise ValueError(msg)
        return data.decode()


def start(sink: TextSink, journal: Journal, board: HealthBoard, **bounds: Any) -> Any:
    bounds.setdefault("max_runs", 1000)
    return DeliveryActor.start(
        sink=sink,
        max_batch_weight=100,
        retry_max_seconds=30.0,
        board=board,
        clock=ManualClock(AT),
        journal=(journal, sink),
        **bounds,
    )


def stop(actor: Any) -> None:
    actor.ask(Barrier(), timeout=5)
    actor.stop(timeout=5)


class TestJournaledDelivery:
    def test_a_queued_run_is_in_the_journal(self, journal: Journal) -> None:
        sink, board = TextSink(), HealthBoard()
        sink.down = True
        actor = start(sink, journal, board)
        actor.tell(finished(7))
        actor.ask(Barrier(), timeout=5)
        assert board.read().delivery["fake"].queued_runs == 1
        assert [e.data for e in journal.entries()] == [b"7"]
        stop(actor)

    def test_a_delivered_run_leaves_the_journal(self, journal: Journal) -> None:
        sink, board = TextSink(), HealthBoard()
        actor = start(sink, journal, board)
        actor.tell(finished(1))
        actor.ask(Barrier(), timeout=5)
        assert sink.delivered == ["1"]
        assert journal.entries() == []
        stop(actor)

    def test_runs_kept_at_a_stop_are_delivered_first_in_order_at_the_next_start(self, tmp_path: Path) -> None:
        sink, board = TextSink(), HealthBoard()
        sink.down = True
        actor = start(sink, Journal.open(str(tmp_path)), board)
        for n in range(5):
            actor.tell(finished(n))
        stop(actor)  # Redis still down: the runs stay in the journal
        sink.down = False
        journal = Journal.open(str(tmp_path))
        actor = start(sink, journal, board)
        actor.tell(finished(5))
        actor.ask(Barrier(), timeout=5)
        assert sink.delivered == ["0", "1", "2", "3", "4", "5"]
        assert journal.entries() == []
        stop(actor)

    def test_past_the_bound_in_runs_the_oldest_is_dropped_counted_and_forgotten(self, journal: Journal) -> None:
        sink, board = TextSink(), HealthBoard()
        sink.down = True
        actor = start(sink, journal, board, max_runs=3)
        for n in range(5):
            actor.tell(finished(n))
        actor.ask(Barrier(), timeout=5)
        assert board.read().delivery["fake"].dropped_runs == 2
        assert [e.data for e in journal.entries()] == [b"2", b"3", b"4"]
        stop(actor)

    def test_past_the_bound_in_bytes_the_oldest_is_dropped_counted_and_forgotten(self, journal: Journal) -> None:
        sink, board = TextSink(), HealthBoard()
        sink.down = True
        actor = start(sink, journal, board, max_bytes=5)
        for n in (1000, 2000, 3000):  # four bytes each: one fits
            actor.tell(finished(n))
        actor.ask(Barrier(), timeout=5)
        assert board.read().delivery["fake"].dropped_runs == 2
        assert [e.data for e in journal.entries()] == [b"3000"]
        stop(actor)

    def test_a_journal_holding_more_than_the_bound_keeps_its_newest_runs(self, tmp_path: Path) -> None:
        journal = Journal.open(str(tmp_path))
        for n in range(6):
            journal.append(f"run-{n}", "ACC-1", str(n).encode())
        sink, board = TextSink(), HealthBoard()
        sink.down = True
        actor = start(sink, journal, board, max_runs=2)
        actor.ask(Barrier(), timeout=5)
        assert [e.data for e in journal.entries()] == [b"4", b"5"]
        assert board.read().delivery["fake"].dropped_runs == 4
        stop(actor)

    def test_an_unreadable_entry_is_set_aside_and_the_rest_delivered(
        self, journal: Journal, caplog: pytest.LogCaptureFixture
    ) -> None:
        journal.append("run-0", "ACC-1", b"0")
        journal.append("run-x", "ACC-1", b"garbage")
        journal.append("run-2", "ACC-1", b"2")
        sink, board = TextSink(), HealthBoard()
        with caplog.at_level(logging.ERROR):
            actor = start(sink, journal, board)
            actor.ask(Barrier(), timeout=5)
        assert sink.delivered == ["0", "2"]
        assert board.read().delivery["fake"].set_aside_runs == 1
        assert "run-x" in caplog.text
        assert journal.entries() == []
        stop(actor)

    def test_a_journal_moved_aside_at_start_shows_in_health_and_delivery_goes_on(self, tmp_path: Path) -> None:
        (tmp_path / JOURNAL_FILE).write_bytes(b"garbage" * 1000)
        journal = Journal.open(str(tmp_path))
        sink, board = TextSink(), HealthBoard()
        actor = start(sink, journal, board)
        actor.tell(finished(1))
        actor.ask(Barrier(), timeout=5)
        component = board.read().components["delivery:fake"]
        assert component.state is ComponentState.DEGRADED
        assert "moved aside" in (component.last_error or "")
        assert sink.delivered == ["1"]
        stop(actor)


class TestRedisCodec:
    def test_a_run_is_read_back_exactly_as_it_was_queued(self) -> None:
        sink = RedisSink(fakeredis.FakeRedis, stream_maxlen=100)
        run = PendingRun("4f1c-run", (("reconciliation:result", '{"run_id": "4f1c-run", "note": "é\\u2028"}'),))
        assert sink.decode(sink.encode(run)) == run

    def test_a_run_keeps_the_lease_it_was_made_under(self) -> None:
        sink = RedisSink(fakeredis.FakeRedis, stream_maxlen=100)
        run = PendingRun("4f1c-run", (("reconciliation:result", "{}"),), Fence("eu-1", 7))
        assert sink.decode(sink.encode(run)).fence == Fence("eu-1", 7)

    @pytest.mark.parametrize(
        "data",
        [
            b"",
            b"{",
            b"[]",
            b'{"run_id": 1, "payloads": []}',
            b'{"run_id": "r", "payloads": [["a"]]}',
            b'{"run_id": "r", "payloads": [], "fence": ["eu-1", "7"]}',
        ],
    )
    def test_anything_else_is_a_value_error(self, data: bytes) -> None:
        with pytest.raises(ValueError, match="not a queued run"):
            RedisSink(fakeredis.FakeRedis, stream_maxlen=100).decode(data)


def account(config: ReconciliationConfig) -> Account:
    return Account(config, InMemoryPortfolio(config.account_id, cash=Decimal(1000)), ScriptedBroker(config.account_id, cash=Decimal(1000)))


class TestStateDirConfig:
    def test_a_path_object_is_taken_as_its_text(self, tmp_path: Path) -> None:
        assert ReconciliationConfig("ACC-1", state_dir=tmp_path).state_dir == str(tmp_path)

    @pytest.mark.parametrize("value", ["", "  ", "a\0b", 42])
    def test_an_empty_or_unusable_state_dir_is_refused(self, value: object) -> None:
        with pytest.raises((TypeError, ValueError), match="state_dir"):
            ReconciliationConfig("ACC-1", state_dir=value)  # type: ignore[arg-type]

    def test_accounts_of_one_runtime_share_one_state_dir(self, tmp_path: Path) -> None:
        accounts = [
            account(ReconciliationConfig("ACC-1", state_dir=str(tmp_path / "a"))),
            account(ReconciliationConfig("ACC-2", state_dir=str(tmp_path / "b"))),
        ]
        with pytest.raises(ValueError, match="same state_dir"):
            ReconciliationRuntime(accounts, fakeredis.FakeRedis())

    def test_an_unusable_state_dir_stops_the_start_with_a_clear_error(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("")
        runtime = ReconciliationRuntime(
            [account(ReconciliationConfig("ACC-1", state_dir=str(tmp_path / "file")))], fakeredis.FakeRedis()
        )
        with pytest.raises(JournalError, match="is not a directory"):
            asyncio.run(runtime.start())


def test_run_with_an_unusable_state_dir_exits_4_naming_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    config = tmp_path / "reconciliation.toml"
    config.write_text(
        'redis_url = "redis://127.0.0.1:1/0"\n[defaults]\nbroker = "reconciliation.paper:paper_broker"\n'
        'portfolio = "reconciliation.paper:paper_portfolio"\n\n[[accounts]]\naccount_id = "A"\n'
    )
    outcome = CliRunner().invoke(main, ["run", "--config", str(config), "--state-dir", str(tmp_path / "file")])
    assert outcome.exit_code == 4, outcome.output
    assert f"state_dir {str(tmp_path / 'file')!r} is not a directory" in outcome.output


def test_run_takes_the_state_dir_from_the_top_of_its_file(tmp_path: Path) -> None:
    config = tmp_path / "reconciliation.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[defaults]\nbroker = "reconciliation.paper:paper_broker"\n'
        'portfolio = "reconciliation.paper:paper_portfolio"\n\n[[accounts]]\naccount_id = "A"\n'
    )
    assert load_config(config).accounts[0].config.state_dir == str(tmp_path / "state")


class FakeRef:
    """A ref that records what it is told, and what the journal held at that moment."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self.told: list[tuple[object, int]] = []

    def tell(self, message: object) -> None:
        try:
            held = len(self._journal.entries())
        except sqlite3.ProgrammingError:  # closed
            held = -1
        self.told.append((message, held))


class TestJournalingRef:
    def test_a_run_is_in_the_journal_before_it_is_told(self, journal: Journal) -> None:
        sink = TextSink()
        ref = FakeRef(journal)
        JournalingRef(ref, sink, journal, sink).tell(finished(3))  # type: ignore[arg-type]
        ((message, held),) = ref.told
        assert isinstance(message, Queued)
        assert (message.item, message.seq, held) == ("3", journal.entries()[0].seq, 1)

    def test_other_messages_pass_as_they_are(self, journal: Journal) -> None:
        ref = FakeRef(journal)
        JournalingRef(ref, TextSink(), journal, TextSink()).tell(Barrier())  # type: ignore[arg-type]
        assert [type(message) for message, _ in ref.told] == [Barrier]
        assert journal.entries() == []

    def test_a_run_the_journal_cannot_take_is_told_as_it_is(self, journal: Journal) -> None:
        ref = FakeRef(journal)
        journal.close()
        run = finished(1)
        JournalingRef(ref, TextSink(), journal, TextSink()).tell(run)  # type: ignore[arg-type]
        assert ref.told[0][0] is run


def test_runs_finished_while_redis_is_stalled_are_journaled_though_the_publisher_is_stuck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Redis delivery actor stuck in a call (a stalled server) takes nothing from its
    inbox; the runs that finish meanwhile are on disk all the same."""
    released, stalled = threading.Event(), threading.Event()

    def stalled_send(self: RedisSink, items: object) -> Sent:
        stalled.set()
        released.wait(30)
        msg = "released"
        raise SinkUnavailableError(msg)

    monkeypatch.setattr(RedisSink, "send", stalled_send)
    config = ReconciliationConfig("ACC-1", interval_seconds=0.05, state_dir=str(tmp_path))
    runtime = ReconciliationRuntime([account(config)], fakeredis.FakeRedis())
    asyncio.run(runtime.start())
    try:
        assert stalled.wait(10)
        deadline = time.monotonic() + 10
        while runtime.health().delivery["redis"].incoming_runs < 3:
            assert time.monotonic() < deadline, "no runs waited for the stuck publisher"
            time.sleep(0.02)
        journal = sqlite3.connect(f"file:{tmp_path / JOURNAL_FILE}?mode=ro", uri=True)
        (held,) = journal.execute("SELECT count(*) FROM outbox").fetchone()
        journal.close()
        assert held >= 1 + 3, "the run in the stuck call and those waiting behind it"
    finally:
        released.set()
        asyncio.run(runtime.stop())
