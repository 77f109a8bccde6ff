"""`service.ref`: the runtime's entry, as the engine sees it.

An `EntryRef` is a pykka `ActorRef` of the debouncer whose `ask` refuses, in the caller's
thread, a request for an account the runtime does not reconcile or a message the entry
does not understand, and is typed so that `ask(ReconcileRequest(...))` is a
`ReconciliationResult`. The entry answers a request at once with the run's
`concurrent.futures.Future` and goes on; the asker's future follows it to the result.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import TYPE_CHECKING, Any, Literal, overload

import attrs
import pykka

from reconciliation._domain.models import OrderFill, ReconciliationResult
from reconciliation._runtime.messages import Barrier, ReconcileRequest

if TYPE_CHECKING:
    from collections.abc import Mapping

    from reconciliation._runtime.debouncer_actor import DebouncerActor

__all__ = ["EntryRef", "Refusal", "check_request"]


def check_request(message: object, accounts: Mapping[str, object]) -> None:
    """Refuse what the entry cannot answer, with what to send instead.

    Raises:
        TypeError: not a `ReconcileRequest` or an `OrderFill`.
        ValueError: a request for an account the service does not reconcile.
    """
    if isinstance(message, ReconcileRequest) and message.account_id not in accounts:
        known = ", ".join(sorted(accounts)[:5]) + (", ..." if len(accounts) > 5 else "")
        msg = f"this service reconciles {known}, not {message.account_id!r}"
        raise ValueError(msg)
    if not isinstance(message, ReconcileRequest | OrderFill):
        msg = (
            f"the reconciliation service takes ReconcileRequest (ask) and OrderFill (tell), "
            f"not {type(message).__name__}"
        )
        raise TypeError(msg)


@attrs.frozen
class Refusal:
    """What the entry answers to a message it refuses: raised to an asker by `EntryRef.ask`."""

    error: Exception


def _following(reply: pykka.Future[Any]) -> pykka.Future[Any]:
    """A future of what the entry's `reply` leads to: the run's result, when the reply is the
    run's future; the refusal raised, when it is one."""

    def follow(timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        value = reply.get(timeout=timeout)
        if isinstance(value, Refusal):
            raise value.error
        if isinstance(value, concurrent.futures.Future):
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                return value.result(timeout=remaining)
            except concurrent.futures.TimeoutError:
                msg = f"{timeout} seconds"
                raise pykka.Timeout(msg) from None
        return value

    following: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
    following.set_get_hook(follow)
    return following


class EntryRef(pykka.ActorRef["DebouncerActor"]):
    """`service.ref`: tell it `OrderFill`s, ask it `ReconcileRequest`s.

    .. versionadded:: 0.1
    """

    def __init__(self, actor: DebouncerActor) -> None:
        super().__init__(actor)
        self._accounts: Mapping[str, object] = actor.accounts

    @overload  # type: ignore[override]
    def ask(
        self, message: ReconcileRequest, *, block: Literal[True] = True, timeout: float | None = None
    ) -> ReconciliationResult: ...

    @overload
    def ask(
        self, message: ReconcileRequest, *, block: Literal[False], timeout: float | None = None
    ) -> pykka.Future[ReconciliationResult]: ...

    @overload
    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any: ...

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any:
        """Ask for an on-demand run; the answer is its `ReconciliationResult`.

        Raises:
            TypeError: the message is not a `ReconcileRequest`.
            ValueError: it is for an account the service does not reconcile.
            pykka.Timeout: no result within `timeout` seconds.
        """
        pykka_own = type(message).__module__.split(".")[0] == "pykka"  # a stop, a proxy call
        if not (pykka_own or isinstance(message, Barrier)):
            check_request(message, self._accounts)
        reply = _following(super().ask(message, block=False))
        return reply.get(timeout=timeout) if block else reply

