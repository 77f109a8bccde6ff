"""The board's HTML, rendered on the server: the page, the board fragment, a break's history.

Every value that came from a payload or the store goes through `_text`: control
characters shown as visible escapes (`safe_text`), then HTML-escaped. The page's
script only swaps these fragments in (static/board.js); it builds no markup itself.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
from typing import TYPE_CHECKING

from reconciliation._cli.safe_text import safe_text
from reconciliation._wire.payloads import decimal_text

if TYPE_CHECKING:
    from reconciliation._cli.board.state import AccountView, BreakView, FeedStatus, Liveness, RunView
    from reconciliation.audit import BreakSighting

__all__ = ["board_fragment", "history_fragment", "page"]


def _text(value: object, *, limit: int | None = 200) -> str:
    return html.escape(safe_text(value, limit=limit), quote=True)


def _clock(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


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
    return f'<span data-since="{moment.astimezone(dt.UTC).isoformat(timespec="seconds")}">{age_text((now - moment).total_seconds())}</span>'


def _stale(run: RunView | None, liveness: Liveness) -> str:
    """`no run for 21 min (expected every 5 min)` for a stale account; nothing otherwise."""
    if run is None or not liveness.stale:
        return ""
    every = liveness.expected_every
    expected = f" (expected every {age_text(round(every.total_seconds()))})" if every is not None else ""
    return (
        f'<span class="stale">STALE: no run for {age_text(liveness.since_last_run(run).total_seconds())}'
        f"{expected}</span>"
    )


def _run(run: RunView | None, now: dt.datetime) -> str:
    if run is None:
        return '<span class="run">no run recorded yet</span>'
    error = f'<span class="error">{_text(run.error, limit=2000)}</span>' if run.error else ""
    return (
        f'<span class="run {_text(run.status)}" data-run-id="{_text(run.run_id)}">'
        f"last run: {_text(run.status)} · {_text(run.trigger)} · {_clock(run.timestamp)} "
        f"({_since(run.timestamp, now)} ago) · {run.duration_ms:.1f} ms{error}</span>"
    )


def _owner(run: RunView | None) -> str:
    """`owner: eu-1 (token 2)`, `owner: no lease`, or nothing when not known."""
    if run is None or run.owner is None:
        return ""
    return (
        '<span class="owner" title="the runtime whose lease its last run was made under, and the lease\'s token">'
        f"owner: {_text(run.owner, limit=None)}</span>"
    )


def _value(value: str | None) -> str:
    return "none" if value is None else _text(value, limit=60)


def _break_row(view: BreakView, now: dt.datetime) -> str:
    halt = '<span class="halt" title="the kill switch fired for this break">HALT</span>' if view.halted else ""
    attributes = (
        f'class="break {_text(view.severity)}" data-account="{_text(view.account_id)}" '
        f'data-type="{_text(view.type)}" data-symbol="{_text(view.symbol or "")}" '
        f'data-asset-type="{_text(view.asset_type or "")}" data-currency="{_text(view.currency or "")}"'
    )
    if view.break_id:
        attributes += f' data-break-id="{_text(view.break_id)}" tabindex="0" title="show its history"'
    return (
        f"<tr {attributes}>"
        f'<td class="severity">{_text(view.severity)}{halt}</td>'
        f"<td>{_text(view.type)}</td>"
        f"<td>{_text(view.symbol or '(account)')}</td>"
        f"<td>{_text(view.asset_type or view.currency or '')}</td>"
        f'<td class="num">{_value(view.local_value)}</td>'
        f'<td class="num">{_value(view.broker_value)}</td>'
        f'<td class="num">{_value(view.difference)}</td>'
        f"<td>{_clock(view.first_seen)}</td>"
        f'<td class="num">{_since(view.first_seen, now)}</td>'
        f'<td class="num">{view.consecutive_runs}</td>'
        "</tr>"
    )


_HEAD = (
    "<thead><tr><th>severity</th><th>type</th><th>symbol</th><th>asset / ccy</th><th>local</th><th>broker</th>"
    "<th>difference</th><th>first seen</th><th>open for</th><th>runs</th></tr></thead>"
)


def _account(account: AccountView, now: dt.datetime) -> str:
    if account.breaks:
        rows = "".join(_break_row(view, now) for view in account.breaks)
        breaks = f'<table class="breaks">{_HEAD}<tbody>{rows}</tbody></table>'
    else:
        breaks = '<p class="none">No open breaks.</p>'
    return (
        f'<section class="account {account.status}" data-account="{_text(account.account_id)}" '
        f'data-status="{account.status}">'
        f"<h2>{_text(account.account_id)}</h2>{_stale(account.last_run, account.liveness)}"
        f"{_run(account.last_run, now)}{_owner(account.last_run)}{breaks}</section>"
    )


def _feed(feed: FeedStatus) -> str:
    malformed = ""
    if feed.malformed:
        malformed = (
            f" · {feed.malformed} malformed stream entr{'y' if feed.malformed == 1 else 'ies'} skipped"
            f" (last: {_text(feed.last_malformed)})"
        )
    return f'<p id="feed" class="{"live" if feed.live else "down"}">{_text(feed.detail)}{malformed}</p>'


def board_fragment(
    accounts: list[AccountView], feed: FeedStatus, now: dt.datetime, one_offs: list[AccountView] | None = None
) -> str:
    """The part of the page that changes: the feed's state, every account worst first, and
    apart from them the accounts of one-off runs (`reconciliation check`)."""
    open_breaks = sum(len(account.breaks) for account in accounts)
    critical = sum(1 for account in accounts for view in account.breaks if view.severity == "critical")
    stale = sum(1 for account in accounts if account.status == "stale")
    failing = sum(1 for account in accounts if account.status == "failing")
    alarm = ' class="alarm"' if stale or failing else ""
    summary = (
        f'<p class="summary">{len(accounts)} account{"" if len(accounts) == 1 else "s"} · '
        f'<span id="stale-count"{alarm}>{stale} stale</span> · <span id="failing-count"{alarm}>{failing} failing</span> · '
        f"{open_breaks} open break{'' if open_breaks == 1 else 's'} ({critical} critical) · "
        f"rendered {_clock(now)}</p>"
    )
    body = "".join(_account(account, now) for account in accounts) or '<p class="none">No account yet.</p>'
    apart = ""
    if one_offs:
        apart = (
            '<section id="one-offs"><h2 class="apart">One-off checks (not repeated; shown for an hour)</h2>'
            f"{''.join(_account(account, now) for account in one_offs)}</section>"
        )
    return f"{_feed(feed)}{summary}{body}{apart}"


def _marks(sightings: list[BreakSighting], halted_run_id: str | None) -> dict[int, str]:
    """What each run did to the break, by its index: `escalated` where the severity rose
    over the run before, `HALT: kill switch` for the run that fired it."""
    marks: dict[int, list[str]] = {}
    for index, (before, after) in enumerate(itertools.pairwise(sightings), start=1):
        if _RANK.get(after.severity.value, 0) > _RANK.get(before.severity.value, 0):
            marks.setdefault(index, []).append("escalated")
    for index, sighting in enumerate(sightings):
        if halted_run_id is not None and str(sighting.run_id) == halted_run_id:
            marks.setdefault(index, []).append("HALT: kill switch")
    return {index: ", ".join(words) for index, words in marks.items()}


_RANK = {"info": 0, "warning": 1, "critical": 2}


def history_fragment(
    view: BreakView | None,
    sightings: list[BreakSighting],
    *,
    title: str,
    now: dt.datetime,
    halted_run_id: str | None = None,
) -> str:
    """A break's history: one row per run that saw it, newest first, the run that escalated
    it and the one that fired the kill switch marked (`sightings` come oldest first)."""
    heading = f"<h2>{_text(title)}</h2>"
    facts = ""
    if view is not None:
        facts = (
            f"<p>{_text(view.severity)} since {_clock(view.first_seen)} "
            f"({_since(view.first_seen, now)}), {view.consecutive_runs} run(s) in a row; "
            f"local {_value(view.local_value)}, broker {_value(view.broker_value)}</p>"
        )
    if sightings:
        marks = _marks(sightings, halted_run_id)
        rows = "".join(
            f'<tr class="{_text(s.severity.value)}" data-run-id="{_text(s.run_id)}"><td>{s.seen_at.astimezone(dt.UTC):%m-%d %H:%M:%S}</td>'
            f'<td class="severity">{_text(s.severity.value)}</td>'
            f'<td class="mark">{_mark(marks.get(index))}</td>'
            f'<td class="num">{_value(decimal_text(s.local_value))}</td>'
            f'<td class="num">{_value(decimal_text(s.broker_value))}</td>'
            f'<td class="num">{s.consecutive_runs}</td><td>{_text(str(s.run_id)[:8])}</td>'
            f"<td>{_text(s.explanation.summary()) if s.explanation else ''}</td></tr>"
            for index, s in reversed(list(enumerate(sightings)))
        )
        table = (
            '<table class="breaks"><thead><tr><th>seen (UTC)</th><th>severity</th><th>what happened</th>'
            "<th>local</th><th>broker</th><th>in a row</th><th>run</th><th>the fills behind it</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    else:
        table = '<p class="none">The audit store has no run of this break yet.</p>'
    return f'<button class="close" type="button">close</button>{heading}{facts}{table}'


def _mark(mark: str | None) -> str:
    if mark is None:
        return ""
    return f'<span class="{"halt" if "HALT" in mark else "escalated"}">{_text(mark)}</span>'


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
