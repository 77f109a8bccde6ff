"""The paper-trading demo: a short scripted session in which every kind of break happens.

A stand-in execution actor books fills into a `PaperBroker` (the venue) and an
`InMemoryPortfolio` (the engine's book) and tells each fill the engine saw to the
service's ref, as a real engine's execution actor would. Along the way the script
injects the faults that happen in real trading, and the demo shows every run as it is
published to Redis, then a summary of which run caught which fault and how fast.

Both books keep their fills, so every position break is shown with the fills behind it.
Auto-correction is on for one type, `missing_local`, in `apply` mode: a position
transferred in at the broker, for which no fill will ever reach the engine, is
explained by the broker's record of it, which is proposed, confirmed by a second run,
booked into the engine's book, and resolved.

The example configuration of `reconciliation run` (docs/example-config.toml) uses the
same paper books, through `reconciliation.paper`'s factories.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import itertools
import logging
import threading
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import pykka
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from reconciliation._cli.render import (
    CORRECTION_STYLES,
    SEVERITY_STYLES,
    correction_change,
    correction_line,
    describe_trigger,
    discrepancy_line,
    halt_line,
    resolved_line,
    result_line,
)
from reconciliation._cli.safe_text import safe_text
from reconciliation._domain.backoff import Backoff
from reconciliation._domain.models import (
    CorrectionPolicy,
    OrderFill,
    ReconciliationConfig,
    ReconciliationResult,
)
from reconciliation._publishing.inbound import Message, decode
from reconciliation._publishing.streams import RedisLostError, StreamFollower
from reconciliation._runtime.messages import ReconcileRequest
from reconciliation._runtime.service import ReconciliationService
from reconciliation._wire.payloads import (
    CORRECTION_CHANNEL,
    HALT_CHANNEL,
    RESOLVED_CHANNEL,
    RESULT_CHANNEL,
)
from reconciliation.paper import InMemoryPortfolio, PaperBroker, paper_broker, paper_portfolio

if TYPE_CHECKING:
    from collections.abc import Callable

    import redis

__all__ = [
    "NORMAL",
    "QUICK",
    "DemoReport",
    "Execute",
    "ExecutionActor",
    "Pace",
    "run_demo",
]

logger = logging.getLogger(__name__)

TRIGGERS = ("startup", "post_fill", "periodic", "on_demand")
CORRECTION = CorrectionPolicy(mode="apply", confirm_after_runs=2, types=["missing_local"])
"""The demo's auto-correction: positions the engine lacks, applied once two runs agree."""
CORRECTION_LIFE = ("proposed", "confirmed", "applied", "verified")

_INDENT = " " * 18
"""Where a run's details start: under its trigger, past the time and the label."""
_LISTEN_BLOCK_SECONDS = 0.2
"""How soon the demo's stream reader notices the end of the session."""
_LISTEN_GIVE_UP_SECONDS = 30.0
_Found = TypeVar("_Found")


@attrs.frozen
class Pace:
    """How fast the session goes: the service's intervals and the pauses between acts."""

    interval_seconds: float
    post_fill_delay_seconds: float
    pause_seconds: float
    wait_seconds: float
    """The longest the script waits for the run that should catch a fault."""


NORMAL = Pace(interval_seconds=3.0, post_fill_delay_seconds=0.5, pause_seconds=1.5, wait_seconds=10.0)
QUICK = Pace(interval_seconds=1.0, post_fill_delay_seconds=0.2, pause_seconds=0.1, wait_seconds=6.0)


@attrs.frozen
class Execute:
    """An execution: what the venue books, and what the engine books and tells the service.

    Either may be None: a fill the engine never saw, or one the venue busted.
    """

    at_broker: OrderFill | None
    in_engine: OrderFill | None


class ExecutionActor(pykka.ThreadingActor):
    """The stand-in for a trading engine's execution actor.

    Books each execution into the paper broker and the local book, then tells the
    engine's fill to the reconciliation service's ref, as an embedding engine would.
    """

    def __init__(self, broker: PaperBroker, portfolio: InMemoryPortfolio, service: ReconciliationService) -> None:
        super().__init__()
        self._broker = broker
        self._portfolio = portfolio
        self._service = service

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, Execute):
            logger.warning("The execution actor ignored an unexpected %s", type(message).__name__)
            return None
        if message.at_broker is not None:
            self._broker.apply_fill(message.at_broker)
        if message.in_engine is not None:
            self._portfolio.apply_fill(message.in_engine)
            self._service.ref.tell(message.in_engine)
        return None


