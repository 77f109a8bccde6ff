"""A runtime's name is held by one live process at a time: a liveness key on Redis.

Leases are held by runtime *name*, so that a process restarted under the same name takes
its own leases back at once. Two live processes under one name would therefore both
believe they hold the same leases; the name itself is claimed to prevent it. The key
`reconciliation:runtime:NAME` holds the process's instance (`host:pid:random`) and is
renewed with the leases, with the same expiry.

At start, a key held by another instance means one of two things:

- that process is dead (it crashed and its key has not expired yet): when the instance
  is on this host and its pid is not running (or is our own pid, reused in a container),
  it is known dead at once; otherwise it is dead if it does not renew the key within one
  renewal interval. Either way the name is taken over, and the leases with it.
- that process lives: it renewed the key while we watched. Starting would make two
  owners of every account of the name, so start is refused (`NameInUseError`).

A process that finds, while running, that its name's key holds another instance (it was
stalled longer than the lease, and a new process took the name) stops owning anything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING

import redis

from reconciliation._publishing.leases import RedisConnection, decoded, set_if

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["NameInUseError", "RuntimeName", "new_instance"]

logger = logging.getLogger(__name__)

WATCH_POLL_SECONDS = 0.05

_LIVE_HERE: set[str] = set()
"""The instances of this process that hold their name (two runtimes of one process)."""


class NameInUseError(RuntimeError):
    """Another live process runs under this runtime name."""


def new_instance() -> str:
    """This process's instance: `host:pid:random` (the random part tells two runtimes of one
    process, and a pid reused after a restart, apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RuntimeName(RedisConnection):
    """Claims and renews the liveness key of runtime `name` for `instance`. Not thread-safe."""

    shut_message = "the runtime name's connection is shut: the runtime is stopping"

    def __init__(
        self,
        connect: Callable[[], redis.Redis | redis.RedisCluster],
        *,
        name: str,
        instance: str,
        ttl_seconds: float,
        renew_seconds: float,
    ) -> None:
        super().__init__(connect)
        self.name = name
        self.instance = instance
        self._ttl_ms = max(int(ttl_seconds * 1000), 1)
        self._renew_seconds = renew_seconds

    def claim(self) -> None:
        """Hold the name, taking it over from a dead process; blocks up to one renewal
        interval when a process elsewhere held it recently.

        Raises:
            NameInUseError: a live process runs under this name.
            redis.RedisError: Redis did not answer.
        """
        other = self.renew()
        if other is not None and other in _LIVE_HERE:
            msg = f"a runtime of this process already runs as {self.name!r}: give each runtime its own name"
            raise NameInUseError(msg)
        if other is None:
            _LIVE_HERE.add(self.instance)
            return
        if not _certainly_dead(other):
            self._watch(other)
        if not self._take_over(other):
            msg = f"another process took the runtime name {self.name!r} while this one was starting"
            raise NameInUseError(msg)
        _LIVE_HERE.add(self.instance)
        logger.info(
            "Runtime name %s: its previous process (%s) is gone; taking its leases over", self.name, other
        )

    def renew(self) -> str | None:
        """Renew the name (or take it, if nobody holds it): None, or the instance holding it.

        Raises:
            redis.RedisError: Redis did not answer.
        """
        try:
            node, key = self._node_and_key()
            free = {None, self.instance}
            while True:
                with contextlib.suppress(redis.WatchError):
                    holder = set_if(node, key, free.__contains__, self.instance, self._ttl_ms)
                    return None if holder in free else holder
        except redis.RedisError:
            self.close()
            raise

    def release(self) -> None:
        """Drop the name at a clean stop, so that a restart under it does not wait."""
        _LIVE_HERE.discard(self.instance)
        try:
            node, key = self._node_and_key()
            set_if(node, key, lambda held: held == self.instance, None)
        except redis.RedisError:
            logger.debug("The runtime name %s could not be released: it expires on its own", self.name)
        finally:
            self.close()

    def _node_and_key(self) -> tuple[redis.Redis, str]:
        node, keys = self._node()
        return node, f"{keys.prefix}runtime:{self.name}"

    def _watch(self, other: str) -> None:
        """Wait one renewal interval (and a little) for `other` to renew the name.

        Raises:
            NameInUseError: it did.
        """
        node, key = self._node_and_key()
        last = int(node.pttl(key))
        deadline = time.monotonic() + self._renew_seconds * 1.2 + 0.2
        while time.monotonic() < deadline:
            time.sleep(WATCH_POLL_SECONDS)
            holder, ttl = decoded(node.get(key)), int(node.pttl(key))
            if holder is None:
                return
            if holder != other or ttl > last:
                msg = (
                    f"another live process runs as runtime {self.name!r} (instance {holder}, which renews its "
                    "leases): give each process its own runtime name (reconciliation run --name, or "
                    "runtime_name in the file)"
                )
                raise NameInUseError(msg)
            last = ttl

    def _take_over(self, other: str) -> bool:
        """Replace `other`'s claim with ours, unless the key changed meanwhile."""
        node, key = self._node_and_key()
        free = {None, other}
        try:
            return set_if(node, key, free.__contains__, self.instance, self._ttl_ms) in free
        except redis.WatchError:
            return False


def _certainly_dead(instance: str) -> bool:
    """Whether `instance` (`host:pid:random`) is a process of this host that no longer runs."""
    host, _, rest = instance.rpartition(":")[0].rpartition(":")
    pid = int(rest) if rest.isdigit() else None
    if pid is None or host != socket.gethostname():
        return False
    if pid == os.getpid():
        return instance not in _LIVE_HERE  # our own pid, reused (a container's pid 1)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False
