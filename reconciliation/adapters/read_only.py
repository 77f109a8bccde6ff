"""Read-only by construction: while the adapter reads, a ccxt exchange sends only declared reads.

ccxt sends every HTTP request through one method, `exchange.fetch(url, method, headers,
body)`. `reading(exchange, venue, reads)` wraps that method of the very exchange object
the host gave (its session, proxies and rate limiter are kept) and, for the requests
made inside the block only, lets through those that one of `reads` allows and refuses
every other before it leaves the process. The host's own calls on the same exchange
(its trading, outside the block) are not touched.

A refused request fails the read with `WriteRefusedError`, naming it, even where ccxt
catches the error itself: ccxt's Hyperliquid sends `approveBuilderFee` and
`setReferrer` while loading markets and ignores their failure.
"""

from __future__ import annotations

import contextlib
import contextvars
import fnmatch
import functools
import inspect
import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

__all__ = ["Read", "WriteRefusedError", "reading"]

_MARK = "_reconciliation_read_only"
"""Set on the wrapper installed as `exchange.fetch`, so that it is installed once."""


@attrs.frozen
class Read:
    """A request a read may send: `method` on a URL path matching `path` (`*` matches anything,
    `/` included)."""

    method: str
    path: str

    def allows(self, method: str, path: str) -> bool:
        return method.upper() == self.method and fnmatch.fnmatchcase(path, self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


class WriteRefusedError(PermissionError):
    """A read tried to send a request its venue profile does not declare as a read; it never left
    the process."""


@attrs.define
class _Reading:
    venue: str
    reads: tuple[Read, ...]
    refused: list[str] = attrs.Factory(list)

    def check(self, url: str, method: str, body: object) -> None:
        path = urlsplit(url).path
        if any(read.allows(method, path) for read in self.reads):
            return
        request = f"{method.upper()} {path}{_action(body)}"
        self.refused.append(request)
        msg = f"{self.venue}: refused {request}: not a read this venue's profile declares"
        raise WriteRefusedError(msg)


_ACTIVE: contextvars.ContextVar[_Reading | None] = contextvars.ContextVar("reconciliation_read", default=None)
"""The read in progress in this context (a task, or the worker thread a sync call runs on)."""


@contextlib.contextmanager
def reading(exchange: Any, venue: str, reads: tuple[Read, ...]) -> Iterator[None]:
    """Let the ccxt calls made in this block send only `reads`.

    Raises:
        WriteRefusedError: a request was refused (it is named, with every other refused one),
            whether or not ccxt let its error through.
    """
    _install(exchange)
    state = _Reading(venue, reads)
    token = _ACTIVE.set(state)
    try:
        yield
    except Exception as exc:
        if state.refused:
            raise WriteRefusedError(_refusal(state)) from exc
        raise
    finally:
        _ACTIVE.reset(token)
    if state.refused:
        raise WriteRefusedError(_refusal(state))


def _refusal(state: _Reading) -> str:
    allowed = ", ".join(map(str, state.reads))
    return (
        f"{state.venue}: a read tried to send {'; '.join(dict.fromkeys(state.refused))}, which is not a "
        f"read, and it was refused before it left the process (a read may send {allowed})"
    )


def _install(exchange: Any) -> None:
    """Wrap `exchange.fetch` (once; again if the host replaced it since)."""
    current = exchange.__dict__.get("fetch")
    if current is not None and getattr(current, _MARK, False):
        return
    original = exchange.fetch

    @functools.wraps(original)
    def guarded(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        active = _ACTIVE.get()
        if active is not None:
            active.check(url, method, body)
        return original(url, method, headers, body)

    @functools.wraps(original)
    async def guarded_async(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        return await guarded(url, method, headers, body)

    wrapper = guarded_async if inspect.iscoroutinefunction(original) else guarded
    setattr(wrapper, _MARK, True)
    exchange.fetch = wrapper


def _action(body: object) -> str:
    """` (approveBuilderFee)`: what a JSON body says it does, never its values or signature."""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except ValueError:
            return ""
    if not isinstance(body, Mapping):
        return ""
    action = body.get("action")
    kind = action.get("type") if isinstance(action, Mapping) else body.get("type", body.get("method"))
    return f" ({kind})" if isinstance(kind, str) and kind.isidentifier() else ""