@attrs.frozen
class Run:
    """One published run as the demo received it: the result and its discrepancies."""

    result: dict[str, Any]
    discrepancies: tuple[dict[str, Any], ...]
    received: float
    """Seconds since the session started."""

    @property
    def trigger(self) -> str:
        context = self.result.get("context")
        return str(context.get("trigger", "unknown")) if isinstance(context, dict) else "unknown"

    def find(self, kind: str, symbol: str | None) -> dict[str, Any] | None:
        return next(
            (d for d in self.discrepancies if (d.get("type"), d.get("symbol")) == (kind, symbol)), None
        )


class RunFeed:
    """Collects the account's published runs, shows each when it is complete, lets the script wait.

    Fed from the subscriber thread; the script waits on it from the event loop.
    """

    def __init__(self, account_id: str, console: Console, started: float) -> None:
        self._account_id = account_id
        self._console = console
        self._started = started
        self._pending: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        self._runs: list[Run] = []
        self._corrections: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._closed = False
        self.last_message = time.monotonic()

    def close(self) -> None:
        """End every wait at once (the demo was interrupted)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def runs(self) -> list[Run]:
        with self._changed:
            return list(self._runs)

    @property
    def corrections(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._corrections)

    def receive(self, message: Message) -> None:
        if message.payload is None or message.payload.get("account_id") != self._account_id:
            return
        payload = dict(message.payload)
        self.last_message = time.monotonic()
        run_id = str(payload.get("run_id"))
        notice = {RESOLVED_CHANNEL: resolved_line, HALT_CHANNEL: halt_line}.get(message.channel)
        if notice is not None:
            self._console.print(notice(payload, prefix=_INDENT))
            return
        if message.channel == CORRECTION_CHANNEL:
            self._console.print(
                correction_line(payload, prefix=f"{time.monotonic() - self._started:5.1f}s {'[correct]':<11}")
            )
            with self._changed:
                self._corrections.append(payload)
                self._changed.notify_all()
            return
        if message.channel == RESULT_CHANNEL:
            self._pending[run_id] = (payload, [])
        elif run_id in self._pending:
            self._pending[run_id][1].append(payload)
        else:
            logger.warning("A discrepancy of run %s arrived without its result", run_id)
            return
        result, found = self._pending[run_id]
        if len(found) >= int(result.get("discrepancy_count") or 0):
            del self._pending[run_id]
            self._complete(Run(result, tuple(found), time.monotonic() - self._started))

    def _complete(self, run: Run) -> None:
        self._console.print(
            result_line(run.result, prefix=f"{run.received:5.1f}s {'[run]':<11}", account=False)
        )
        for discrepancy in run.discrepancies:
            self._console.print(discrepancy_line(discrepancy, prefix=_INDENT))
        with self._changed:
            self._runs.append(run)
            self._changed.notify_all()

    def wait_for(self, since: int, match: Callable[[Run], bool], timeout: float) -> Run | None:
        """The first run after the first `since` runs that `match`es, waiting up to `timeout`."""
        return self._wait(lambda: next((run for run in self._runs[since:] if match(run)), None), timeout)

    def wait_for_correction(self, status: str, symbol: str, timeout: float) -> dict[str, Any] | None:
        """The first correction step `status` of `symbol`'s break, waiting up to `timeout`."""
        return self._wait(
            lambda: next((c for c in self._corrections if (c.get("status"), c.get("symbol")) == (status, symbol)), None),
            timeout,
        )

    def _wait(self, find: Callable[[], _Found | None], timeout: float) -> _Found | None:
        """What `find` finds under the lock, waiting for changes up to `timeout` (or the close)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = find()
                remaining = deadline - time.monotonic()
                if found is not None or remaining <= 0 or self._closed:
                    return found
                self._changed.wait(remaining)


@attrs.frozen
class Fault:
    """A break the script injects, the discrepancy that should reveal it, and the run that did."""

    name: str
    kind: str
    symbol: str | None
    injected: float
    """Seconds since the session started."""
    caught_by: Run | None = None

    @property
    def caught(self) -> bool:
        return self.caught_by is not None

    def revealed_by(self, run: Run) -> bool:
        return run.find(self.kind, self.symbol) is not None


@attrs.frozen
class DemoReport:
    """What the session showed: every run, every fault and whether it was caught."""

    runs: tuple[Run, ...]
    detections: tuple[Fault, ...]
    corrections: tuple[dict[str, Any], ...] = ()
    """Every correction step published, in order."""

    @property
    def triggers_seen(self) -> set[str]:
        return {run.trigger for run in self.runs}

    @property
    def failed_runs(self) -> int:
        return sum(run.result.get("status") == "failed" for run in self.runs)

    @property
    def lives(self) -> dict[str, list[dict[str, Any]]]:
        """The correction steps of each break, by its id, in order."""
        lives: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for step in self.corrections:
            lives[str(step.get("break_id"))].append(step)
        return lives

    @property
    def corrected(self) -> bool:
        """A break was proposed, confirmed, applied and verified (resolved) by auto-correction,
        by booking the broker's fill that explains it."""
        return any(
            [str(step.get("status")) for step in steps] == list(CORRECTION_LIFE)
            and any(step.get("fills") for step in steps)
            for steps in self.lives.values()
        )

    @property
    def succeeded(self) -> bool:
        """Every fault caught, every trigger fired, no run failed, one break corrected."""
        return (
            all(d.caught for d in self.detections)
            and set(TRIGGERS) <= self.triggers_seen
            and not self.failed_runs
            and self.corrected
        )


