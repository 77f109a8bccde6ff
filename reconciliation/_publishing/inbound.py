"""A stream entry as a reader takes it: decoded, checked against the payload schema, or malformed.

Anyone with write access to Redis can append to the streams, so a reader trusts no
entry: one larger than `MAX_ENTRY_BYTES`, not JSON, nested deeper than `MAX_DEPTH`, or
not what `SCHEMA` (payloads.schema.json, shipped with the package) admits on its
channel becomes a `Message` with a `problem` and no payload, which the reader shows as
malformed, with its stream ID, and goes on. The problem names the key and what is wrong
with it (`consecutive_runs: out of range (1 to 9007199254740992)`). A well-formed
payload may carry keys the schema does not know; they are kept.

An entry made under an account lease also has the fields `runtime` and `fencing_token`
(docs/payloads.md): both or neither, a runtime name of 1 to 200 printable characters and
a token in decimal digits, or the entry is malformed too. They become the message's `fence`.

The size and depth guards run first, so the schema is only ever checked against a
small, shallow value. jsonschema is imported when the first entry is checked, not by
every command that imports this module.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

import attrs

from reconciliation._domain.fencing import Fence

if TYPE_CHECKING:
    from reconciliation._publishing.streams import StreamEntry

__all__ = [
    "MAX_DEPTH",
    "MAX_ENTRY_BYTES",
    "SCHEMA",
    "SEVERITIES",
    "Message",
    "decode",
    "problem_with",
]

MAX_ENTRY_BYTES = 1 << 20
"""An entry's `payload` field larger than this (1 MiB) is malformed; real payloads are a few hundred bytes."""
MAX_DEPTH = 8
"""Objects and arrays nested deeper than this are malformed; real payloads nest 3 deep."""

SCHEMA: Mapping[str, Any] = json.loads(
    resources.files("reconciliation._wire").joinpath("payloads.schema.json").read_text(encoding="utf-8")
)
"""The JSON Schema of every payload: `$defs/result` for reconciliation:result, and so on (docs/payloads.md)."""
SEVERITIES: tuple[str, ...] = tuple(SCHEMA["$defs"]["severity"]["enum"])
"""The severities a payload may carry, least severe first."""

_PREVIEW_BYTES = 200
_MAX_RUNTIME_CHARS = 200
_MAX_TOKEN_DIGITS = 19
"""A token is a Redis counter: at most 2^63 - 1."""
_KINDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "an array",
    "null": "null",
}
"""A JSON Schema type, as a problem names it."""


@attrs.frozen
class Message:
    """A stream entry, decoded: its payload if well formed, otherwise what is wrong with it.

    `problem` and `preview` may hold text from the entry: show them through `safe_text`.
    """

    stream: str
    channel: str
    entry_id: str
    replayed: bool
    payload: Mapping[str, Any] | None
    problem: str | None = None
    preview: str = ""
    """The start of a malformed entry's text."""
    fence: Fence | None = None
    """The lease the entry was made under: the runtime that owned the account, and its token.
    None: made without a lease, or malformed."""

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


@functools.cache
def _validator(channel: str) -> Any:
    """The check of `channel`'s payloads: `reconciliation:halt` against `$defs/halt`."""
    import jsonschema  # noqa: PLC0415 - about 80 ms, paid by the first entry checked

    return jsonschema.Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{channel.rpartition(':')[2]}"})


def _shown(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _where(path: Iterable[str | int]) -> str:
    """`["netted", 0, "side"]` as `netted[0].side`."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else f".{step}" if text else step
    return text


def _reason(error: Any) -> str:  # noqa: PLR0911 - one answer per JSON Schema keyword
    """What a `jsonschema.ValidationError` found wrong, without the value itself."""
    keyword, expected, schema = error.validator, error.validator_value, error.schema
    if keyword == "required":
        return f"missing {', '.join(key for key in expected if key not in error.instance)}"
    if keyword == "type":
        return "not " + " or ".join(_KINDS[kind] for kind in ([expected] if isinstance(expected, str) else expected))
    if keyword == "enum":
        return f"not one of {', '.join(map(_shown, expected))}"
    if keyword == "const":
        return f"not {_shown(expected)}"
    if keyword in {"minimum", "maximum"}:
        return f"out of range ({_shown(schema.get('minimum', '-inf'))} to {_shown(schema.get('maximum', 'inf'))})"
    if keyword == "minLength" and expected == 1:
        return "empty"
    return f"not {schema.get('title', 'what docs/payloads.md describes')}"


def problem_with(channel: str, payload: Any) -> str | None:
    """What makes `payload` unfit for `channel`, or None if the schema admits it.

    Of several problems, one at the top (a missing key) is named before one inside a value.
    """
    if not isinstance(payload, dict):
        return f"not a JSON object but {type(payload).__name__}"
    if _depth(payload) > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    errors = list(_validator(channel).iter_errors(payload))
    if not errors:
        return None
    error = min(errors, key=lambda found: len(found.absolute_path))
    where = _where(error.absolute_path)
    return f"{where}: {_reason(error)}" if where else _reason(error)


def _no_constant(name: str) -> Any:
    msg = f"{name} is not a JSON number"
    raise ValueError(msg)


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        msg = f"{text:.40} is beyond the range of a JSON number"
        raise ValueError(msg)
    return number


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
        return None, f"not JSON: {exc}"


def _runtime_name(raw: bytes) -> str | None:
    """The runtime name in a `runtime` field; None if it is not 1 to 200 printable characters."""
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return name if name.strip() and name.isprintable() and len(name) <= _MAX_RUNTIME_CHARS else None


def _fence(runtime: bytes | None, token: bytes | None) -> tuple[Fence | None, str | None]:
    """The lease an entry's `runtime` and `fencing_token` fields name, or why they name none."""
    if runtime is None and token is None:
        return None, None
    if runtime is None or token is None:
        present, absent = ("runtime", "fencing_token") if token is None else ("fencing_token", "runtime")
        return None, f"a {present} field without a {absent} field"
    name = _runtime_name(runtime)
    if name is None:
        return None, f"runtime: not 1 to {_MAX_RUNTIME_CHARS} printable characters"
    if not token.isdigit() or len(token) > _MAX_TOKEN_DIGITS:
        return None, "fencing_token: not a whole number"
    return Fence(name, int(token)), None


def decode(entry: StreamEntry) -> Message:
    """The entry's payload and lease, checked; a malformed entry says why instead."""
    payload, problem = _parse(entry.raw)
    if problem is None:
        problem = problem_with(entry.channel, payload)
    fence, fence_problem = _fence(entry.runtime, entry.fencing_token)
    problem = problem or fence_problem
    if problem is None:
        return Message(entry.stream, entry.channel, entry.entry_id, entry.replayed, payload, fence=fence)
    preview = "" if entry.raw is None else entry.raw[:_PREVIEW_BYTES].decode("utf-8", "replace")
    return Message(entry.stream, entry.channel, entry.entry_id, entry.replayed, None, problem, preview)
