"""How an exception is told to an operator: its type and its message, on one line."""

from __future__ import annotations

__all__ = ["describe_error"]


def describe_error(error: BaseException | None) -> str:
    """`ConnectionError: gateway down`; just the type when there is no message."""
    if error is None:
        return "unknown error"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
