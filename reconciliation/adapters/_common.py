"""What every adapter needs: exact numbers from an SDK's values, and errors that name the entry."""

from __future__ import annotations

import logging
import math
from decimal import Decimal, InvalidOperation

__all__ = ["BrokerDataError", "check_account", "exact", "exact_float", "optional_exact"]

logger = logging.getLogger(__name__)


class BrokerDataError(ValueError):
    """The broker answered something an adapter cannot map; the message names the entry and field."""


def exact(value: object, what: str, *, float_cure: str) -> Decimal:
    """`value` (a Decimal, an int or a decimal string, as the SDK gives it) as a Decimal.

    Args:
        what: the entry and field, for the error (`position BTC/USDT:USDT contracts`).
        float_cure: how to make the SDK give exact numbers instead of a float.

    Raises:
        BrokerDataError: missing, a float, not a number, or not finite.
    """
    if value is None or value == "":
        msg = f"{what} is missing"
        raise BrokerDataError(msg)
    if isinstance(value, float):
        msg = f"{what} is the float {value!r}, which cannot be trusted to the cent: {float_cure}"
        raise BrokerDataError(msg)
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        msg = f"{what} is {type(value).__name__} {value!r}, not a number"
        raise BrokerDataError(msg)
    try:
        number = Decimal(value)
    except InvalidOperation:
        msg = f"{what} is {value!r}, not a number"
        raise BrokerDataError(msg) from None
    if not number.is_finite():
        msg = f"{what} is {value!r}, not a finite number"
        raise BrokerDataError(msg)
    return number


def optional_exact(value: object, what: str, *, float_cure: str) -> Decimal | None:
    """`exact`, or None where the SDK gives nothing (None or empty text)."""
    return None if value is None or value == "" else exact(value, what, float_cure=float_cure)


def exact_float(value: float, what: str) -> Decimal:
    """The decimal a float was parsed from, for an SDK that parses the venue's text into floats.

    A float's shortest text (`repr`) is the shortest decimal that reads back as the
    same float, so for the text a venue sends (at most 15 significant digits, or a
    double the venue itself printed shortest, as TWS does) it is exactly that text. A
    whole number comes back without a fraction ("100", not "100.0").

    Raises:
        BrokerDataError: not a finite float.
    """
    if isinstance(value, bool) or not isinstance(value, float | int):
        msg = f"{what} is {type(value).__name__} {value!r}, not a number"
        raise BrokerDataError(msg)
    if not math.isfinite(value):
        msg = f"{what} is {value!r}, not a finite number"
        raise BrokerDataError(msg)
    if isinstance(value, int) or value.is_integer():
        return Decimal(int(value))
    return Decimal(repr(value))


def check_account(asked: str, served: str, adapter: str) -> None:
    """Refuse a call for an account the adapter does not serve.

    Raises:
        BrokerDataError: `asked` is not `served`.
    """
    if asked != served:
        msg = f"this {adapter} reads account {served!r}, not {asked!r}"
        raise BrokerDataError(msg)
