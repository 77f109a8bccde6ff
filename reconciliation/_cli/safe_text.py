"""Text from outside made safe to show: no control character reaches a terminal or a page.

A payload's `error`, a broker's symbol or a recorded context are written by code we do
not control. Shown raw, an ESC (or a C1 CSI, U+009B) starts an escape sequence that can
rewrite the screen, set the window title or plant a hyperlink; a bidirectional override
reorders what the operator reads. `safe_text` shows every such character as a visible
escape (`\\x1b`, `\\u202e`), so the operator sees that it was there and what it was,
and bounds the length.
"""

from __future__ import annotations

__all__ = ["DEFAULT_LIMIT", "safe_text"]

DEFAULT_LIMIT = 500
"""The longest text a command shows for one field, in characters."""

_BIDI_AND_INVISIBLE = (
    *range(0x200B, 0x2010),
    *range(0x2028, 0x202F),
    *range(0x2060, 0x2070),
    0xFEFF,
    0xFFF9,
    0xFFFA,
    0xFFFB,
)

_ESCAPES: dict[int, str] = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))},
    **{code: f"\\u{code:04x}" for code in _BIDI_AND_INVISIBLE},
}
_KEEPING_LINES = {code: text for code, text in _ESCAPES.items() if code not in {0x09, 0x0A}}


def safe_text(value: object, *, limit: int | None = DEFAULT_LIMIT, keep_newlines: bool = False) -> str:
    """`value` as text without control, bidirectional or invisible format characters, at most `limit` long.

    Args:
        value: anything; it is shown as `str(value)` (which cannot fail for the JSON types).
        limit: the most characters kept before the rest is summarised; None keeps all.
        keep_newlines: keep line feeds and tabs (a log record's traceback), escape the rest.
    """
    try:
        text = value if isinstance(value, str) else str(value)
    except ValueError:
        text = f"({type(value).__name__} too large to show)"
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}… ({len(text) - limit} more characters)"
    return text.translate(_KEEPING_LINES if keep_newlines else _ESCAPES)
