"""A stream entry as a reader takes it: decoded, checked against docs/payloads.md, or malformed.

Anyone with write access to Redis can append to the streams, so a reader trusts no
entry: one that is not a JSON object of the documented keys and types (or is larger
than `MAX_ENTRY_BYTES`, or nested deeper than `MAX_DEPTH`) becomes a `Message` with a
`problem` and no payload, which the reader shows as malformed, with its stream ID, and
goes on. A well-formed payload may carry keys a reader does not know; they are kept.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from reconciliation._cli.safe_text import safe_text
from reconciliation._publishing.payloads import (
    CORRECTION_CHANNEL,
    DISCREPANCY_CHANNEL,
    HALT_CHANNEL,
    RESOLVED_CHANNEL,
    RESULT_CHANNEL,
)

if TYPE_CHECKING:
    from reconciliation._cli.streams import StreamEntry

__all__ = [
    "MAX_DEPTH",
    "MAX_ENTRY_BYTES",
    "MAX_WHOLE_NUMBER",
    "SEVERITIES",
    "Message",
    "decode",
]

logger = logging.getLogger(__name__)

MAX_ENTRY_BYTES = 1 << 20
"""An entry's `payload` field larger than this (1 MiB) is malformed; real payloads are a few hundred bytes."""
MAX_DEPTH = 8
"""Objects and arrays nested deeper than this are malformed; real payloads nest 3 deep."""
MAX_WHOLE_NUMBER = 2**53
"""The largest count a payload may carry (the largest integer a JSON reader keeps exact)."""
MAX_DURATION_MS = 1e12
"""About 31 years: a longer `duration_ms` is malformed."""
SEVERITIES = ("info", "warning", "critical")

_PREVIEW_CHARACTERS = 200

Check = Callable[[Any], str | None]
"""A key's rule: None if the value is fine, else what is wrong with it."""


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "not a string"


def _optional_text(value: Any) -> str | None:
    return None if value is None or isinstance(value, str) else "not a string or null"


def _time(value: Any) -> str | None:
    if not isinstance(value, str):
        return "not an ISO-8601 time"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return "not an ISO-8601 time"
    return None if moment.utcoffset() is not None else "an ISO-8601 time without its UTC offset"


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "not true or false"