@attrs.define(kw_only=True)
class Session:
    """The script's hands: trade, inject, repair, ask; and its voice."""

    console: Console
    pace: Pace
    account_id: str
    broker: PaperBroker
    portfolio: InMemoryPortfolio
    service: ReconciliationService
    feed: RunFeed
    started: float
    engine: pykka.ActorRef[Any]
    detections: list[Fault] = attrs.field(init=False, factory=list)
    _fill_ids: itertools.count[int] = attrs.field(init=False, factory=lambda: itertools.count(1))

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def act(self, title: str) -> None:
        self.console.print()
        self.console.rule(f"[bold]{title}", align="left")

    def say(self, text: str, *, who: str = "") -> None:
        label = escape(f"{f'[{who}]' if who else '':<11}")
        self.console.print(f"{self.elapsed():5.1f}s {label}{text}", highlight=False)

    def fill(
        self, order_id: str, symbol: str, quantity: int, price: str, commission: str = "1.00"
    ) -> OrderFill:
        return OrderFill(
            order_id=order_id,
            fill_id=f"FILL-{next(self._fill_ids)}",
            account_id=self.account_id,
            symbol=symbol,
            quantity=quantity,
            price=Decimal(price),
            timestamp=dt.datetime.now(dt.UTC),
            commission=Decimal(commission),
        )

    async def execute(self, at_broker: OrderFill | None, in_engine: OrderFill | None) -> None:
        await asyncio.to_thread(self.engine.ask, Execute(at_broker, in_engine), timeout=5.0)

    async def trade(
        self, order_id: str, symbol: str, quantity: int, price: str, commission: str = "1.00"
    ) -> None:
        """An execution both books see: the normal case."""
        fill = self.fill(order_id, symbol, quantity, price, commission)
        await self.execute(fill, fill)
        side = "BUY " if quantity > 0 else "SELL"
        self.say(f"{side} {abs(quantity)} {symbol} @ {price} ({order_id} {fill.fill_id})", who="fill")

    def inject(self, name: str, story: str, kind: str, symbol: str | None) -> Fault:
        """Tell what went wrong; return the fault, to be caught as a `kind` break on `symbol`."""
        self.say(f"[bold]{story}[/bold]", who="fault")
        return Fault(name, kind, symbol, self.elapsed())

    async def caught(self, faults: list[Fault], since: int) -> None:
        """Wait for the run that reveals each fault and record it (or that none did)."""
        for fault in faults:
            run = await asyncio.to_thread(self.feed.wait_for, since, fault.revealed_by, self.pace.wait_seconds)
            self.detections.append(attrs.evolve(fault, caught_by=run))
            if run is None:
                self.say(f"[bold red]{fault.name}: no run caught it[/bold red]", who="check")

    async def corrected(self, symbol: str) -> None:
        """Wait until the correction of `symbol`'s break has been checked by the run after it."""
        verified = await asyncio.to_thread(
            self.feed.wait_for_correction, "verified", symbol, self.pace.wait_seconds * 2
        )
        if verified is None:
            self.say(f"[bold red]the correction of {symbol} was not verified[/bold red]", who="check")
        else:
            self.say(f"{symbol}: corrected, and the run after it found the break resolved.", who="correct")

    async def until_run(self, trigger: str, since: int) -> Run | None:
        return await asyncio.to_thread(
            self.feed.wait_for, since, lambda run: run.trigger == trigger, self.pace.wait_seconds
        )

    async def pause(self) -> None:
        await asyncio.sleep(self.pace.pause_seconds)


