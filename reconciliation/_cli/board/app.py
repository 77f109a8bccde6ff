"""The break board's web app (Starlette): read-only, seeded from the audit store, live from the streams.

Routes, all GET (anything else is answered 405):

    /                        the page
    /board                   the board fragment, which the page's script swaps in
    /breaks/{break_id}       a break's history fragment
    /events                  server-sent events: `board` each time the board changed
    /api/board               JSON: the feed's state, every account, its last run and open breaks
    /api/breaks/{break_id}   JSON: a break and the runs that saw it
    /static/board.css, /static/board.js

A thread follows the streams (`streams.StreamFollower`, never giving up while the
board runs: after any error, a key of the wrong type included, it waits and tries again,
and follows Redis again once Redis answers) and hands each decoded entry to the event
loop, where `BoardState` takes it and every open `/events` stream is told. Once a second
the loop also looks at which accounts went stale (`BoardState.judge`). Store reads run
in the thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
import uuid
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import attrs
import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from reconciliation._cli.board.page import board_fragment, history_fragment, page
from reconciliation._cli.board.state import STALE_GRACE, BoardState, BreakView, FeedStatus
from reconciliation._domain.backoff import Backoff
from reconciliation._domain.error_text import describe_error
from reconciliation._domain.redaction import redact_text
from reconciliation._publishing.inbound import decode
from reconciliation._publishing.redis_clients import disconnect
from reconciliation._publishing.redis_sink import KeySpace
from reconciliation._publishing.streams import StreamFollower
from reconciliation._wire.payloads import explanation_payload
from reconciliation.audit import AuditStore, AuditStoreError
from reconciliation.audit._history import break_to_dict

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from reconciliation._cli.board.state import AccountView, RunView
    from reconciliation._domain.breaks import BreakState
    from reconciliation._publishing.streams import StreamEntry
    from reconciliation.audit import BreakSighting

__all__ = ["FEED_BACKOFF", "LOOPBACK_HOSTS", "Board", "create_app", "seed"]

logger = logging.getLogger(__name__)

FEED_BACKOFF = Backoff(0.1, 5.0, give_up_after_seconds=None)
"""The board waits for Redis as long as it runs, retrying at least every 5 s."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
"""The Host headers a board bound to the loopback interface answers (no DNS rebinding)."""
KEEPALIVE_SECONDS = 15.0
JUDGE_EVERY_SECONDS = 1.0
"""How often the board looks whether an account went stale or a one-off run expired."""
_FEED_BLOCK_SECONDS = 1.0
_HISTORY_LIMIT = 500