def _count(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return "not a whole number"
    return None if 0 <= value <= MAX_WHOLE_NUMBER else f"out of range (0 to {MAX_WHOLE_NUMBER})"


def _milliseconds(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "not a number"
    return None if 0 <= value <= MAX_DURATION_MS else f"out of range (0 to {MAX_DURATION_MS:.0e} ms)"


def _severity(value: Any) -> str | None:
    return None if isinstance(value, str) and value in SEVERITIES else f"not one of {', '.join(SEVERITIES)}"


def _status(value: Any) -> str | None:
    return None if isinstance(value, str) and value in {"ok", "failed"} else "not ok or failed"


def _context(value: Any) -> str | None:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return "not an object of strings"
    return None


_RULES: dict[str, tuple[dict[str, Check], dict[str, Check]]] = {
    RESULT_CHANNEL: (
        {
            "run_id": _text,
            "account_id": _text,
            "timestamp": _time,
            "is_clean": _flag,
            "discrepancy_count": _count,
            "positions_checked": _count,
            "duration_ms": _milliseconds,
            "context": _context,
            "status": _status,
            "error": _optional_text,
        },
        {},
    ),
    DISCREPANCY_CHANNEL: (
        {
            "run_id": _text,
            "type": _text,
            "severity": _severity,
            "symbol": _optional_text,
            "local_value": _optional_text,
            "broker_value": _optional_text,
            "timestamp": _time,
            "account_id": _text,
        },
        {"break_id": _text, "first_seen": _time, "consecutive_runs": _count},
    ),
    RESOLVED_CHANNEL: (
        {
            "run_id": _text,
            "account_id": _text,
            "type": _text,
            "symbol": _optional_text,
            "severity": _severity,
            "first_seen": _time,
            "last_seen": _time,
            "resolved_at": _time,
            "consecutive_runs": _count,
            "break_id": _text,
        },
        {},
    ),
    HALT_CHANNEL: (
        {
            "run_id": _text,
            "account_id": _text,
            "type": _text,
            "symbol": _optional_text,
            "severity": _severity,
            "local_value": _optional_text,
            "broker_value": _optional_text,
            "timestamp": _time,
            "break_id": _text,
            "first_seen": _time,
            "consecutive_runs": _count,
        },
        {},
    ),
    CORRECTION_CHANNEL: (
        {
            "event_id": _text,
            "status": _text,
            "mode": _text,
            "account_id": _text,
            "break_id": _text,
            "run_id": _text,
            "type": _text,
            "symbol": _optional_text,
            "severity": _severity,
            "timestamp": _time,
            "actor": _text,
        },
        {
            "local_value": _optional_text,
            "broker_value": _optional_text,
            "quantity": _optional_text,
            "price": _optional_text,
            "avg_cost": _optional_text,
            "cash": _optional_text,
            "notional": _optional_text,
            "reason": _optional_text,
            "consecutive_runs": _count,
        },
    ),
}
"""Per channel: the keys every payload has (docs/payloads.md) and the keys some have, with their rules."""


@attrs.frozen
class Message:
    """A stream entry, decoded: its payload if well formed, otherwise what is wrong with it."""

    stream: str
    channel: str
    entry_id: str
    replayed: bool
    payload: Mapping[str, Any] | None
    problem: str | None = None
    preview: str = ""
    """The start of a malformed entry's text, safe to show."""

    @property
    def malformed(self) -> bool:
        return self.payload is None


def _depth(value: Any) -> int:
    """How deeply `value` nests objects and arrays, counted without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        pending.extend((child, level + 1) for child in children)
    return deepest


def _no_constant(name: str) -> Any:
    msg = f"{name} is not a JSON number"
    raise ValueError(msg)


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        msg = f"{safe_text(text, limit=40)} is beyond the range of a JSON number"
        raise ValueError(msg)
    return number


def problem_with(channel: str, payload: Any) -> str | None:
    """What makes `payload` unfit for `channel`, or None if it is a well-formed payload."""
    if not isinstance(payload, dict):
        return f"not a JSON object but {type(payload).__name__}"
    if _depth(payload) > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    required, optional = _RULES[channel]
    missing = [key for key in required if key not in payload]
    if missing:
        return f"missing {', '.join(missing)}"
    for key, check in (*required.items(), *optional.items()):
        if key in payload and (wrong := check(payload[key])) is not None:
            return f"{key}: {wrong}"
    return None


def _parse(raw: bytes | None) -> tuple[Any, str | None]:
    """The JSON value of an entry's payload field, or why there is none."""
    if raw is None:
        return None, "no payload field"
    if len(raw) > MAX_ENTRY_BYTES:
        return None, f"{len(raw)} bytes, more than the {MAX_ENTRY_BYTES} a payload may have"
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite_float), None
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except RecursionError:
        return None, "not JSON: nested too deeply"
    except ValueError as exc:
        return None, f"not JSON: {safe_text(exc, limit=_PREVIEW_CHARACTERS)}"


def decode(entry: StreamEntry) -> Message:
    """The entry's payload, checked; a malformed entry says why instead."""
    payload, problem = _parse(entry.raw)
    if problem is None:
        problem = problem_with(entry.channel, payload)
    if problem is None:
        return Message(entry.stream, entry.channel, entry.entry_id, entry.replayed, payload)
    text = "" if entry.raw is None else entry.raw[: _PREVIEW_CHARACTERS * 4].decode("utf-8", "replace")
    return Message(
        entry.stream,
        entry.channel,
        entry.entry_id,
        entry.replayed,
        None,
        problem,
        safe_text(text, limit=_PREVIEW_CHARACTERS),
    )
