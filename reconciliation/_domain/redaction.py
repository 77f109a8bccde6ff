"""Passwords out of URLs and messages: the one place a secret is taken out of a text.

`redact_url` is for a URL the caller knows is one (a Redis URL, an audit store URL);
`redact_text` is for any message that may quote one (an exception's text, a config
error, a log line). Both replace a password with `***` where one was given, and only
there: `redis://user@host` stays as it is, `redis://user:pw@host` becomes
`redis://user:***@host`, `postgresql://h/db?sslpassword=pw` becomes
`postgresql://h/db?sslpassword=***`. Any scheme is treated alike.

`redact_text` also drops the query string of every web URL (http, https, ws, wss) it
quotes: `https://fapi.binance.com/fapi/v3/account?***`. An SDK's error quotes the request
it made, and a signed request carries its timestamp and signature (with some venues, the
key) in its query string.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "redact_text", "redact_url"]

MASK = "***"

_SECRET_KEY = r"[\w.-]*(?:password|passwd|passphrase|secret|token|apikey|api_key|signature)|pass|pwd|auth"  # noqa: S105 - the names of secrets, not one
_SECRET_PARAM = re.compile(
    rf"(?i)(?<![\w.-])({_SECRET_KEY})(\s*=\s*)('[^']*'|\"[^\"]*\"|[^&\s'\"#;,]+)",
)
"""`password=…`, `sslpassword=…`, `token=…` in a query string or a libpq key=value string."""

_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*)://([^\s'\"<>`]*)")

_AUTHORITY_END = re.compile(r"[/?#]")

_WEB_SCHEMES = frozenset({"http", "https", "ws", "wss"})


def _masked_value(match: re.Match[str]) -> str:
    key, equals, value = match.groups()
    if value in {"''", '""'}:
        return match.group(0)
    return f"{key}{equals}{MASK}"


def _redact_userinfo(rest: str) -> str:
    """`rest` (what follows `scheme://`) with the password of its user-info masked, if it has one.

    A password with an unescaped `/`, `?` or `#` hides its `@` past the authority
    (`u:pa/ss@host`); the authority then ends in a "port" that is not a number, and the
    user-info is taken up to the next `@`.
    """
    end_match = _AUTHORITY_END.search(rest)
    end = end_match.start() if end_match else len(rest)
    at = rest.rfind("@", 0, end)
    if at < 0:
        _, colon, port = rest[:end].rpartition(":")
        later = rest.find("@", end)
        if not colon or port.isdigit() or later < 0:
            return rest
        at = later
    user, colon, password = rest[:at].partition(":")
    if not colon or not password:
        return rest
    return f"{user}:{MASK}@{rest[at + 1 :]}"


def redact_url(url: str) -> str:
    """`url` without the passwords it carries, fit for a message or a log line."""
    scheme, separator, rest = url.partition("://")
    if separator and re.fullmatch(r"(?i)[a-z][a-z0-9+.-]*", scheme):
        url = f"{scheme}://{_redact_userinfo(rest)}"
    return _SECRET_PARAM.sub(_masked_value, url)


def redact_text(text: str) -> str:
    """`text` with every URL's password, every web URL's query string, and every
    `password=…`-like setting masked."""
    text = _URL.sub(_redacted_url, text)
    return _SECRET_PARAM.sub(_masked_value, text)


def _redacted_url(match: re.Match[str]) -> str:
    scheme, rest = match.group(1), _redact_userinfo(match.group(2))
    if scheme.lower() in _WEB_SCHEMES:
        before, question, _ = rest.partition("?")
        if question:
            fragment = rest.find("#", len(before))
            rest = f"{before}?{MASK}{rest[fragment:] if fragment >= 0 else ''}"
    return f"{scheme}://{rest}"