_SECURITY_HEADERS = (
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


def seed(store: AuditStore, *, stale_grace: dt.timedelta = STALE_GRACE) -> BoardState:
    """The board as the audit store has it: every account's last run and open breaks.

    Raises:
        AuditStoreError: the store could not be read.
    """
    state = BoardState(stale_grace=stale_grace)
    for account_id in store.list_accounts():
        runs = store.list_runs(account_id, limit=1)
        state.seed(account_id, runs[0] if runs else None, store.list_breaks(account_id, open_only=True))
    return state


@attrs.define
class _Changes:
    """Wakes every waiter once per change; a waiter takes `current` before it checks the version."""

    current: asyncio.Event = attrs.field(factory=asyncio.Event)

    def notify(self) -> None:
        self.current.set()
        self.current = asyncio.Event()


@attrs.define
class Board:
    """The board's state, the audit store behind it, and the thread that follows the streams.

    Args:
        state: where the board starts (`seed`).
        store: read for a break's history.
        client: a redis-py client without its own retries and with a socket timeout
            above `streams.BLOCK_SECONDS`; None: no live feed.
        where: the Redis URL without its password, for the feed's status.
        replay: how many of the streams' latest entries to apply at start, to catch up
            with runs the store had not recorded yet.
    """

    state: BoardState
    store: AuditStore
    _client: redis.Redis | redis.RedisCluster | None
    _where: str = attrs.field(kw_only=True)
    _replay: int = attrs.field(kw_only=True)
    changes: _Changes = attrs.field(init=False, factory=_Changes)
    _stop: threading.Event = attrs.field(init=False, factory=threading.Event)
    _thread: threading.Thread | None = attrs.field(init=False, default=None)
    _loop: asyncio.AbstractEventLoop | None = attrs.field(init=False, default=None)
    _judging: asyncio.Task[None] | None = attrs.field(init=False, default=None)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.changes = _Changes()
        self._judging = asyncio.create_task(self._judge())
        if self._client is None:
            self.state.set_feed(FeedStatus(live=False, detail="no Redis given: the audit store only"))
            return
        self._thread = threading.Thread(target=self._follow, args=(self._client,), name="board-stream-reader", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """End the stream reader (its blocked read is cut short by closing its connection), close Redis."""
        self._stop.set()
        if self._judging is not None:
            self._judging.cancel()
        if self._client is not None:
            disconnect(self._client)
        if self._thread is not None:
            await run_in_threadpool(self._thread.join, _FEED_BLOCK_SECONDS * 5)
            if self._thread.is_alive():
                logger.warning("The board's stream reader did not stop within %g s", _FEED_BLOCK_SECONDS * 5)
        if self._client is not None:
            self._client.close()

    async def _judge(self) -> None:
        """Tell the pages when an account went stale (or back) or a one-off run expired."""
        while True:
            await asyncio.sleep(JUDGE_EVERY_SECONDS)
            if self.state.judge(dt.datetime.now(dt.UTC)):
                self.changes.notify()

    def _post(self, apply: Callable[[], object]) -> None:
        """Run `apply` on the event loop (the state's one thread) and tell the waiters."""

        def on_loop() -> None:
            apply()
            self.changes.notify()

        if self._loop is not None and not self._stop.is_set():
            try:
                self._loop.call_soon_threadsafe(on_loop)
            except RuntimeError:
                logger.debug("The board's event loop is closed; dropped an update")

    def _hand_on(self, entry: StreamEntry) -> None:
        message = decode(entry)
        self._post(lambda: self.state.apply(message))

    def _status(self, detail: str, *, live: bool) -> None:
        status = FeedStatus(live=live, detail=detail)
        self._post(lambda: self.state.set_feed(status))

    def lost(self, attempt: int, retry_in: float, error: BaseException) -> None:
        reason = redact_text(describe_error(error))
        self._status(
            f"Redis at {self._where} unreachable ({reason}); attempt {attempt + 1} in {retry_in:.1f} s", live=False
        )

    def back(self, resume_after: str | None) -> None:
        after = f", resumed after entry {resume_after}" if resume_after else ""
        self._status(f"live from {self._where}{after}", live=True)

    def _follow(self, client: redis.Redis | redis.RedisCluster) -> None:
        """Follow the streams as long as the board runs: after an error, wait (`FEED_BACKOFF`)
        until the streams can be read again, then go on from the last entry handed on."""
        follower = StreamFollower(
            client, backoff=FEED_BACKOFF, reconnection=self, wake=self._stop, block_seconds=_FEED_BLOCK_SECONDS
        )
        failures = 0
        while not self._stop.is_set():
            try:
                if failures:
                    self._readable(client)
                    self._status(f"live from {self._where} again, the streams readable", live=True)
                follower.run(
                    self._hand_on,
                    replay_last=self._replay,
                    done=self._stop.is_set,
                    on_started=lambda: self._status(f"live from {self._where}", live=True),
                )
            except Exception as exc:
                if self._stop.is_set():
                    logger.debug("The board's stream reader ended with its connection", exc_info=True)
                    return
                failures += 1
                self._refused(exc, failures)

    def _readable(self, client: redis.Redis | redis.RedisCluster) -> None:
        """Raise the reason the streams cannot be read yet: a stream key of another type.

        Raises:
            redis.ResponseError: a key holds another type than a stream.
        """
        for key in KeySpace.for_client(client).streams.values():
            kind = client.type(key)
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
            if kind not in {"stream", "none"}:
                msg = f"WRONGTYPE the key {key} holds a {kind}, not a stream"
                raise redis.ResponseError(msg)

    def _refused(self, error: Exception, failures: int) -> None:
        retry_in = FEED_BACKOFF.delay(failures)
        if isinstance(error, redis.ResponseError):
            reason = redact_text(str(error))
            if failures == 1:
                logger.error("Redis at %s refused to read the streams: %s", self._where, reason)
            detail = f"Redis at {self._where} refused to read the streams ({reason})"
        else:
            if failures == 1:
                logger.error("The board's stream reader failed", exc_info=error)
            detail = f"the stream reader failed: {redact_text(describe_error(error))}"
        self._status(f"{detail}; trying again in {retry_in:.1f} s", live=False)
        self._stop.wait(retry_in)


class _SecurityHeaders:
    """Adds the same protective headers to every response (page, fragments, events, files)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((name, value) for name, value in _SECURITY_HEADERS if name not in names),
                ]
            await send(message)

        await self._app(scope, receive, with_headers)


def _run_json(run: RunView | None) -> dict[str, Any] | None:
    if run is None:
        return None
    fence = None if run.owner is None else run.owner.fence
    return {
        "run_id": run.run_id,
        "status": run.status,
        "trigger": run.trigger,
        "timestamp": run.timestamp.isoformat(timespec="microseconds"),
        "duration_ms": run.duration_ms,
        "discrepancy_count": run.discrepancy_count,
        "error": run.error,
        "next_run_due": None if run.next_run_due is None else run.next_run_due.isoformat(timespec="microseconds"),
        "runtime": None if fence is None else fence.runtime,
        "fencing_token": None if fence is None else fence.token,
    }


def _break_json(view: BreakView, now: dt.datetime) -> dict[str, Any]:
    return {
        "break_id": view.break_id,
        "account_id": view.account_id,
        "type": view.type,
        "symbol": view.symbol,
        "asset_type": view.asset_type,
        "currency": view.currency,
        "severity": view.severity,
        "local_value": view.local_value,
        "broker_value": view.broker_value,
        "difference": view.difference,
        "first_seen": view.first_seen.isoformat(timespec="microseconds"),
        "last_seen": view.last_seen.isoformat(timespec="microseconds"),
        "age_seconds": (now - view.first_seen).total_seconds(),
        "consecutive_runs": view.consecutive_runs,
        "halted": view.halted,
    }


def _account_json(account: AccountView, now: dt.datetime) -> dict[str, Any]:
    liveness = account.liveness
    return {
        "account_id": account.account_id,
        "status": account.status,
        "stale": liveness.stale,
        "overdue_seconds": None if liveness.overdue_by is None else liveness.overdue_by.total_seconds(),
        "owner": None if account.last_run is None or account.last_run.owner is None else str(account.last_run.owner),
        "last_run": _run_json(account.last_run),
        "breaks": [_break_json(view, now) for view in account.breaks],
    }


def _sighting_json(sighting: BreakSighting) -> dict[str, Any]:
    return {
        "run_id": str(sighting.run_id),
        "seen_at": sighting.seen_at.isoformat(timespec="microseconds"),
        "severity": sighting.severity.value,
        "local_value": None if sighting.local_value is None else format(sighting.local_value, "f"),
        "broker_value": None if sighting.broker_value is None else format(sighting.broker_value, "f"),
        "consecutive_runs": sighting.consecutive_runs,
        "explanation": None if sighting.explanation is None else explanation_payload(sighting.explanation),
    }


class _NotFoundError(Exception):
    """No break with that id, open on the board or recorded in the store."""


@attrs.frozen
class _Endpoints:
    _board: Board
    _where: str

    @staticmethod
    def _now() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def _fragment(self) -> str:
        state, now = self._board.state, self._now()
        return board_fragment(state.accounts(now), state.feed, now, state.one_offs(now))

    async def home(self, _: Request) -> Response:
        return HTMLResponse(page(self._fragment(), version=self._board.state.version, where=self._where))

    async def board(self, _: Request) -> Response:
        """The fragment, and in `X-Board-Version` the version it shows."""
        return HTMLResponse(self._fragment(), headers={"X-Board-Version": str(self._board.state.version)})

    async def history(self, request: Request) -> Response:
        try:
            view, state, sightings = await self._break(request)
        except _NotFoundError:
            return Response("no such break", status_code=404, media_type="text/plain")
        except AuditStoreError as exc:
            return Response(_unreadable(exc), status_code=503, media_type="text/plain")
        halted = None if state is None or state.halted_run_id is None else str(state.halted_run_id)
        return HTMLResponse(
            history_fragment(view, sightings, title=_title(view, state), now=self._now(), halted_run_id=halted)
        )

    async def api_board(self, _: Request) -> Response:
        now = self._now()
        return JSONResponse(
            {
                "feed": attrs.asdict(self._board.state.feed),
                "accounts": [_account_json(account, now) for account in self._board.state.accounts(now)],
                "one_off_checks": [_account_json(account, now) for account in self._board.state.one_offs(now)],
            }
        )

    async def api_break(self, request: Request) -> Response:
        try:
            view, state, sightings = await self._break(request)
        except _NotFoundError:
            return JSONResponse({"error": "no such break"}, status_code=404)
        except AuditStoreError as exc:
            return JSONResponse({"error": _unreadable(exc)}, status_code=503)
        shown = break_to_dict(state) if state is not None else _break_json(view, self._now()) if view else None
        return JSONResponse({"break": shown, "history": [_sighting_json(s) for s in sightings]})

    async def events(self, _: Request) -> Response:
        return StreamingResponse(self._changes(), media_type="text/event-stream")

    async def _changes(self) -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        shown = -1
        while True:
            change = self._board.changes.current
            if self._board.state.version != shown:
                shown = self._board.state.version
                yield f"event: board\ndata: {shown}\n\n"
            try:
                await asyncio.wait_for(change.wait(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"

    async def _break(self, request: Request) -> tuple[BreakView | None, BreakState | None, list[BreakSighting]]:
        """The break on the board, in the store, and the runs that saw it.

        Raises:
            _NotFoundError: neither the board nor the store knows it.
            AuditStoreError: the store could not be read.
        """
        try:
            break_id = uuid.UUID(request.path_params["break_id"])
        except ValueError:
            raise _NotFoundError from None
        view = self._board.state.open_break(str(break_id))
        store = self._board.store
        state = await run_in_threadpool(store.find_break, break_id)
        sightings = await run_in_threadpool(store.break_history, break_id, limit=_HISTORY_LIMIT)
        if view is None and state is None:
            raise _NotFoundError
        return view, state, sightings


def _title(view: BreakView | None, state: BreakState | None) -> str:
    shown = view if state is None else BreakView.from_state(state)
    return "break" if shown is None else f"{shown.account_id} · {shown.type} · {shown.symbol or '(account)'}"


def _unreadable(error: AuditStoreError) -> str:
    return f"the audit store could not be read: {redact_text(str(error))}"


def create_app(board: Board, *, where: str, allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS) -> ASGIApp:
    """The board's ASGI app.

    Args:
        board: its state and sources; started and stopped with the app.
        where: what the page's header says the board shows (store and Redis, without passwords).
        allowed_hosts: the Host headers answered; None answers any.
    """
    endpoints = _Endpoints(board, where)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await board.start()
        try:
            yield
        finally:
            await board.stop()

    static = files("reconciliation._cli.board").joinpath("static")
    middleware = [] if allowed_hosts is None else [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))]
    app = Starlette(
        routes=[
            Route("/", endpoints.home),
            Route("/board", endpoints.board),
            Route("/breaks/{break_id}", endpoints.history),
            Route("/events", endpoints.events),
            Route("/api/board", endpoints.api_board),
            Route("/api/breaks/{break_id}", endpoints.api_break),
            Mount("/static", app=StaticFiles(directory=str(static)), name="static"),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    return _SecurityHeaders(app)