async def _script(s: Session) -> None:  # noqa: PLR0915 - one scene after another, read top to bottom
    interval = f"{s.pace.interval_seconds:g} s"
    delay = f"{s.pace.post_fill_delay_seconds:g} s"
    for symbol, price in (
        ("AAPL", "189.50"),
        ("MSFT", "415.20"),
        ("NVDA", "120.00"),
        ("GOOG", "171.30"),
        ("AMZN", "185.20"),
    ):
        s.broker.set_price(symbol, Decimal(price))
        s.portfolio.set_price(symbol, Decimal(price))

    s.act("1. Opening: the service starts and reconciles at once")
    s.say(f"Broker and engine both open account {s.account_id} with 100,000.00 cash and no positions.")
    since = len(s.feed.runs)
    await s.service.start()
    await s.until_run("startup", since)

    s.act("2. Trading as usual: each fill is booked by both sides")
    s.say(f"The engine's execution actor tells every fill to the service, which runs {delay} after a burst.")
    since = len(s.feed.runs)
    await s.trade("ORD-1", "AAPL", 100, "189.50")
    await s.trade("ORD-2", "MSFT", 30, "415.20")
    await s.trade("ORD-2", "MSFT", 20, "415.25")
    await s.until_run("post_fill", since)
    await s.pause()

    s.act("3. A quiet market: the periodic check still runs")
    s.say(f"No fills now; the service reconciles every {interval} regardless.")
    await s.until_run("periodic", len(s.feed.runs))

    s.act("4. Positions the engine never saw")
    since = len(s.feed.runs)
    lost = s.fill("ORD-2", "MSFT", 10, "415.30")
    await s.execute(lost, None)
    transfer = s.fill("ACATS-1", "NVDA", 40, "120.00", commission="0")
    s.broker.apply_fill(transfer)
    s.broker.adjust_cash(Decimal("4800.00"), "ACATS transfer in: the shares came without a cash movement")
    faults = [
        s.inject(
            "lost partial fill",
            "The last partial fill of ORD-2 (BUY 10 MSFT) reached the broker, not the engine",
            "quantity_mismatch",
            "MSFT",
        ),
        s.inject(
            "position outside the engine",
            "40 NVDA were transferred in from another broker (at the broker: ACATS-1): "
            "no fill will ever reach the engine",
            "missing_local",
            "NVDA",
        ),
    ]
    s.say(
        "The engine saw no fill, so no post-fill check runs: the periodic check must catch these, "
        "and both books' fills explain each break (the line under it)."
    )
    await s.caught(faults, since)
    await s.pause()
    s.say("The drop copy arrives late; the engine books the MSFT fill.", who="repair")
    since = len(s.feed.runs)
    await s.execute(None, lost)
    await s.until_run("post_fill", since)
    s.say(
        "Auto-correction is on for missing_local (apply mode, confirmed by 2 runs): the break is "
        "explained exactly by the broker's record of the transfer, so the service books that "
        "record in the engine once a second run agrees."
    )
    await s.corrected("NVDA")
    await s.pause()

    s.act("5. A trade the broker busted")
    since = len(s.feed.runs)
    busted = s.fill("ORD-3", "GOOG", 25, "171.30")
    await s.execute(None, busted)
    faults = [
        s.inject(
            "busted trade",
            "The engine booked BUY 25 GOOG; the broker busted the trade",
            "missing_broker",
            "GOOG",
        )
    ]
    await s.caught(faults, since)
    await s.pause()
    s.say("The bust notice arrives; the engine reverses the fill.", who="repair")
    since = len(s.feed.runs)
    await s.execute(None, s.fill("ORD-3", "GOOG", -25, "171.30", commission="-1.00"))
    await s.until_run("post_fill", since)
    await s.pause()

    s.act("6. A commission the engine did not charge")
    since = len(s.feed.runs)
    charged = s.fill("ORD-4", "AAPL", -50, "191.00", commission="5.95")
    await s.execute(charged, attrs.evolve(charged, commission=Decimal("1.00")))
    faults = [
        s.inject(
            "uncharged commission",
            "SELL 50 AAPL: the broker charged 5.95 commission, the engine's fee table says 1.00",
            "cash_mismatch",
            None,
        )
    ]
    await s.caught(faults, since)
    await s.pause()
    s.portfolio.adjust_cash(Decimal("-4.95"), "commission from the broker's statement")
    s.say("The operator books the missing 4.95 and asks for a check.", who="repair")
    result = await s.service.reconcile(requested_by="operator")
    s.say(
        f"On-demand run {str(result.run_id)[:8]}: {'clean' if result.is_clean else 'still breaks'}.",
        who="operator",
    )
    await s.pause()

    s.act("7. A price the engine rounded")
    since = len(s.feed.runs)
    exact = s.fill("ORD-5", "AMZN", 100, "185.123456")
    await s.execute(exact, attrs.evolve(exact, price=Decimal("185.12")))
    faults = [
        s.inject(
            "rounded price",
            "BUY 100 AMZN @ 185.123456; the engine rounded the price to 185.12",
            "cost_mismatch",
            "AMZN",
        )
    ]
    await s.caught(faults, since)
    s.say("Informational: 0.35 of cash is within the 1.00 tolerance; the cost break stays until fixed.")
    await s.pause()

    s.act("8. A stale price feed")
    since = len(s.feed.runs)
    s.broker.set_price("AAPL", Decimal("193.00"))
    faults = [
        s.inject(
            "stale price feed",
            "AAPL trades at 193.00 at the broker; the engine's feed is stuck at 189.50",
            "equity_mismatch",
            None,
        )
    ]
    await s.caught(faults, since)
    await s.pause()
    s.portfolio.set_price("AAPL", Decimal("193.00"))
    s.say("The feed recovers. The risk actor asks the service's ref for a run.", who="repair")
    request = ReconcileRequest(s.account_id, requested_by="risk")
    reply: ReconciliationResult = await asyncio.to_thread(s.service.ref.ask, request, timeout=s.pace.wait_seconds)
    left = ", ".join(f"{d.type.value} {d.symbol or ''}".strip() for d in reply.discrepancies) or "nothing"
    s.say(f"On-demand run {str(reply.run_id)[:8]}: left to fix: {left}.", who="risk")


