"""Converters and validators shared by every model: exact decimals, UTC times, names.

Converters only widen what is exact (an `int` or a decimal string such as "0.523419"
to a `Decimal`, an aware datetime to UTC) and pass anything else through; the
validators then refuse it, naming the field and the value, at construction time,
where the mistake was made.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    import attrs

K = TypeVar("K")
V = TypeVar("V")

__all__ = [
    "EXACT",
    "MAX_DECIMAL_PLACES",
    "MAX_INTEGER_DIGITS",
    "MAX_NAME_LENGTH",
    "MAX_SECONDS",
    "ROUNDED",
    "UNCARRIABLE",
    "FieldError",
    "FieldTypeError",
    "FieldValueError",
    "FrozenMapping",
    "carriable",
    "carriable_text",
    "check_exact",
    "check_name",
    "decimal_mapping",
    "exact_decimal",
    "finite_decimal",
    "finite_seconds",
    "frozen_context",
    "frozen_mapping",
    "made_from_float",
    "name_text",
    "non_empty_text",
    "non_negative",
    "of_type",
    "optional_decimal",
    "optional_decimal_mapping",
    "optional_finite_decimal",
    "positive_seconds",
    "quotient",
    "seconds",
    "uncarriable_at",
    "utc_datetime",
    "utc_only",
    "whole_number",
]

EXACT = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.Overflow],
)
"""Sums, differences and products of finite decimals come out exact: no rounding."""

ROUNDED = decimal.Context(prec=34)
"""A division (an average, a mark, a per-unit cost) cannot always be exact: it is rounded to 34
significant digits, as IEEE decimal128 holds them."""

_EXACT_KINDS = "a Decimal, an int or an exact decimal string"

_FLOAT_DIGITS = 15
"""Every decimal of up to 15 significant digits survives a round trip through a float (and
one written in at most 15 characters has at most 15 digits: the validators' fast path)."""

MAX_INTEGER_DIGITS = 30
"""A figure is below 10**30 in magnitude: no real account's quantity, price or balance
comes near (a 1E+999999999 from a broken feed would make a gigabyte of plain-notation text)."""

MAX_DECIMAL_PLACES = 60
"""A figure has at most 60 decimal places: an 18-decimal token, or an average cost kept to 34
significant digits of a tiny price, fits with room to spare."""

MAX_NAME_LENGTH = 256
"""The longest symbol, account, order, fill or currency name accepted."""

UNCARRIABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""Characters that a name from outside may not hold: C0 and C1 controls and DEL (a NUL is refused
by PostgreSQL; an ESC rewrites a terminal; a line break splits a log line), lone surrogates (not
Unicode text: no UTF-8 store or file holds them), the line and paragraph separators, and the
bidirectional embeddings, overrides and isolates (they reorder what an operator reads)."""

_KEPT_IN_FREE_TEXT = frozenset("\n\t")
"""What free text (an error's message, a traceback) keeps of `UNCARRIABLE`: its lines and tabs."""

_SPURIOUS_DIGITS = 3
"""How many digits beyond a float's shortest text betray a Decimal made from that float."""

_EXACT_TEXT_CURE = (
    "pass the exact value instead: the decimal text the venue sent (Position('AAPL', '0.523419', "
    "'187.5')) or a Decimal made from that text; with ccxt, set exchange.number = Decimal before "
    "loading markets so that it parses every number straight from the venue's text"
)


class FieldError(Exception):
    """What a validator raises: the message, and the field it refuses (`field`, and `key` for an
    entry of a mapping field), as attrs' own `instance_of` hands its `Attribute` along, so a
    reader of outside data (the TOML file) names the key without parsing the message."""

    def __init__(self, message: str, field: str, key: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.key = key


class FieldTypeError(FieldError, TypeError):
    """The field's value is of the wrong type."""


class FieldValueError(FieldError, ValueError):
    """The field's value has the right type, but is refused."""


def exact_decimal(value: Decimal | int | str) -> Decimal:
    """An `int` or a decimal string becomes the exact `Decimal`; anything else (a float,
    text that is not a number) is left for `finite_decimal` to refuse."""
    if type(value) is Decimal:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return cast("Decimal", value)
    return cast("Decimal", value)


def optional_decimal(value: Decimal | int | str | None) -> Decimal | None:
    if value is None or type(value) is Decimal:
        return value
    return exact_decimal(value)


def finite_decimal(_instance: object, field: attrs.Attribute[Any], value: object) -> None:
    """Refuse float, bool, NaN, infinity, a Decimal made from a float, a figure past the
    bounds (`MAX_INTEGER_DIGITS`, `MAX_DECIMAL_PLACES`), and anything else that is not an
    exact number."""
    if type(value) is Decimal and value.is_finite() and _short_and_plain(value):
        return
    check_exact(field.name, value)


def _short_and_plain(value: Decimal) -> bool:
    """Written in at most 15 characters, without an exponent: within every bound, and no
    float's error can hide in it (the validators' fast path)."""
    text = str(value)
    return len(text) <= _FLOAT_DIGITS and "E" not in text


def check_exact(name: str, value: object, key: str | None = None) -> None:
    """`finite_decimal` for the field `name`, or its entry `key` (of a mapping field)."""
    subject = name if key is None else f"{name}[{key!r}]"
    if isinstance(value, float):
        msg = (
            f"{subject} must be {_EXACT_KINDS}, not the float {value!r:.100}: a float cannot hold most "
            f"decimal fractions (0.1 is really 0.1000000000000000055...), so a number that went "
            f"through one may already be off; {_EXACT_TEXT_CURE}"
        )
        raise FieldTypeError(msg, name, key)
    if isinstance(value, str):
        msg = f"{subject} must be {_EXACT_KINDS}, not the text {value!r:.100}, which is not a number"
        raise FieldValueError(msg, name, key)
    if not isinstance(value, Decimal):
        msg = f"{subject} must be {_EXACT_KINDS}, not {type(value).__name__} {value!r:.100}"
        raise FieldTypeError(msg, name, key)
    if not value.is_finite():
        msg = f"{subject} must be a finite number, not {value!r:.100}"
        raise FieldValueError(msg, name, key)
    source = made_from_float(value)
    if source is not None:
        msg = (
            f"{subject} is {value}, a Decimal made from the float {source!r}: Decimal(float) keeps "
            f"the float's binary error, so it differs from the decimal you meant and never compares "
            f"equal to the venue's exact figure; {_EXACT_TEXT_CURE}"
        )
        raise FieldValueError(msg, name, key)
    if value.adjusted() >= MAX_INTEGER_DIGITS or value.as_tuple().exponent < -MAX_DECIMAL_PLACES:  # type: ignore[operator]
        msg = (
            f"{subject} is {value:.6E}, beyond what this service accepts: less than 10**{MAX_INTEGER_DIGITS} "
            f"in magnitude and at most {MAX_DECIMAL_PLACES} decimal places (docs/configuration.md, Limits)"
        )
        raise FieldValueError(msg, name, key)


def optional_finite_decimal(_instance: object, field: attrs.Attribute[Any], value: object) -> None:
    if value is None or (type(value) is Decimal and value.is_finite() and _short_and_plain(value)):
        return
    check_exact(field.name, value)


def decimal_mapping(value: Mapping[str, Decimal | int | str] | None) -> Mapping[str, Decimal] | None:
    """A read-only copy with every amount widened like `exact_decimal`; None stays None."""
    if value is None or not isinstance(value, Mapping):
        return value
    return FrozenMapping({key: exact_decimal(amount) for key, amount in value.items()})


def optional_decimal_mapping(_instance: object, field: attrs.Attribute[Any], value: object) -> None:
    """None, or a mapping of non-empty names (such as currency codes) to exact finite amounts."""
    if value is None:
        return
    if not isinstance(value, Mapping):
        msg = f"{field.name} must be a mapping of currency to amount, or None, not {type(value).__name__} {value!r:.100}"
        raise FieldTypeError(msg, field.name)
    for key, amount in value.items():
        if not isinstance(key, str) or not key.strip():
            msg = f"{field.name} has the key {key!r}: each key must be a non-empty currency code"
            raise FieldValueError(msg, field.name)
        check_name(field.name, key, key)
        check_exact(field.name, amount, key)


def made_from_float(value: Decimal) -> float | None:
    """The float `value` was made from (`Decimal(0.1)`), or None for an exact decimal.

    A Decimal made from a float holds the float's exact binary value, with far more
    significant digits than the float's shortest text (`repr`): 0.1 becomes
    0.1000000000000000055511151231257827021181583404541015625. A value is taken for one
    when it equals a float exactly and carries at least `_SPURIOUS_DIGITS` more
    significant digits than that float's shortest text. A whole number is exact either
    way; a decimal of at most 15 significant digits never qualifies; and a large exact
    decimal that merely happens to be a binary fraction (156250000000001.125, one digit
    more than its float's 156250000000001.12) is not mistaken for one.
    """
    digits = value.as_tuple().digits
    if len(digits) <= _FLOAT_DIGITS or value == value.to_integral_value():
        return None
    number = float(value)
    if not math.isfinite(number) or Decimal(number) != value:
        return None
    shortest = len(Decimal(repr(number)).normalize().as_tuple().digits)
    if len(value.normalize().as_tuple().digits) >= shortest + _SPURIOUS_DIGITS:
        return number
    return None


def quotient(dividend: Decimal, divisor: Decimal) -> Decimal:
    """`dividend / divisor` rounded (`ROUNDED`) to a figure the validators accept.

    A quotient of two exact figures can be a binary fraction (347892350979 / 1024 is
    339738624.0029296875): exact, yet equal to a float and longer than its text, so
    `made_from_float` would take it for a Decimal made from a float and the position,
    holding or correction built from it would be refused. Such a quotient is rounded a
    digit at a time until it cannot be taken for one (at 15 digits at the latest).
    """
    value = ROUNDED.divide(dividend, divisor)
    digits = len(value.as_tuple().digits)
    while made_from_float(value) is not None:
        digits -= 1
        value = decimal.Context(prec=digits).plus(value)
    return value


def utc_datetime(value: dt.datetime) -> dt.datetime:
    """An aware datetime in UTC; a naive one is left for `utc_only` to refuse."""
    if isinstance(value, dt.datetime) and value.utcoffset() is not None:
        return value.astimezone(dt.UTC)
    return value


def utc_only(_instance: object, field: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, dt.datetime):
        msg = f"{field.name} must be a timezone-aware datetime, not {type(value).__name__} {value!r:.100}"
        raise FieldTypeError(msg, field.name)
    if value.utcoffset() is None:
        msg = f"{field.name} must be timezone-aware (UTC), not the naive datetime {value.isoformat()}"
        raise FieldValueError(msg, field.name)


def non_empty_text(_instance: object, field: attrs.Attribute[Any], value: object) -> None:
    """Refuse anything but a string with visible characters."""
    if not isinstance(value, str):
        msg = f"{field.name} must be a str, not {type(value).__name__} {value!r:.100}"
        raise FieldTypeError(msg, field.name)
    if not value.strip():
        msg = f"{field.name} must not be empty, got {value!r:.100}"
        raise FieldValueError(msg, field.name)


def name_text(instance: object, field: attrs.Attribute[Any], value: object) -> None:
    """A name (symbol, account, order, fill, currency): visible, at most `MAX_NAME_LENGTH` long,
    without a character of `UNCARRIABLE`."""
    if type(value) is str and 0 < len(value) <= MAX_NAME_LENGTH and value.isprintable() and not value.isspace():
        return
    non_empty_text(instance, field, value)
    if len(value) > MAX_NAME_LENGTH:  # type: ignore[arg-type]
        msg = (
            f"{field.name} is {len(value)} characters long ({value[:40]!r}...): at most "  # type: ignore[arg-type, index]
            f"{MAX_NAME_LENGTH} are accepted (docs/configuration.md, Limits)"
        )
        raise FieldValueError(msg, field.name)
    check_name(field.name, value)  # type: ignore[arg-type]


def carriable_text(instance: object, field: attrs.Attribute[Any], value: object) -> None:
    """Visible text of any length without a character of `UNCARRIABLE` (who asked for a run)."""
    non_empty_text(instance, field, value)
    check_name(field.name, value)  # type: ignore[arg-type]


def uncarriable_at(text: str) -> int | None:
    """Where `text` holds its first character of `UNCARRIABLE`, or None."""
    if text.isprintable():
        return None
    found = UNCARRIABLE.search(text)
    return None if found is None else found.start()


def check_name(name: str, text: str, key: str | None = None) -> None:
    """Refuse `text` (the field `name`, or its entry `key`) if it holds a character of `UNCARRIABLE`.

    Raises:
        FieldValueError: naming the field, the character (as U+XXXX) and where it is.
    """
    at = uncarriable_at(text)
    if at is None:
        return
    subject = name if key is None else f"{name}[{key!r}]"
    quoted = repr(text) if len(text) <= 80 else f"{text[:80]!r}..."
    msg = (
        f"{subject} holds U+{ord(text[at]):04X}, {_kind_of(text[at])}, at position {at} ({quoted}): "
        "no store, terminal or log carries it safely (docs/configuration.md, Limits)"
    )
    raise FieldValueError(msg, name, key)


def _kind_of(character: str) -> str:
    code = ord(character)
    if 0xD800 <= code <= 0xDFFF:
        return "a lone surrogate (not Unicode text)"
    if code in {0x2028, 0x2029}:
        return "a line separator"
    if code > 0x9F:
        return "a bidirectional control"
    return "a control character"


def carriable(text: str) -> str:
    """Free text (an error's message) with each character of `UNCARRIABLE` but line feeds and
    tabs written as a visible escape (`\\x00`, `\\u202e`): every sink carries it as it is."""
    if text.isprintable():
        return text
    return UNCARRIABLE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    character = match.group(0)
    if character in _KEPT_IN_FREE_TEXT:
        return character
    code = ord(character)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def non_negative(_instance: object, field: attrs.Attribute[Any], value: Decimal | float) -> None:
    """Refuse a negative tolerance or duration."""
    if value < 0:
        msg = f"{field.name} must not be negative, got {value}"
        raise FieldValueError(msg, field.name)


def seconds(value: float | Decimal) -> float:
    """A duration in (possibly fractional) seconds, as a float: time, not money.

    A number too large for a float becomes infinity and a signalling NaN a NaN, for
    `finite_seconds` to refuse with the field's name.
    """
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return math.inf
        except ValueError:
            return math.nan
    return cast("float", value)


MAX_SECONDS = float(int(threading.TIMEOUT_MAX))
"""The longest duration a timer of this platform can wait for (about 292 years on Linux)."""


def finite_seconds(_instance: object, field: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, float):
        msg = f"{field.name} must be a number of seconds, not {type(value).__name__} {value!r:.100}"
        raise FieldTypeError(msg, field.name)
    if not math.isfinite(value):
        msg = f"{field.name} must be a finite number of seconds, not {value!r:.100}"
        raise FieldValueError(msg, field.name)
    if value < 0:
        msg = f"{field.name} must not be negative, got {value} seconds"
        raise FieldValueError(msg, field.name)
    if value > MAX_SECONDS:
        msg = (
            f"{field.name} must be at most {MAX_SECONDS:.0f} seconds (the platform's longest timer), "
            f"got {value:g}; to turn the automatic runs off, set enabled=False"
        )
        raise FieldValueError(msg, field.name)


def positive_seconds(instance: object, field: attrs.Attribute[Any], value: object) -> None:
    """A finite duration of more than zero seconds."""
    finite_seconds(instance, field, value)
    if value == 0:
        msg = f"{field.name} must be more than 0 seconds, got 0"
        raise FieldValueError(msg, field.name)


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


def of_type(kind: type[Any]) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """`attrs.validators.instance_of`, with a message that quotes the value bounded (a config
    read from outside may hold anything, of any size)."""

    def check(_instance: object, field: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, kind):
            msg = f"{field.name} must be a {kind.__name__}, not {type(value).__name__} {value!r:.100}"
            raise FieldTypeError(msg, field.name)

    return check


def whole_number(
    minimum: int, maximum: int | None = None
) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """A validator: an `int` (not a bool) of at least `minimum` and at most `maximum`."""

    def check(_instance: object, field: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            msg = f"{field.name} must be a whole number, not {type(value).__name__} {value!r:.100}"
            raise FieldTypeError(msg, field.name)
        if value < minimum:
            msg = f"{field.name} must be at least {minimum}, got {value}"
            raise FieldValueError(msg, field.name)
        if maximum is not None and value > maximum:
            digits = int(value.bit_length() * math.log10(2))
            given = str(value) if abs(value) < 10**15 else f"about 10**{digits}"
            msg = f"{field.name} must be at most {maximum}, got {given}"
            raise FieldValueError(msg, field.name)

    return check
