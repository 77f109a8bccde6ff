"""The post-fill debounce rule, free of actors and threads so it can be tested exhaustively.

A burst of fills gives one run: `delay` seconds after the last fill (trailing), but
never later than `max_wait` seconds after the first, so a steady stream of fills
cannot postpone reconciliation forever.
"""

from __future__ import annotations

import attrs

from reconciliation._domain.models import OrderFill

__all__ = ["DebounceWindow"]


@attrs.define(slots=True)
class DebounceWindow:
    """The open burst of one account, from its first fill until its run is due."""

    delay: float
    max_wait: float
    first_at: float | None = None
    last_at: float | None = None
    last_fill: OrderFill | None = None

    @property
    def is_open(self) -> bool:
        return self.first_at is not None

    def add(self, fill: OrderFill, now: float) -> bool:
        """Record a fill; True when it opened a new burst (the caller then sets a timer)."""
        self.last_at = now
        self.last_fill = fill
        if self.first_at is None:
            self.first_at = now
            return True
        return False

    def due_at(self) -> float | None:
        if self.first_at is None or self.last_at is None:
            return None
        return min(self.last_at + self.delay, self.first_at + self.max_wait)

    def take_if_due(self, now: float) -> OrderFill | None:
        """The burst's last fill if its run is due now (closing the burst), else None."""
        due = self.due_at()
        if due is None or now < due:
            return None
        fill = self.last_fill
        self.first_at = self.last_at = None
        self.last_fill = None
        return fill