async def run_demo(
    client: redis.Redis,
    console: Console,
    *,
    pace: Pace = NORMAL,
    account_id: str = "PAPER-1",
) -> DemoReport:
    """Play the session against `client` and show it on `console`.

    Returns:
        Every run received and which fault each caught; the summary is already shown.
    """
    started = time.monotonic()
    feed = RunFeed(account_id, console, started)
    subscribed = threading.Event()
    stop_listening = threading.Event()
    listener = threading.Thread(
        target=_listen,
        args=(client, feed, subscribed, stop_listening),
        name="demo-stream-reader",
        daemon=True,
    )
    listener.start()
    if not await asyncio.to_thread(subscribed.wait, 5.0):
        msg = "the demo could not read the reconciliation streams within 5 s"
        raise RuntimeError(msg)
    broker = paper_broker(account_id)
    portfolio = paper_portfolio(account_id)
    config = ReconciliationConfig(
        account_id,
        interval_seconds=pace.interval_seconds,
        post_fill_delay_seconds=pace.post_fill_delay_seconds,
        post_fill_max_wait_seconds=pace.post_fill_delay_seconds * 4,
        broker_timeout_seconds=5.0,
        correction=CORRECTION,
    )
    service = ReconciliationService(portfolio, broker, client, config)
    session = Session(
        console=console,
        pace=pace,
        account_id=account_id,
        broker=broker,
        portfolio=portfolio,
        service=service,
        feed=feed,
        started=started,
        engine=ExecutionActor.start(broker, portfolio, service),
    )
    interrupted = False
    try:
        await _script(session)
    except (asyncio.CancelledError, KeyboardInterrupt):
        interrupted = True
        raise
    finally:
        if interrupted:
            # Ctrl-C: end every wait of the script's threads and leave at once; the runs in
            # flight are abandoned (reported failed), the rest is not waited for.
            feed.close()
            stop_listening.set()
        session.engine.stop()
        await service.stop()
        if not interrupted:
            await asyncio.to_thread(_drain, feed)
        stop_listening.set()
        await asyncio.to_thread(listener.join, 1.0 if interrupted else 5.0)
    report = DemoReport(tuple(feed.runs), tuple(session.detections), tuple(feed.corrections))
    show_summary(console, report)
    return report


