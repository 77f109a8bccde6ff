"""How long to wait before trying again something unavailable (a sink, a Redis to read)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Backoff"]

MAX_EXPONENT = 30
"""2**30 times the base is past any sensible cap: the exponent stops growing there, so a
days-long outage cannot overflow the delay."""


@attrs.frozen
class Backoff:
    """Pauses that double from `base` up to `cap`, and when to give up.

    `give_up_after_seconds` is counted from the first failure of an outage; None: never.
    """

    base: float = 0.1
    cap: float = 5.0
    give_up_after_seconds: float | None = 300.0

    def delay(self, attempt: int, *, uniform: Callable[[float, float], float] | None = None) -> float:
        """The pause after the `attempt`-th failure in a row (1-based). With `uniform` (such as
        `random.uniform`) it is drawn from the upper half of that, so that many clients
        retrying one server do not retry in step."""
        ceiling = float(min(self.cap, self.base * 2 ** min(attempt - 1, MAX_EXPONENT)))
        return ceiling if uniform is None else uniform(ceiling / 2, ceiling)
