"""The fetcher's event loop, and how it tells a loop frozen by a blocking call from a
process that is only starved of CPU.

A `FetchLoop` runs in a daemon thread and beats every `LOOP_BEAT_SECONDS`. A loop that has
not beaten for `LOOP_STALL_SECONDS` used to be called frozen — but under CPU starvation
(a host with every core busy, a cgroup throttled, a thread holding the GIL through a large
computation) every thread of the process is late, the loop's beat included, and a healthy
loop was replaced, with an ERROR about a blocking `async def` that did not exist.

So the loop is compared with a `Pulse`: a thread of the same process that does nothing but
beat. A loop is frozen only when it has missed its beats *while the pulse kept beating*
(`STALL_BEATS` of the pulse since the loop's last beat): the process ran, the loop did
not. A starved process holds both back, and nothing is called frozen until it runs again.

A frozen loop that is replaced is retired, not abandoned: it is asked to stop once what
runs on it has ended, which it does soon after the blocking call returns — its thread
ends and its file descriptors (selector, self-pipe) are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["LOOP_BEAT_SECONDS", "LOOP_STALL_SECONDS", "LOOP_STOP_TIMEOUT_SECONDS", "STALL_BEATS", "FetchLoop", "Pulse"]

logger = logging.getLogger(__name__)

LOOP_STOP_TIMEOUT_SECONDS = 5.0
LOOP_BEAT_SECONDS = 0.1
LOOP_STALL_SECONDS = 0.75
"""A loop that has not beaten for this long, while the process ran, is frozen by a blocking call."""
STALL_BEATS = round(LOOP_STALL_SECONDS / LOOP_BEAT_SECONDS)
"""How many times the pulse beats in `LOOP_STALL_SECONDS` of the process running."""


class Pulse:
    """A daemon thread that only beats, every `LOOP_BEAT_SECONDS`: how much the process's
    threads have been let run."""

    def __init__(self) -> None:
        self.beats = 0
        self._stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="reconciliation-pulse", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(LOOP_BEAT_SECONDS):
            self.beats += 1

    def stop(self) -> None:
        self._stopped.set()
        if self.thread.is_alive():
            self.thread.join(LOOP_STOP_TIMEOUT_SECONDS)


class FetchLoop:
    """An event loop in a daemon thread, beating every `LOOP_BEAT_SECONDS` while it runs;
    `on_beat` is called on the loop at each beat."""

    def __init__(self, generation: int, pulse: Pulse, on_beat: Callable[[], object] = lambda: None) -> None:
        self.loop = asyncio.new_event_loop()
        self._pulse = pulse
        self._on_beat = on_beat
        self.beat = time.monotonic()
        self._pulse_at_beat = pulse.beats
        self.thread = threading.Thread(target=self._run, name=f"reconciliation-fetch-{generation}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    @property
    def frozen(self) -> bool:
        """The loop has not beaten for `LOOP_STALL_SECONDS` though the process ran meanwhile."""
        return (
            time.monotonic() - self.beat > LOOP_STALL_SECONDS
            and self._pulse.beats - self._pulse_at_beat >= STALL_BEATS
        )

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._beat)
        try:
            self.loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def _beat(self) -> None:
        self.beat = time.monotonic()
        self._pulse_at_beat = self._pulse.beats
        self.loop.call_later(LOOP_BEAT_SECONDS, self._beat)
        try:
            self._on_beat()
        except Exception:
            logger.exception("A fetch loop's beat failed; it beats on")

    def retire(self) -> None:
        """Have it end once what runs on it has ended — the frozen call included, which is
        left to finish (a correction it applies is then reported late, not lost). From
        another thread; does not wait."""
        self._call_soon(self._stop_when_idle)

    def stop(self) -> None:
        """Cancel what runs on it, then end it (from another thread)."""
        self._call_soon(self._cancel_all)
        if self.thread.is_alive():
            self.thread.join(timeout=LOOP_STOP_TIMEOUT_SECONDS)

    def _call_soon(self, callback: Callable[[], None]) -> None:
        if self.loop.is_closed() or not self.thread.is_alive():
            return
        with contextlib.suppress(RuntimeError):  # closed meanwhile
            self.loop.call_soon_threadsafe(callback)

    def _stop_when_idle(self) -> None:
        async def idle() -> None:
            while others := asyncio.all_tasks(self.loop) - {asyncio.current_task(self.loop)}:
                await asyncio.wait(others)
            self.loop.stop()

        self.loop.create_task(idle())

    def _cancel_all(self) -> None:
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()

        async def drain() -> None:
            if tasks:
                await asyncio.wait(tasks, timeout=LOOP_STOP_TIMEOUT_SECONDS / 2)
            self.loop.stop()

        self.loop.create_task(drain())
