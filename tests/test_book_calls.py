"""Calling the host's books: bounded in time and in number, and nothing they raise escapes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import eventually

from reconciliation._runtime.book_calls import BookCallError, BookCalls, BookCallTimeoutError
from reconciliation._runtime.clock import SystemClock
from reconciliation._runtime.fetch_loop import FetchLoop, Pulse
from reconciliation._runtime.observers import BookCallTiming
from reconciliation._runtime.workers import DaemonWorkers


class Gate:
    """A plain method that blocks until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def get_positions(self, account_id: str) -> list[Any]:
        self.calls += 1
        self.release.wait(10)
        return []


@pytest.fixture
def workers() -> Iterator[DaemonWorkers]:
    workers = DaemonWorkers("test-call")
    yield workers
    workers.close()


class Caller:
    """A `BookCalls` and the event loop it lives on, in a thread of its own, as in the fetcher."""

    def __init__(self, workers: DaemonWorkers, home_loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.hung: list[int] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.calls = BookCalls(workers, monotonic=time.monotonic, home_loop=home_loop, on_hung=self.hung.append)

    def call(self, method: Any, *, limit: float = 1.0, name: str = "broker.get_positions") -> Any:
        coroutine = self.calls.call(method, "ACC-1", name=name, limit=limit)
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@pytest.fixture
def caller(workers: DaemonWorkers) -> Iterator[Caller]:
    caller = Caller(workers)
    yield caller
    caller.close()


def test_a_plain_method_answers_through_a_worker(caller: Caller) -> None:
    assert caller.call(lambda account_id: [account_id]) == ["ACC-1"]


def test_an_async_method_is_awaited(caller: Caller) -> None:
    async def positions(account_id: str) -> list[str]:
        await asyncio.sleep(0)
        return [account_id]

    assert caller.call(positions) == ["ACC-1"]


def test_a_plain_method_returning_an_awaitable_is_awaited(caller: Caller) -> None:
    async def later() -> str:
        return "done"

    assert caller.call(lambda _: later()) == "done"


def test_a_hung_call_fails_the_run_at_the_limit(caller: Caller) -> None:
    gate = Gate()
    started = time.monotonic()
    with pytest.raises(BookCallError, match=r"broker.get_positions did not answer within 0.2 s"):
        caller.call(gate.get_positions, limit=0.2)
    assert time.monotonic() - started < 2
    gate.release.set()


def test_while_a_call_still_hangs_the_next_run_fails_at_once_saying_so(caller: Caller) -> None:
    gate = Gate()
    with pytest.raises(BookCallError):
        caller.call(gate.get_positions, limit=0.1)
    started = time.monotonic()
    with pytest.raises(BookCallError, match="still running from an earlier run"):
        caller.call(gate.get_positions, limit=5)
    assert time.monotonic() - started < 1
    assert gate.calls == 1
    gate.release.set()


def test_once_the_hung_call_returns_the_method_is_called_again(caller: Caller) -> None:
    gate = Gate()
    with pytest.raises(BookCallError):
        caller.call(gate.get_positions, limit=0.1)
    gate.release.set()
    deadline = time.monotonic() + 5
    while caller.calls.hung and time.monotonic() < deadline:
        time.sleep(0.01)
    assert caller.call(gate.get_positions) == []
    assert gate.calls == 2


def test_hung_calls_are_counted_and_the_count_falls_when_they_return(caller: Caller) -> None:
    gate = Gate()
    with pytest.raises(BookCallError):
        caller.call(gate.get_positions, limit=0.1)
    assert caller.hung == [1]
    gate.release.set()
    deadline = time.monotonic() + 5
    while caller.hung[-1] != 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert caller.hung == [1, 0]


def test_a_thousand_runs_against_a_hung_broker_hold_one_thread(caller: Caller, workers: DaemonWorkers) -> None:
    gate = Gate()
    before = threading.active_count()
    for _ in range(1000):
        with pytest.raises(BookCallError):
            caller.call(gate.get_positions, limit=0.001)
    assert gate.calls == 1
    assert threading.active_count() - before <= 1
    gate.release.set()


@pytest.mark.parametrize("raised", [SystemExit(2), KeyboardInterrupt(), GeneratorExit(), ValueError("bad")])
def test_whatever_a_plain_method_raises_becomes_a_failed_call(caller: Caller, raised: BaseException) -> None:
    def positions(_: str) -> list[Any]:
        raise raised

    with pytest.raises(BookCallError, match=f"broker.get_positions failed: {type(raised).__name__}"):
        caller.call(positions)
    assert caller.call(lambda _: "still serving") == "still serving"


@pytest.mark.parametrize("raised", [SystemExit(2), KeyboardInterrupt(), ValueError("bad")])
def test_whatever_an_async_method_raises_becomes_a_failed_call_and_the_loop_lives(
    caller: Caller, raised: BaseException
) -> None:
    async def positions(_: str) -> list[Any]:
        raise raised

    with pytest.raises(BookCallError, match=f"broker.get_positions failed: {type(raised).__name__}"):
        caller.call(positions)
    assert caller.loop.is_running()
    assert caller.call(lambda _: "still serving") == "still serving"


def test_a_coroutine_that_swallows_cancellation_fails_the_run_at_the_limit(caller: Caller) -> None:
    stop = threading.Event()

    async def stubborn(_: str) -> list[Any]:
        while not stop.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                continue
        return []

    started = time.monotonic()
    with pytest.raises(BookCallError, match=r"did not answer within 0\.2 s"):
        caller.call(stubborn, limit=0.2)
    assert time.monotonic() - started < 2
    with pytest.raises(BookCallError, match="still running"):
        caller.call(stubborn, limit=0.2)
    stop.set()


class EngineLoop:
    """The engine's own event loop, running in its thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class LoopBoundBroker:
    """Like an SDK client made on the engine's loop: its futures belong to that loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.loops: list[asyncio.AbstractEventLoop] = []

    async def get_positions(self, account_id: str) -> list[str]:
        running = asyncio.get_running_loop()
        self.loops.append(running)
        if running is not self._loop:
            # What awaiting one of its futures from another loop raises, whether or not the
            # answer happened to arrive first.
            msg = f"Task got Future {account_id!r} attached to a different loop"
            raise RuntimeError(msg)
        answer: asyncio.Future[list[str]] = self._loop.create_future()
        self._loop.call_soon_threadsafe(answer.set_result, [account_id])
        return await answer


def test_an_async_broker_bound_to_the_engines_loop_is_awaited_there(workers: DaemonWorkers) -> None:
    engine = EngineLoop()
    caller = Caller(workers, home_loop=engine.loop)
    broker = LoopBoundBroker(engine.loop)
    try:
        assert caller.call(broker.get_positions) == ["ACC-1"]
        assert caller.call(broker.get_positions) == ["ACC-1"]
        assert broker.loops[-2:] == [engine.loop, engine.loop]
    finally:
        caller.close()
        engine.close()


def test_a_book_that_names_its_event_loop_is_awaited_there(workers: DaemonWorkers) -> None:
    engine = EngineLoop()
    caller = Caller(workers)
    broker = LoopBoundBroker(engine.loop)
    broker.event_loop = engine.loop  # type: ignore[attr-defined]
    try:
        assert caller.call(broker.get_positions) == ["ACC-1"]
        assert broker.loops == [engine.loop]
    finally:
        caller.close()
        engine.close()


def test_an_unbound_async_broker_runs_on_the_callers_own_loop_not_the_engines(workers: DaemonWorkers) -> None:
    engine = EngineLoop()
    caller = Caller(workers, home_loop=engine.loop)
    seen: list[asyncio.AbstractEventLoop] = []

    async def positions(_: str) -> list[Any]:
        seen.append(asyncio.get_running_loop())
        return []

    try:
        caller.call(positions)
        assert seen == [caller.loop]
    finally:
        caller.close()
        engine.close()


def test_a_bound_broker_whose_loop_is_blocked_fails_at_the_limit_saying_where(workers: DaemonWorkers) -> None:
    engine = EngineLoop()
    caller = Caller(workers, home_loop=engine.loop)
    broker = LoopBoundBroker(engine.loop)
    caller.call(broker.get_positions)
    unblock = threading.Event()
    engine.loop.call_soon_threadsafe(unblock.wait, 10)
    try:
        with pytest.raises(BookCallError, match="on the event loop it belongs to: is that loop blocked"):
            caller.call(broker.get_positions, limit=0.2)
        unblock.set()
        deadline = time.monotonic() + 5
        while caller.calls.hung and time.monotonic() < deadline:
            time.sleep(0.01)
        assert caller.call(broker.get_positions) == ["ACC-1"]
    finally:
        unblock.set()
        caller.close()
        engine.close()


def test_an_async_method_that_blocks_its_loop_fails_the_run_naming_it_and_later_runs_go_on(
    harness_factory: Any,
) -> None:
    harness = harness_factory(asynchronous=True, broker_timeout_seconds=0.3)
    harness.start()
    unblock = threading.Event()
    broker = harness.broker

    async def blocks(account_id: str) -> Any:
        unblock.wait(20)
        return list(broker.positions)

    original = broker.get_positions
    broker.get_positions = blocks  # type: ignore[method-assign]
    started = time.monotonic()
    frozen = harness.reconcile()
    took = time.monotonic() - started
    broker.get_positions = original  # type: ignore[method-assign]
    assert frozen.error is not None
    assert "frozen by a blocking call inside an async method (broker.get_positions, called" in frozen.error
    assert took < 5
    after = harness.reconcile()
    assert after.error is not None
    assert "still running from an earlier run" in after.error
    assert harness.service.health().hung_broker_calls == 2  # both coroutine calls of the run are stuck on the frozen loop
    unblock.set()
    deadline = time.monotonic() + 10
    while harness.service.health().hung_broker_calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert harness.reconcile().status == "ok"


def test_time_waiting_for_a_worker_is_not_charged_to_the_call_nor_blamed_on_the_book() -> None:
    workers = DaemonWorkers("test-queued", size=1, slow_seconds=60)
    timings: list[BookCallTiming] = []
    caller = Caller(workers)
    caller.calls = BookCalls(workers, monotonic=time.monotonic, on_call=timings.append)
    hold = threading.Event()
    busy = workers.submit(lambda: hold.wait(10), "ACC-OTHER")
    try:
        eventually(busy.running, what="another account's call holding the only worker")
        answering = asyncio.run_coroutine_threadsafe(
            caller.calls.call(lambda account_id: [account_id], "ACC-1", name="local.get_account", limit=0.05),
            caller.loop,
        )
        time.sleep(0.3)
        assert not answering.done()
        hold.set()
        assert answering.result(timeout=5) == ["ACC-1"]
        assert [(t.call, t.outcome) for t in timings] == [("local.get_account", "ok")]
        assert timings[0].seconds < 0.05
    finally:
        hold.set()
        caller.close()
        workers.close()


def test_a_runs_plain_calls_are_made_one_after_another_on_one_worker(caller: Caller) -> None:
    threads: list[tuple[str, int]] = []

    def call(name: str) -> Any:
        return lambda _: threads.append((name, threading.get_ident())) or name

    names = ["local.get_positions", "local.get_account", "broker.get_positions", "broker.get_account"]
    answers = asyncio.run_coroutine_threadsafe(
        caller.calls.call_all("ACC-1", [(name, call(name), ("ACC-1",)) for name in names], limit=5),
        caller.loop,
    ).result(timeout=30)
    assert answers == names
    assert [name for name, _ in threads] == names
    assert len({ident for _, ident in threads}) == 1


def test_a_call_that_hangs_in_the_job_is_named_and_the_calls_behind_it_are_still_made(caller: Caller) -> None:
    gate = Gate()
    answers = asyncio.run_coroutine_threadsafe(
        caller.calls.call_all(
            "ACC-1",
            [
                ("local.get_positions", lambda _: "local", ("ACC-1",)),
                ("broker.get_positions", gate.get_positions, ("ACC-1",)),
                ("broker.get_account", lambda _: "account", ("ACC-1",)),
            ],
            limit=0.3,
        ),
        caller.loop,
    ).result(timeout=30)
    gate.release.set()
    assert answers[0] == "local"
    assert isinstance(answers[1], BookCallTimeoutError)
    assert str(answers[1]) == "broker.get_positions did not answer within 0.3 s"
    assert answers[2] == "account"


def test_a_call_that_fails_in_the_job_fails_alone(caller: Caller) -> None:
    def refuse(_: str) -> Any:
        raise ConnectionError("gateway down")

    answers = asyncio.run_coroutine_threadsafe(
        caller.calls.call_all(
            "ACC-1",
            [
                ("broker.get_positions", refuse, ("ACC-1",)),
                ("broker.get_account", lambda _: None, ("ACC-1",)),
            ],
            limit=5,
        ),
        caller.loop,
    ).result(timeout=30)
    assert str(answers[0]) == "broker.get_positions failed: ConnectionError: gateway down"
    assert answers[1] is None


def test_a_call_no_worker_takes_within_its_limit_is_not_made_and_the_book_is_not_blamed() -> None:
    workers = DaemonWorkers("test-capped", size=1, slow_seconds=60, max_threads=1)
    timings: list[BookCallTiming] = []
    caller = Caller(workers)
    caller.calls = BookCalls(workers, monotonic=time.monotonic, on_call=timings.append)
    hold = threading.Event()
    busy = workers.submit(lambda: hold.wait(10), "ACC-OTHER")
    made: list[str] = []
    try:
        eventually(busy.running, what="another account's call holding the only worker")
        with pytest.raises(BookCallError, match=r"^local.get_account was not called: no worker was free for 0.1 s"):
            caller.call(made.append, name="local.get_account", limit=0.1)
        hold.set()
        assert caller.call(lambda account_id: account_id, name="local.get_account") == "ACC-1"
        assert made == []
        assert [(t.call, t.outcome) for t in timings] == [("local.get_account", "ok")]
    finally:
        hold.set()
        caller.close()
        workers.close()


NAMES = ["local.get_positions", "local.get_account", "broker.get_positions", "broker.get_account"]


@pytest.fixture
def beating_loop(caller: Caller) -> Iterator[FetchLoop]:
    """A fetch loop whose beat sweeps the caller's jobs, as the fetcher's does."""
    pulse = Pulse()
    pulse.start()
    loop = FetchLoop(1, pulse, on_beat=caller.calls.sweep)
    loop.start()
    yield loop
    loop.stop()
    pulse.stop()


def test_a_quick_job_started_from_outside_the_loop_is_answered_without_the_loop(caller: Caller) -> None:
    threads: list[tuple[str, int]] = []

    def call(name: str) -> Any:
        return lambda _: threads.append((name, threading.get_ident())) or name

    idle_loop = asyncio.new_event_loop()  # never run: a quick job does not need it
    try:
        answers = caller.calls.start_all(
            "ACC-1", [(name, call(name), ("ACC-1",)) for name in NAMES], limit=5, loop=idle_loop
        ).result(timeout=30)
    finally:
        idle_loop.close()
    assert answers == NAMES
    assert [name for name, _ in threads] == NAMES
    assert len({ident for _, ident in threads}) == 1
    assert threading.get_ident() not in {ident for _, ident in threads}


@pytest.mark.parametrize("handed_over_by", ["sweep", "timer"])
def test_a_started_job_that_hangs_is_watched_by_the_loop_the_hung_call_named_the_others_made(
    caller: Caller, beating_loop: FetchLoop, handed_over_by: str
) -> None:
    gate = Gate()
    clock = SystemClock()
    started = time.monotonic()
    try:
        answers = caller.calls.start_all(
            "ACC-1",
            [
                ("local.get_positions", lambda _: "local", ("ACC-1",)),
                ("broker.get_positions", gate.get_positions, ("ACC-1",)),
                ("broker.get_account", lambda _: "account", ("ACC-1",)),
            ],
            limit=0.3,
            loop=beating_loop.loop,
            call_later=clock.call_later if handed_over_by == "timer" else None,
        ).result(timeout=30)
    finally:
        gate.release.set()
        clock.close()
    assert time.monotonic() - started < 2
    assert answers[0] == "local"
    assert isinstance(answers[1], BookCallTimeoutError)
    assert str(answers[1]) == "broker.get_positions did not answer within 0.3 s"
    assert answers[2] == "account"


def test_a_started_job_refuses_a_call_that_still_hangs_and_makes_the_others(
    caller: Caller, beating_loop: FetchLoop
) -> None:
    gate = Gate()
    try:
        first = caller.calls.start_all(
            "ACC-1", [("broker.get_positions", gate.get_positions, ("ACC-1",))], limit=0.2, loop=beating_loop.loop
        ).result(timeout=30)
        assert isinstance(first[0], BookCallTimeoutError)
        again = caller.calls.start_all(
            "ACC-1",
            [("broker.get_positions", gate.get_positions, ("ACC-1",)), ("broker.get_account", lambda _: 1, ("ACC-1",))],
            limit=5,
            loop=beating_loop.loop,
        ).result(timeout=30)
    finally:
        gate.release.set()
    assert isinstance(again[0], BookCallError)
    assert "still running from an earlier run" in str(again[0])
    assert again[1] == 1
    assert gate.calls == 1


def test_a_started_job_whose_answer_is_awaitable_is_awaited_on_the_loop(
    caller: Caller, beating_loop: FetchLoop
) -> None:
    async def later() -> str:
        return "done"

    answers = caller.calls.start_all(
        "ACC-1", [("broker.get_positions", lambda _: later(), ("ACC-1",))], limit=5, loop=beating_loop.loop
    ).result(timeout=30)
    assert answers == ["done"]
