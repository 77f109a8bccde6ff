"""The board's HTML, rendered on the server: the page, the board fragment, a break's history.

Every value that came from a payload or the store goes through `_text`: control
characters shown as visible escapes (`safe_text`), then HTML-escaped. The page's
script only swaps these fragments in (static/board.js); it builds no markup itself.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import TYPE_CHECKING

from reconciliation._cli.safe_text import safe_text
from reconciliation._wire.payloads import decimal_text

if TYPE_CHECKING:
    from reconciliation._cli.board.state import AccountView, BreakView, FeedStatus, RunView
    from reconciliation.audit import BreakSighting

__all__ = ["board_fragment", "history_fragment", "page"]


def _text(value: object, *, limit: int | None = 200) -> str:
    return html.escape(safe_text(value, limit=limit), quote=True)


def _clock(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short_clock(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%m-%d %H:%M:%S")


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def age_text(seconds: float) -> str:
    """`3 d 4 h`, `2 h 5 min`, `12 min`, `40 s`: the same as the page's script writes."""
    units = (("d", 86400), ("h", 3600), ("min", 60))
    for index, (unit, size) in enumerate(units):
        if seconds >= size:
            whole, rest = divmod(int(seconds), size)
            if index + 1 < len(units) and rest >= units[index + 1][1]:
                smaller, smaller_size = units[index + 1]
                return f"{whole} {unit} {rest // smaller_size} {smaller}"
            return f"{whole} {unit}"
    return f"{max(0, int(seconds))} s"


def _since(moment: dt.datetime, now: dt.datetime) -> str:
    return f'<span data-since="{_iso(moment)}">{age_text((now - moment).total_seconds())}</span>'


def _run(run: RunView | None, now: dt.datetime) -> str:
    if run is None:
        return '<span class="run">no run recorded yet</span>'
    error = f'<span class="error">{_text(run.error, limit=2000)}</span>' if run.error else ""
    return (
        f'<span class="run {_text(run.status)}" data-run-id="{_text(run.run_id)}">'
        f"last run: {_text(run.status)} · {_text(run.trigger)} · {_clock(run.timestamp)} "
        f"({_since(run.timestamp, now)} ago) · {run.duration_ms:.1f} ms{error}</span>"
    )


def _value(value: str | None) -> str:
    return "none" if value is None else _text(value, limit=60)


def _break_row(view: BreakView, now: dt.datetime) -> str:
    halt = '<span class="halt" title="the kill switch fired for this break">HALT</span>' if view.halted else ""
    attributes = (
        f'class="break {_text(view.severity)}" data-account="{_text(view.account_id)}" '
        f'data-type="{_text(view.type)}" data-symbol="{_text(view.symbol or "")}"'
    )
    if view.break_id:
        attributes += f' data-break-id="{_text(view.break_id)}" tabindex="0" title="show its history"'
    return (
        f"<tr {attributes}>"
        f'<td class="severity">{_text(view.severity)}{halt}</td>'
        f"<td>{_text(view.type)}</td>"
        f"<td>{_text(view.symbol or '(account)')}</td>"
        f'<td class="num">{_value(view.local_value)}</td>'
        f'<td class="num">{_value(view.broker_value)}</td>'
        f"<td>{_clock(view.first_seen)}</td>"
        f'<td class="num">{_since(view.first_seen, now)}</td>'
        f'<td class="num">{view.consecutive_runs}</td>'
        "</tr>"
    )


_HEAD = (
    "<thead><tr><th>severity</th><th>type</th><th>symbol</th><th>local</th><th>broker</th>"
    "<th>first seen</th><th>open for</th><th>runs</th></tr></thead>"
)


def _account(account: AccountView, now: dt.datetime) -> str:
    if account.breaks:
        rows = "".join(_break_row(view, now) for view in account.breaks)
        breaks = f'<table class="breaks">{_HEAD}<tbody>{rows}</tbody></table>'
    else:
        breaks = '<p class="none">No open breaks.</p>'
    return (
        f'<section class="account" data-account="{_text(account.account_id)}">'
        f"<h2>{_text(account.account_id)}</h2>{_run(account.last_run, now)}{breaks}</section>"
    )


def _feed(feed: FeedStatus) -> str:
    malformed = ""
    if feed.malformed:
        malformed = (
            f" · {feed.malformed} malformed stream entr{'y' if feed.malformed == 1 else 'ies'} skipped"
            f" (last: {_text(feed.last_malformed)})"
        )
    return f'<p id="feed" class="{"live" if feed.live else "down"}">{_text(feed.detail)}{malformed}</p>'


def board_fragment(accounts: list[AccountView], feed: FeedStatus, now: dt.datetime) -> str:
    """The part of the page that changes: the feed's state and every account."""
    open_breaks = sum(len(account.breaks) for account in accounts)
    critical = sum(1 for account in accounts for view in account.breaks if view.severity == "critical")
    summary = (
        f'<p class="summary">{len(accounts)} account{"" if len(accounts) == 1 else "s"} · '
        f"{open_breaks} open break{'' if open_breaks == 1 else 's'} ({critical} critical) · "
        f"rendered {_clock(now)}</p>"
    )
    body = "".join(_account(account, now) for account in accounts) or '<p class="none">No account yet.</p>'
    return f"{_feed(feed)}{summary}{body}"


def history_fragment(
    view: BreakView | None, sightings: list[BreakSighting], *, title: str, now: dt.datetime
) -> str:
    """A break's history: one row per run that saw it, oldest first."""
    heading = f"<h2>{_text(title)}</h2>"
    facts = ""
    if view is not None:
        facts = (
            f"<p>{_text(view.severity)} since {_clock(view.first_seen)} "
            f"({_since(view.first_seen, now)}), {view.consecutive_runs} run(s) in a row; "
            f"local {_value(view.local_value)}, broker {_value(view.broker_value)}</p>"
        )
    if sightings:
        rows = "".join(
            f'<tr class="{_text(s.severity.value)}"><td>{_short_clock(s.seen_at)}</td>'
            f'<td class="severity">{_text(s.severity.value)}</td>'
            f'<td class="num">{_value(decimal_text(s.local_value))}</td>'
            f'<td class="num">{_value(decimal_text(s.broker_value))}</td>'
            f'<td class="num">{s.consecutive_runs}</td><td>{_text(str(s.run_id)[:8])}</td>'
            f"<td>{_text(s.explanation.summary()) if s.explanation else ''}</td></tr>"
            for s in sightings
        )
        table = (
            '<table class="breaks"><thead><tr><th>seen (UTC)</th><th>severity</th><th>local</th><th>broker</th>'
            f"<th>in a row</th><th>run</th><th>the fills behind it</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    else:
        table = '<p class="none">The audit store has no run of this break yet.</p>'
    return f'<button class="close" type="button">close</button>{heading}{facts}{table}'


def page(fragment: str, *, version: int, where: str) -> str:
    """The whole page around the board fragment; the script keeps it current."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Reconciliation breaks</title>"
        '<link rel="stylesheet" href="static/board.css"></head><body>'
        f'<header class="top"><h1>Open breaks</h1><span class="summary">{_text(where)}</span></header>'
        f'<main id="board" data-version="{version}" aria-live="polite">{fragment}</main>'
        '<aside id="history" hidden></aside>'
        '<script type="module" src="static/board.js"></script>'
        "</body></html>"
    )
