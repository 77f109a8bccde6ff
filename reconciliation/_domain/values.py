"""Converters and validators shared by every model: exact decimals, UTC times, names.

Converters only widen what is exact (an `int` to a `Decimal`, an aware datetime to
UTC) and pass anything else through; the validators then refuse it, naming the field
and the value, at construction time, where the mistake was made.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    import attrs

K = TypeVar("K")
V = TypeVar("V")

__all__ = [
    "MAX_SECONDS",
    "FrozenMapping",
    "exact_decimal",
    "finite_decimal",
    "finite_seconds",
    "frozen_context",
    "frozen_mapping",
    "non_empty_text",
    "non_negative",
    "optional_decimal",
    "optional_finite_decimal",
    "positive_seconds",
    "seconds",
    "utc_datetime",
    "utc_only",
    "whole_number",
]


def exact_decimal(value: Decimal | int) -> Decimal:
    """An `int` becomes the exact `Decimal`; anything else is left for `finite_decimal`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return cast("Decimal", value)


def optional_decimal(value: Decimal | int | None) -> Decimal | None:
    return None if value is None else exact_decimal(value)


def finite_decimal(_instance: object, field: attrs.Attribute[Any], value: object) -> None:
    """Refuse float, bool, NaN, infinity and anything else that is not an exact number."""
    if isinstance(value, float):
        msg = (
            f"{field.name} must be a Decimal or an int, not the float {value!r}: "
            f"floats cannot hold money exactly; pass Decimal({str(value)!r})"
        )
        raise TypeError(msg)
    if not isinstance(value, Decimal):
        msg = f"{field.name} must be a Decimal or an int, not {type(value).__name__} {value!r}"
        raise TypeError(msg)
    if not value.is_finite():
        msg = f"{field.name} must be a finite number, not {value!r}"
        raise ValueError(msg)


def optional_finite_decimal(instance: object, field: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        finite_decimal(instance, field, value)


def utc_datetime(value: dt.datetime) -> dt.datetime:
    """An aware datetime in UTC; a naive one is left for `utc_only` to refuse."""
    if isinstance(value, dt.datetime) and value.utcoffset() is not None:
        return value.astimezone(dt.UTC)
    return value


def utc_only(_instance: object, field: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, dt.datetime):
        msg = f"{field.name} must be a timezone-aware datetime, not {type(value).__name__} {value!r}"
        raise TypeError(msg)
    if value.utcoffset() is None:
        msg = f"{field.name} must be timezone-aware (UTC), not the naive datetime {value.isoformat()}"
        raise ValueError(msg)


def non_empty_text(_instance: object, field: attrs.Attribute[Any], value: object) -> None:
    """Refuse anything but a string with visible characters."""
    if not isinstance(value, str):
        msg = f"{field.name} must be a str, not {type(value).__name__} {value!r}"
        raise TypeError(msg)
    if not value.strip():
        msg = f"{field.name} must not be empty, got {value!r}"
        raise ValueError(msg)


def non_negative(_instance: object, field: attrs.Attribute[Any], value: Decimal | float) -> None:
    """Refuse a negative tolerance or duration."""
    if value < 0:
        msg = f"{field.name} must not be negative, got {value}"
        raise ValueError(msg)


def seconds(value: float | Decimal) -> float:
    """A duration in (possibly fractional) seconds, as a float: time, not money."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return float(value)
    return cast("float", value)


MAX_SECONDS = float(int(threading.TIMEOUT_MAX))
"""The longest duration a timer of this platform can wait for (about 292 years on Linux)."""


def finite_seconds(_instance: object, field: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, float):
        msg = f"{field.name} must be a number of seconds, not {type(value).__name__} {value!r:.100}"
        raise TypeError(msg)
    if not math.isfinite(value):
        msg = f"{field.name} must be a finite number of seconds, not {value!r}"
        raise ValueError(msg)
    if value < 0:
        msg = f"{field.name} must not be negative, got {value} seconds"
        raise ValueError(msg)
    if value > MAX_SECONDS:
        msg = (
            f"{field.name} must be at most {MAX_SECONDS:.0f} seconds (the platform's longest timer), "
            f"got {value:g}; to turn the automatic runs off, set enabled=False"
        )
        raise ValueError(msg)


def positive_seconds(instance: object, field: attrs.Attribute[Any], value: object) -> None:
    """A finite duration of more than zero seconds."""
    finite_seconds(instance, field, value)
    if value == 0:
        msg = f"{field.name} must be more than 0 seconds, got 0"
        raise ValueError(msg)


class FrozenMapping(Mapping[K, V]):
    """A read-only, hashable mapping, so frozen models holding one stay hashable."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[K, V]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._items == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return repr(self._items)


def frozen_mapping(value: Mapping[K, V]) -> Mapping[K, V]:
    """A read-only, hashable copy, so a frozen model cannot be changed through its mapping."""
    return FrozenMapping(value)


def frozen_context(value: Mapping[str, str]) -> Mapping[str, str]:
    """`frozen_mapping` for a run's trigger context; typed for attrs converters, which
    cannot take a generic function."""
    return FrozenMapping(value)


def whole_number(
    minimum: int, maximum: int | None = None
) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """A validator: an `int` (not a bool) of at least `minimum` and at most `maximum`."""

    def check(_instance: object, field: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            msg = f"{field.name} must be a whole number, not {type(value).__name__} {value!r:.100}"
            raise TypeError(msg)
        if value < minimum:
            msg = f"{field.name} must be at least {minimum}, got {value}"
            raise ValueError(msg)
        if maximum is not None and value > maximum:
            msg = f"{field.name} must be at most {maximum}, got {value:.6g}"
            raise ValueError(msg)

    return check