def _listen(client: redis.Redis, feed: RunFeed, started: threading.Event, stop: threading.Event) -> None:
    """Hand the streams' new entries to `feed` until `stop` is set."""
    try:
        StreamFollower(
            client,
            backoff=Backoff(give_up_after_seconds=_LISTEN_GIVE_UP_SECONDS),
            wake=stop,
            block_seconds=_LISTEN_BLOCK_SECONDS,
        ).run(lambda entry: feed.receive(decode(entry)), done=stop.is_set, on_started=started.set)
    except RedisLostError as exc:
        logger.error("The demo lost Redis: %s", exc)  # noqa: TRY400 - the reason is the message


def _drain(feed: RunFeed, quiet: float = 0.5, limit: float = 5.0) -> None:
    """Let the last published runs arrive: wait until nothing came for `quiet` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and time.monotonic() - feed.last_message < quiet:
        time.sleep(0.05)


def show_summary(console: Console, report: DemoReport) -> None:
    """Three tables: the runs by trigger, each fault with the run that caught it, the corrections."""
    console.print()
    by_trigger: dict[str, list[Run]] = collections.defaultdict(list)
    for run in report.runs:
        by_trigger[run.trigger].append(run)
    runs = Table(title="Runs by trigger", title_justify="left")
    for column in ("trigger", "runs", "clean", "with breaks", "failed", "mean duration"):
        runs.add_column(column, justify="left" if column == "trigger" else "right")
    for trigger in (*TRIGGERS, *sorted(set(by_trigger) - set(TRIGGERS))):
        group = by_trigger.get(trigger, [])
        durations = [float(run.result.get("duration_ms") or 0) for run in group]
        runs.add_row(
            trigger if group else f"[red]{trigger}[/red]",
            str(len(group)),
            str(sum(bool(run.result.get("is_clean")) for run in group)),
            str(sum(bool(run.discrepancies) for run in group)),
            str(sum(run.result.get("status") == "failed" for run in group)),
            f"{sum(durations) / len(durations):.1f} ms" if durations else "-",
        )
    console.print(runs)
    faults = Table(title="Injected faults", title_justify="left")
    for column in ("fault", "seen as", "severity", "caught by", "after"):
        faults.add_column(column, justify="right" if column == "after" else "left", overflow="fold")
    for fault in report.detections:
        caught_by = fault.caught_by
        seen = f"{fault.kind} {fault.symbol or ''}".strip()
        if caught_by is None:
            faults.add_row(fault.name, seen, "-", "[bold red]not caught[/bold red]", "-")
            continue
        found = caught_by.find(fault.kind, fault.symbol) or {}
        severity = str(found.get("severity", "?"))
        faults.add_row(
            fault.name,
            seen,
            f"[{SEVERITY_STYLES.get(severity, '')}]{severity}[/]",
            describe_trigger(caught_by.result.get("context")),
            f"{caught_by.received - fault.injected:.1f} s",
        )
    console.print(faults)
    console.print(_corrections_table(report))


def _corrections_table(report: DemoReport) -> Table:
    """Each corrected break and the steps its correction went through."""
    table = Table(title="Corrections (missing_local, apply mode)", title_justify="left")
    for column in ("break", "steps", "change"):
        table.add_column(column, overflow="fold")
    lives = report.lives
    for steps in lives.values():
        last = steps[-1]
        life = Text()
        for n, step in enumerate(steps):
            status = safe_text(step.get("status"))
            life.append(("" if n == 0 else " → ") + status, style=CORRECTION_STYLES.get(status, ""))
        change = correction_change(last)
        table.add_row(
            Text(safe_text(f"{last.get('type')} {last.get('symbol') or ''}".strip())),
            life,
            Text(change),
        )
    if not lives:
        table.add_row(Text("none", "bold red"), "-", "-")
    return table
