"""Figures read straight from a venue's raw answer (the JSON an SDK keeps as `info`), by path.

A venue profile names where each figure it needs is: `"walletBalance"`,
`"data.0.details"`, `"accounts.fi_*.balances"`. A path is dot-separated keys and list
indexes; `*` (or a key pattern such as `fi_*`) matches every key or element, and then
the figure is the sum of what it matches; `a|b` reads `b` where the venue sends no `a`.
A `Figure` is one path or a sum of them, `total + unrealised_pnl`,
`marginSummary.accountValue - assetPositions.*.position.unrealizedPnl`.

Numbers come as the SDK parsed the venue's JSON: text (kept exactly), an int, or a
float that the JSON parser made from the venue's digits (read back as its shortest
text, which is those digits for up to 15 significant digits).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal

import attrs

from reconciliation._domain.values import EXACT
from reconciliation.adapters._common import exact, exact_float

__all__ = ["Figure", "Path", "number", "optional_number"]

_CURE = "the SDK gave a value that is not a number"

_WILD = re.compile(r"[*?\[]")


def number(value: object, what: str) -> Decimal:
    """`value` as an SDK gives a number (Decimal, int, decimal text or a float parsed from the
    venue's text) as the exact Decimal the venue sent.

    Raises:
        BrokerDataError: missing, not a number, or not finite; the message names `what`.
    """
    if isinstance(value, float):
        return exact_float(value, what)
    return exact(value, what, float_cure=_CURE)


def optional_number(value: object, what: str) -> Decimal | None:
    """`number`, or None where the SDK gives nothing (None or empty text)."""
    return None if value is None or value == "" else number(value, what)


@attrs.frozen
class Path:
    """Where one figure is in a raw answer: `a.b.0.c`, `*` or a key pattern for every match,
    `a|b` for `b` where `a` is not sent."""

    text: str
    alternatives: tuple[tuple[str, ...], ...] = attrs.field(init=False)

    @alternatives.default
    def _parsed(self) -> tuple[tuple[str, ...], ...]:
        choices = tuple(tuple(step for step in choice.strip().split(".") if step) for choice in self.text.split("|"))
        if not self.text.strip() or any(not choice for choice in choices):
            msg = f"{self.text!r} is not a path such as 'data.0.details' or 'avgPrice|entryPrice'"
            raise ValueError(msg)
        return choices

    def values(self, node: object) -> list[object]:
        """What the path finds in `node`: every match of its first alternative that the venue sent."""
        for steps in self.alternatives:
            found = [value for value in _walk(node, steps) if value is not None and value != ""]
            if found:
                return found
        return []

    def __str__(self) -> str:
        return self.text


def _walk(node: object, steps: Sequence[str]) -> list[object]:
    if not steps:
        return [node]
    step, rest = steps[0], steps[1:]
    if isinstance(node, Mapping):
        if _WILD.search(step):
            return [found for key in node if fnmatch.fnmatchcase(str(key), step) for found in _walk(node[key], rest)]
        return _walk(node[step], rest) if step in node else []
    if isinstance(node, Sequence) and not isinstance(node, str):
        if _WILD.search(step):
            return [found for element in node for found in _walk(element, rest)]
        if step.isdigit() and int(step) < len(node):
            return _walk(node[int(step)], rest)
    return []


@attrs.frozen
class Figure:
    """One figure of a raw answer: a path, or a sum of paths (`total + unrealised_pnl`)."""

    text: str
    terms: tuple[tuple[int, Path], ...] = attrs.field(init=False)

    @terms.default
    def _parsed(self) -> tuple[tuple[int, Path], ...]:
        parts = re.split(r"\s+([+-])\s+", self.text.strip())
        terms = [(1, Path(parts[0]))]
        terms.extend(
            (1 if sign == "+" else -1, Path(path)) for sign, path in zip(parts[1::2], parts[2::2], strict=True)
        )
        return tuple(terms)

    @property
    def first(self) -> Path:
        """The path of the first term: what a message names when the figure is not sent."""
        return self.terms[0][1]

    def read(self, node: object, where: str) -> Decimal | None:
        """The figure, exactly; None when the venue sent nothing for its first term (a later term
        the venue leaves out counts 0: an unrealised P&L of no position).

        Raises:
            BrokerDataError: a value is not a number (the message names `where` and the path).
        """
        total = Decimal(0)
        for index, (sign, path) in enumerate(self.terms):
            values = path.values(node)
            if not values and index == 0:
                return None
            for value in values:
                found = number(value, f"{where} {path}")
                total = EXACT.add(total, found) if sign > 0 else EXACT.subtract(total, found)
        return total

    def __str__(self) -> str:
        return self.text
