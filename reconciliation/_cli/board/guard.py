"""The board's HTTP connections, bounded in time and in number.

uvicorn waits for a request's headers as long as the client cares to send them: a client
that opens a connection and sends half a request holds a file descriptor for good, and
1,100 of them exhaust a 1,024-descriptor process. The board's connections are therefore
h11 connections with two bounds:

- **A request timeout**: a connection that is ready for a request (just opened, or its
  last response sent) must deliver a whole request — headers and any body — within
  `request_timeout` seconds, or it is closed. A request that has arrived is not timed:
  the `/events` stream lasts as long as the page is open.
- **A connection cap**: past `max_connections` open connections, a new one closes the
  connection that has waited longest without delivering a request; when every open
  connection is serving a request (`/events` streams), the new one is answered 503 and
  closed. So a flood of idle connections never keeps a real request out for longer
  than it takes to send it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    import asyncio

__all__ = ["ACCEPT_BACKLOG", "ConnectionGuard", "GuardedProtocol", "guarded_protocol"]

logger = logging.getLogger(__name__)

ACCEPT_BACKLOG = 64
"""Connections the kernel queues (and the event loop accepts at once) before the cap is applied."""
_WARN_EVERY_SECONDS = 60.0

_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\nContent-Length: 52\r\n\r\n"
    b"the board serves as many connections as it may now\r\n"
)
_DONE = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED)


class ConnectionGuard:
    """The bounds of one server, and its connections that are waiting for a request, oldest first."""

    def __init__(self, *, max_connections: int, request_timeout: float) -> None:
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.waiting: dict[GuardedProtocol, None] = {}
        """Insertion-ordered: the connection waiting longest first."""
        self._warned_at = -_WARN_EVERY_SECONDS

    def warn(self, message: str) -> None:
        """Log `message` at WARNING at most once a minute (a flood would repeat it thousands of times)."""
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_SECONDS:
            self._warned_at = now
            logger.warning(message)


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol, bounded by its class's `guard` (see `guarded_protocol`)."""

    guard: ClassVar[ConnectionGuard]
    _request_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_request()
        guard = self.guard
        if len(self.connections) <= guard.max_connections:
            return
        oldest = next((waiting for waiting in guard.waiting if waiting is not self), None)
        if oldest is not None:
            guard.warn(
                f"The board has {len(self.connections)} connections, more than its {guard.max_connections}: "
                "closing those that have waited longest without sending a request"
            )
            oldest.drop()
            return
        guard.warn(f"The board serves {guard.max_connections} requests: new connections are answered 503")
        transport.write(_REFUSED)
        self.drop()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state in _DONE:
            self._request_arrived()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._await_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._request_arrived()
        super().connection_lost(exc)

    def drop(self) -> None:
        """Close the connection now (a timed-out or displaced one)."""
        self._request_arrived()
        if not self.transport.is_closing():
            self.transport.close()

    def _await_request(self) -> None:
        self._request_arrived()
        self.guard.waiting[self] = None
        self._request_timer = self.loop.call_later(self.guard.request_timeout, self._timed_out)

    def _request_arrived(self) -> None:
        self.guard.waiting.pop(self, None)
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _timed_out(self) -> None:
        self._request_timer = None
        logger.debug("Closed a connection that sent no whole request within %g s", self.guard.request_timeout)
        self.drop()


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedProtocol]:
    """The protocol class of one server, bounded by `guard` (give it as `uvicorn.Config(http=...)`)."""
    return type("GuardedProtocol", (GuardedProtocol,), {"guard": guard})
