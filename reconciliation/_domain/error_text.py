"""How an exception or other outside data is told to an operator: on one line, bounded.

Error texts end up in results, Redis payloads, the audit store and the log; whatever a
broker raised or answered is in them, so each is cut to a documented size, and a run's
error keeps no secret and no control character (`outside_text`).
"""

from __future__ import annotations

import difflib

from reconciliation._domain.redaction import redact_text
from reconciliation._domain.values import carriable

__all__ = [
    "MAX_ERROR_TEXT",
    "MAX_VALUE_TEXT",
    "bounded",
    "describe_error",
    "outside_text",
    "shown",
    "unknown_key",
]

MAX_ERROR_TEXT = 2_000
"""The longest error text a run carries (docs/configuration.md, Limits)."""

MAX_VALUE_TEXT = 120
"""The longest rendering of one outside value inside an error text."""


def bounded(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """`text`, cut to `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def shown(value: object, limit: int = MAX_VALUE_TEXT) -> str:
    """`repr(value)`, bounded: how an outside value is quoted in an error text."""
    try:
        text = repr(value)
    except Exception as error:  # noqa: BLE001 - a hostile __repr__ must not hide the error
        text = f"<{type(value).__name__} whose repr failed: {type(error).__name__}>"
    return bounded(text, limit)


def describe_error(error: BaseException | None) -> str:
    """`ConnectionError: gateway down`; just the type when there is no message. Bounded."""
    if error is None:
        return "unknown error"
    try:
        text = str(error)
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises is still named
        text = "(its message could not be read)"
    return bounded(f"{type(error).__name__}: {text}" if text else type(error).__name__)


def outside_text(value: str | None) -> str | None:
    """An error text as every sink may carry it: secrets out (`redact_text`: passwords, and the
    query strings of web URLs, where a signed request keeps its signature) and control
    characters written as escapes (`values.carriable`). A converter: anything but a str
    is left for a validator."""
    if not isinstance(value, str):
        return value
    return carriable(redact_text(value))


def unknown_key(key: str, known: tuple[str, ...], where: str = "") -> str:
    """The problem with a key of a table (`where`) that is none of `known`: the closest one
    suggested, else all of them listed, so a typo never silently leaves a default in place."""
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(known)}"
    return f"unknown key{f' in {where}' if where else ''}{hint}"
