"""When the last payload of a run is in Redis: the moment its published marker is set.

A large run is published in parts, and only the last part sets the run's own marker
(`KeySpace.marker`), after its last payload: that moment ends a run seen end to end. On a
private server it is taken from keyspace notifications, by a thread that waits on the
socket (without the GIL); on a shared server, whose configuration is not ours to change,
by polling the marker every 0.2 ms.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from reconciliation._publishing.redis_sink import STANDALONE_KEYS

if TYPE_CHECKING:
    import redis

__all__ = ["Landings"]

POLL_SECONDS = 0.0002


class Landings:
    """The `time.perf_counter()` at which each run's marker was set."""

    def __init__(self, client: redis.Redis, *, notify: bool) -> None:
        self._client = client
        self._landed: dict[str, float] = {}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if notify:
            self._saved = client.config_get("notify-keyspace-events")["notify-keyspace-events"]
            client.config_set("notify-keyspace-events", "K$")
            db = client.connection_pool.connection_kwargs.get("db", 0)
            self._prefix = f"__keyspace@{db}__:{STANDALONE_KEYS.marker('')}"
            self._pubsub = client.pubsub(ignore_subscribe_messages=True)
            self._pubsub.psubscribe(self._prefix + "*")
            self._thread = threading.Thread(target=self._listen, name="bench-landings", daemon=True)
            self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.1)
            if message is None:
                continue
            when = time.perf_counter()
            channel = message["channel"]
            run_id = (channel.decode() if isinstance(channel, bytes) else channel).removeprefix(self._prefix)
            if ":part:" in run_id:
                continue
            with self._changed:
                self._landed[run_id] = when
                self._changed.notify_all()

    def wait(self, run_id: str, timeout: float = 600.0) -> float:
        """When run `run_id`'s last payload was in Redis.

        Raises:
            TimeoutError: it was not there within `timeout` seconds.
        """
        deadline = time.perf_counter() + timeout
        if self._thread is None:
            marker = STANDALONE_KEYS.marker(run_id)
            while not self._client.exists(marker):
                if time.perf_counter() > deadline:
                    break
                time.sleep(POLL_SECONDS)
            else:
                return time.perf_counter()
        else:
            with self._changed:
                if self._changed.wait_for(lambda: run_id in self._landed, timeout):
                    return self._landed.pop(run_id)
        msg = f"run {run_id} was not published within {timeout} s"
        raise TimeoutError(msg)

    def next_after(self, since: float, timeout: float = 60.0) -> tuple[str, float]:
        """The first run whose last payload landed after `since` (a `time.perf_counter()`), and
        when: for a run the benchmark did not ask for (a post-fill run). Keyspace notifications only."""
        if self._thread is None:
            msg = "next_after needs keyspace notifications (a private server)"
            raise RuntimeError(msg)
        with self._changed:

            def landed() -> str | None:
                return next((run for run, when in self._landed.items() if when > since), None)

            if self._changed.wait_for(lambda: landed() is not None, timeout):
                run_id = landed()
                assert run_id is not None  # noqa: S101 - wait_for said so
                return run_id, self._landed.pop(run_id)
        msg = f"no run was published within {timeout} s"
        raise TimeoutError(msg)

    def close(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._pubsub.close()
        self._client.config_set("notify-keyspace-events", self._saved)
