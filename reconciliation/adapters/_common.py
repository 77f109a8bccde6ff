"""What every adapter needs: exact numbers from an SDK's values, errors that name the entry, and
credentials named by environment variables in its `Settings`."""

from __future__ import annotations

import math
import os
import re
import threading
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from reconciliation._domain.error_text import unknown_key
from reconciliation._domain.models import AssetType
from reconciliation._domain.values import FieldValueError

if TYPE_CHECKING:
    import logging
    from collections.abc import Mapping

    import attrs

__all__ = [
    "BrokerDataError",
    "InconsistentVenueDataError",
    "LoggedOnce",
    "MissingCredentialError",
    "check_account",
    "check_credentials",
    "described",
    "exact",
    "exact_float",
    "read_environment",
]


class BrokerDataError(ValueError):
    """The broker answered something an adapter cannot map; the message names the entry and field."""


class InconsistentVenueDataError(BrokerDataError):
    """Two figures the venue gives for one thing disagree (contracts x size and a base size,
    notional and mark price): the run fails naming both, rather than report a break that the
    engine's book cannot fix."""


class LoggedOnce:
    """Warns once per kind of instrument the adapter does not know, for the life of the adapter
    (an unknown asset class is worth one WARNING, not one per run)."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def asset_type(
        self, types: Mapping[str, AssetType], kind: str, where: str, *, said: str, by: str, per: str
    ) -> AssetType:
        """`types[kind]`; for a kind the adapter does not know, `AssetType.OTHER`, with a WARNING
        once per kind: "`where` `said` `kind`, ...: it is compared by its `by`"."""
        if kind in types:
            return types[kind]
        with self._lock:
            first = kind not in self._seen
            self._seen.add(kind)
        if first:
            msg = (
                f"%s {said} %r, which the adapter does not know: it is compared by its {by} as "
                f"asset type 'other' (this is logged once per {per})"
            )
            self._logger.warning(msg, where, kind)
        return AssetType.OTHER


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


class MissingCredentialError(LookupError):
    """An environment variable that an adapter's settings name is not set when its broker is made."""


_ENVIRONMENT_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
"""An environment variable's name, in capitals: most pasted keys and secrets (mixed case, `-`,
`/`, `+`, `=`) never look like one."""

_KEY_LIKE_WORD = re.compile(r"(?=[A-Z0-9]*[0-9])(?=[A-Z0-9]*[A-Z])[A-Z0-9]{12,}|[A-Z0-9]{20,}")
"""A word (between underscores) as an API key is written, not as a name is: twelve or more
capitals mixed with digits (Alpaca's `PKTE5T1D0000EXAMPLE0`), or twenty characters or more."""


def check_credentials(
    field: attrs.Attribute[Any], credentials: Mapping[str, Any], *, known: tuple[str, ...], required: tuple[str, ...]
) -> None:
    """Validate a `credentials` field: each SDK credential (one of `known`, every one of `required`)
    to the NAME of the environment variable holding it, never the credential itself.

    Raises:
        FieldValueError: naming the credential that is unknown, missing or not such a name.
    """
    for key in credentials:
        if key not in known:
            raise FieldValueError(unknown_key(key, known), field.name, key)
    for key in required:
        if key not in credentials:
            msg = "missing: name the environment variable that holds it"
            raise FieldValueError(msg, field.name, key)
    for key, name in credentials.items():
        if not isinstance(name, str) or not _ENVIRONMENT_NAME.match(name):
            msg = "expected the NAME of an environment variable (capitals, digits and _), never the credential itself"
            raise FieldValueError(msg, field.name, key)
        if any(_KEY_LIKE_WORD.fullmatch(word) for word in name.split("_")):
            msg = (
                f"this looks like a key itself ({len(name)} characters), not the name of an environment "
                "variable: put the credential in an environment variable and name that variable here "
                "(if it is a key, it is in this file now: rotate it)"
            )
            raise FieldValueError(msg, field.name, key)


def read_environment(credentials: Mapping[str, str]) -> dict[str, str]:
    """Each credential's value, from the environment variable it names.

    Raises:
        MissingCredentialError: naming the credential (`credentials.secret`): never a value, nor
            the variable's name, which could be a pasted credential of any shape.
    """
    secrets = {}
    for key, name in credentials.items():
        value = os.environ.get(name)
        if not value:
            msg = f"credentials.{key}: the environment variable it names is not set (or is empty)"
            raise MissingCredentialError(msg)
        secrets[key] = value
    return secrets


def described(credentials: Mapping[str, str]) -> str:
    """Which credentials are read from the environment: their keys, never the variables' names
    (a name may be a pasted credential of any shape)."""
    return f"credentials {', '.join(credentials)} from the environment" if credentials else "no credentials"
