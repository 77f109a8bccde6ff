"""The fetcher's loop: frozen only when it stopped while the process ran, never because the
whole process was starved; a frozen loop, once replaced, ends and closes its files."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually

from reconciliation._runtime.fetch_loop import LOOP_STALL_SECONDS, FetchLoop, Pulse


def open_files() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


@pytest.fixture
def pulse() -> Iterator[Pulse]:
    started = Pulse()
    started.start()
    yield started
    started.stop()


@pytest.fixture
def loop(pulse: Pulse) -> Iterator[FetchLoop]:
    started = FetchLoop(1, pulse)
    started.start()
    yield started
    started.stop()


def test_a_running_loop_is_not_frozen(loop: FetchLoop) -> None:
    time.sleep(2 * LOOP_STALL_SECONDS)
    assert not loop.frozen


def test_a_loop_blocked_while_the_process_runs_is_frozen(loop: FetchLoop) -> None:
    loop.loop.call_soon_threadsafe(time.sleep, 3 * LOOP_STALL_SECONDS)
    eventually(lambda: loop.frozen, timeout=3 * LOOP_STALL_SECONDS, what="the loop seen frozen")


def test_a_loop_held_back_with_the_whole_process_is_not_frozen(loop: FetchLoop) -> None:
    """Starvation, made by this thread keeping the GIL (as a long computation can, or a host
    with no core free): every other thread — the loop's and the pulse's — is held back alike."""
    time.sleep(0.2)  # both have beaten
    interval = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        until = time.monotonic() + 2 * LOOP_STALL_SECONDS
        while time.monotonic() < until:  # pure Python: the GIL is never let go
            pass
        late = time.monotonic() - loop.beat
        frozen = loop.frozen
    finally:
        sys.setswitchinterval(interval)
    assert late > LOOP_STALL_SECONDS, "the loop was held back"
    assert not frozen


def test_a_retired_loop_ends_once_its_blocking_call_returns_and_closes_its_files(pulse: Pulse) -> None:
    before = open_files()
    loop = FetchLoop(1, pulse)
    loop.start()
    unblock = threading.Event()
    loop.loop.call_soon_threadsafe(unblock.wait, 10)
    loop.retire()
    time.sleep(0.2)
    assert loop.thread.is_alive(), "a blocked loop cannot end before its call returns"
    unblock.set()
    loop.thread.join(5)
    assert not loop.thread.is_alive()
    assert loop.loop.is_closed()
    assert open_files() == before


def test_a_replaced_frozen_loop_leaves_no_thread_once_its_call_returns(
    harness_factory: Any, caplog: pytest.LogCaptureFixture
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
    with caplog.at_level(logging.ERROR):
        frozen = harness.reconcile()
    broker.get_positions = original  # type: ignore[method-assign]
    assert frozen.error is not None
    assert "frozen by a blocking call" in frozen.error
    assert "has not run for" in caplog.text
    unblock.set()
    eventually(
        lambda: not any(t.name == "reconciliation-fetch-1" and t.is_alive() for t in threading.enumerate()),
        timeout=10,
        what="the frozen loop's thread ended",
    )
    assert harness.reconcile().status == "ok"


def test_each_beat_calls_on_beat_and_one_that_raises_does_not_stop_the_beat(pulse: Pulse) -> None:
    beats: list[float] = []

    def on_beat() -> None:
        beats.append(time.monotonic())
        if len(beats) == 1:
            raise RuntimeError("a bug in a sweep")

    loop = FetchLoop(1, pulse, on_beat=on_beat)
    loop.start()
    try:
        eventually(lambda: len(beats) >= 3, what="three beats")
        assert not loop.frozen
    finally:
        loop.stop()
