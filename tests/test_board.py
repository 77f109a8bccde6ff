"""The break board: its state from the store and the streams, its pages and JSON API, `serve` itself."""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from board_seed import seed_store
from click.testing import CliRunner
from starlette.testclient import TestClient
from stream_payloads import STREAM_OF, append, discrepancy, halt, now_text, resolved, result

from reconciliation._cli.board.app import Board, create_app, seed
from reconciliation._cli.board.page import board_fragment, history_fragment
from reconciliation._cli.board.state import BoardState
from reconciliation._cli.main import main
from reconciliation._domain.models import DiscrepancySeverity
from reconciliation._publishing.inbound import Message, decode
from reconciliation._publishing.redis_clients import client_for
from reconciliation._publishing.streams import StreamEntry
from reconciliation.audit import BreakSighting, open_store

if TYPE_CHECKING:
    from collections.abc import Iterator

    import redis
    from redis_server import RedisServer

T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)



def seeded(audit_target: Any) -> BoardState:
    """The board's state seeded from a store holding board_seed's runs and breaks."""
    seed_store(audit_target)
    store = open_store(audit_target)
    try:
        return seed(store)
    finally:
        store.close()

def at(minutes: float) -> str:
    return (T0 + dt.timedelta(minutes=minutes)).isoformat(timespec="microseconds")


def entry(
    kind: str, payload: dict[str, Any] | bytes, *, runtime: bytes | None = None, fencing_token: bytes | None = None
) -> Message:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return decode(
        StreamEntry(STREAM_OF[kind], "1-0", raw, replayed=False, runtime=runtime, fencing_token=fencing_token)
    )


def breaks(state: BoardState, account: str = "ACC-1") -> list[tuple[str, str | None]]:
    (view,) = [a for a in state.accounts() if a.account_id == account]
    return [(b.type, b.symbol) for b in view.breaks]


class TestState:
    def test_breaks_are_sorted_by_severity_then_oldest_first(self):
        state = BoardState()
        state.apply(entry("discrepancy", discrepancy(symbol="NEW", timestamp=at(9), first_seen=at(9))))
        state.apply(entry("discrepancy", discrepancy(symbol="OLD", timestamp=at(9), first_seen=at(1))))
        state.apply(
            entry(
                "discrepancy",
                discrepancy(symbol=None, type="cash_mismatch", severity="warning", timestamp=at(9), first_seen=at(0)),
            )
        )

        assert breaks(state) == [
            ("quantity_mismatch", "OLD"),
            ("quantity_mismatch", "NEW"),
            ("cash_mismatch", None),
        ]

    def test_a_later_discrepancy_refreshes_its_break(self):
        state = BoardState()
        state.apply(entry("discrepancy", discrepancy(timestamp=at(0), first_seen=at(0), broker_value="150")))

        state.apply(entry("discrepancy", discrepancy(timestamp=at(5), first_seen=at(0), broker_value="160", consecutive_runs=2)))

        (view,) = state.accounts()[0].breaks
        assert (view.broker_value, view.consecutive_runs, view.first_seen) == ("160", 2, T0)

    def test_a_resolved_notice_closes_the_break_it_names(self):
        state = BoardState()
        opened = discrepancy(timestamp=at(0))
        state.apply(entry("discrepancy", opened))

        changed = state.apply(entry("resolved", resolved(break_id=opened["break_id"], last_seen=at(0), resolved_at=at(5))))

        assert changed
        assert breaks(state) == []

    def test_a_resolved_notice_of_an_older_break_leaves_the_new_one_open(self):
        state = BoardState()
        state.apply(entry("discrepancy", discrepancy(timestamp=at(10))))

        changed = state.apply(entry("resolved", resolved(resolved_at=at(5))))

        assert not changed
        assert breaks(state) == [("quantity_mismatch", "AAPL")]

    def test_a_clean_run_closes_the_breaks_seen_before_it(self):
        state = BoardState()
        state.apply(entry("discrepancy", discrepancy(timestamp=at(0))))

        state.apply(entry("result", result(timestamp=at(5), is_clean=True, discrepancy_count=0)))

        assert breaks(state) == []

    def test_an_entry_older_than_what_the_board_knows_changes_nothing(self):
        state = BoardState()
        state.apply(entry("result", result(run_id="NEW", timestamp=at(10))))
        state.apply(entry("discrepancy", discrepancy(timestamp=at(10), broker_value="160")))
        version = state.version

        assert not state.apply(entry("result", result(run_id="OLD", timestamp=at(5))))
        assert not state.apply(entry("discrepancy", discrepancy(timestamp=at(5), broker_value="150")))
        assert state.version == version
        (account,) = state.accounts()
        assert account.last_run is not None
        assert account.last_run.run_id == "NEW"
        assert account.breaks[0].broker_value == "160"

    def test_a_halt_marks_its_break(self):
        state = BoardState()
        opened = discrepancy(timestamp=at(0))
        state.apply(entry("discrepancy", opened))

        state.apply(entry("halt", halt(break_id=opened["break_id"], timestamp=at(5))))

        (view,) = state.accounts()[0].breaks
        assert view.halted

    def test_a_malformed_entry_is_counted_and_named_not_applied(self):
        state = BoardState()

        state.apply(entry("result", b"\x1b]0;x\x07 not json"))

        assert state.accounts() == []
        assert state.feed.malformed == 1
        assert (state.feed.last_malformed or "").startswith("reconciliation:stream:result 1-0: not JSON")

    def test_the_store_seeds_every_account_with_its_last_run_and_open_breaks(self, audit_target):
        state = seeded(audit_target)

        assert [a.account_id for a in state.accounts()] == ["ACC-1", "ACC-2"]
        assert breaks(state, "ACC-1") == [("missing_local", "AAPL"), ("cash_mismatch", None)]
        assert breaks(state, "ACC-2") == [("missing_local", "MSFT")]
        assert all(a.last_run is not None and a.last_run.status == "ok" for a in state.accounts())


def due(minutes: float) -> dict[str, Any]:
    """A periodic run at T0 whose next run is due `minutes` later (a 5-minute interval)."""
    return {"timestamp": at(0), "duration_ms": 0.0, "next_run_due": at(minutes)}


def statuses(state: BoardState, now: dt.datetime) -> list[tuple[str, str]]:
    return [(view.account_id, view.status) for view in state.accounts(now)]


class TestLiveness:
    def test_an_account_whose_next_run_is_overdue_past_the_grace_is_stale(self):
        state = BoardState(stale_grace=dt.timedelta(minutes=2))
        state.apply(entry("result", result(is_clean=True, discrepancy_count=0, **due(5))))

        assert statuses(state, T0 + dt.timedelta(minutes=6)) == [("ACC-1", "clean")]
        assert statuses(state, T0 + dt.timedelta(minutes=8)) == [("ACC-1", "stale")]

    def test_a_stale_account_says_how_long_since_its_last_run_and_its_interval(self):
        state = BoardState(stale_grace=dt.timedelta(minutes=2))
        state.apply(entry("result", result(is_clean=True, discrepancy_count=0, **due(5))))
        now = T0 + dt.timedelta(minutes=21)

        fragment = board_fragment(state.accounts(now), state.feed, now)

        assert "STALE: no run for 21 min (expected every 5 min)" in fragment
        assert '<span id="stale-count" class="alarm">1 stale</span>' in fragment

    def test_a_newer_result_makes_a_stale_account_live_again(self):
        state = BoardState(stale_grace=dt.timedelta(minutes=2))
        state.apply(entry("result", result(is_clean=True, discrepancy_count=0, **due(5))))
        now = T0 + dt.timedelta(minutes=9)
        later = {"timestamp": at(8.5), "duration_ms": 0.0, "next_run_due": at(13.5)}

        state.apply(entry("result", result(is_clean=True, discrepancy_count=0, **later)))

        assert statuses(state, now) == [("ACC-1", "clean")]

    def test_judging_tells_of_a_change_only_when_an_account_went_stale(self):
        state = BoardState(stale_grace=dt.timedelta(minutes=2))
        state.apply(entry("result", result(is_clean=True, discrepancy_count=0, **due(5))))

        assert state.judge(T0 + dt.timedelta(minutes=1)) is False
        assert state.judge(T0 + dt.timedelta(minutes=8)) is True
        assert state.judge(T0 + dt.timedelta(minutes=9)) is False

    def test_accounts_sort_failing_stale_critical_warning_clean(self):
        state = BoardState(stale_grace=dt.timedelta(minutes=2))
        now = T0 + dt.timedelta(minutes=10)
        fresh = {"timestamp": at(9), "duration_ms": 0.0, "next_run_due": at(14)}
        state.apply(entry("result", result("A-CLEAN", is_clean=True, discrepancy_count=0, **fresh)))
        state.apply(entry("result", result("B-WARN", **fresh)))
        state.apply(entry("discrepancy", discrepancy("B-WARN", severity="warning", timestamp=at(9))))
        state.apply(entry("result", result("C-CRIT", **fresh)))
        state.apply(entry("discrepancy", discrepancy("C-CRIT", timestamp=at(9))))
        state.apply(entry("result", result("D-STALE", is_clean=True, discrepancy_count=0, **due(5))))
        state.apply(entry("result", result("E-FAIL", status="failed", error="broker timed out", is_clean=False, **fresh)))

        assert statuses(state, now) == [
            ("E-FAIL", "failing"),
            ("D-STALE", "stale"),
            ("C-CRIT", "critical"),
            ("B-WARN", "warning"),
            ("A-CLEAN", "clean"),
        ]

    def test_a_one_off_check_is_shown_apart_and_expires(self):
        state = BoardState(one_off_shown_for=dt.timedelta(hours=1))
        check = {"trigger": "on_demand", "requested_by": "check"}
        state.apply(entry("result", result("FILES", context=check, timestamp=at(0), next_run_due=None)))
        state.apply(entry("result", result("ACC-1", is_clean=True, discrepancy_count=0, **due(5))))
        soon, later = T0 + dt.timedelta(minutes=30), T0 + dt.timedelta(minutes=61)

        assert [view.account_id for view in state.accounts(soon)] == ["ACC-1"]
        assert [view.account_id for view in state.one_offs(soon)] == ["FILES"]
        assert state.one_offs(later) == []
        assert "One-off checks" in board_fragment(state.accounts(soon), state.feed, soon, state.one_offs(soon))


def owner(state: BoardState, account: str = "ACC-1") -> str | None:
    (view,) = [a for a in state.accounts() if a.account_id == account]
    return None if view.last_run is None or view.last_run.owner is None else str(view.last_run.owner)


class TestOwner:
    def test_a_result_made_under_a_lease_shows_its_runtime_and_token(self):
        state = BoardState()

        state.apply(entry("result", result(timestamp=at(0)), runtime=b"eu-1", fencing_token=b"2"))

        assert owner(state) == "eu-1 (token 2)"
        assert '<span class="owner"' in board_fragment(state.accounts(), state.feed, T0)
        assert "owner: eu-1 (token 2)</span>" in board_fragment(state.accounts(), state.feed, T0)

    def test_a_result_made_without_a_lease_shows_no_lease(self):
        state = BoardState()

        state.apply(entry("result", result(timestamp=at(0))))

        assert owner(state) == "no lease"
        assert "owner: no lease</span>" in board_fragment(state.accounts(), state.feed, T0)

    def test_a_takeover_shows_the_new_owner(self):
        state = BoardState()
        state.apply(entry("result", result(timestamp=at(0)), runtime=b"eu-1", fencing_token=b"2"))

        changed = state.apply(entry("result", result(timestamp=at(5)), runtime=b"eu-2", fencing_token=b"3"))

        assert changed
        assert owner(state) == "eu-2 (token 3)"

    def test_an_older_result_does_not_change_the_owner(self):
        state = BoardState()
        state.apply(entry("result", result(timestamp=at(5)), runtime=b"eu-2", fencing_token=b"3"))

        state.apply(entry("result", result(timestamp=at(0)), runtime=b"eu-1", fencing_token=b"2"))

        assert owner(state) == "eu-2 (token 3)"

    def test_an_account_seeded_from_the_store_shows_no_owner(self, audit_target):
        state = seeded(audit_target)

        assert {owner(state, account.account_id) for account in state.accounts()} == {None}
        assert 'class="owner"' not in board_fragment(state.accounts(), state.feed, T0)

    def test_a_runtime_name_is_escaped_on_the_page(self):
        state = BoardState()

        state.apply(entry("result", result(timestamp=at(0)), runtime=b"<b>eu-1</b>", fencing_token=b"7"))

        assert "owner: &lt;b&gt;eu-1&lt;/b&gt; (token 7)</span>" in board_fragment(state.accounts(), state.feed, T0)

    @pytest.mark.parametrize(
        ("runtime", "fencing_token", "problem"),
        [
            (None, b"2", "a fencing_token field without a runtime field"),
            (b"eu-1", None, "a runtime field without a fencing_token field"),
            (b"eu-1", b"two", "fencing_token: not a whole number"),
            (b"eu-1", b"-2", "fencing_token: not a whole number"),
            (b"", b"2", "runtime: not 1 to 200 printable characters"),
            (b"eu\x1b[2J", b"2", "runtime: not 1 to 200 printable characters"),
            (b"e" * 201, b"2", "runtime: not 1 to 200 printable characters"),
            (b"\xff", b"2", "runtime: not 1 to 200 printable characters"),
        ],
    )
    def test_an_entry_with_a_malformed_lease_is_counted_and_named_not_applied(self, runtime, fencing_token, problem):
        state = BoardState()

        state.apply(entry("result", result(timestamp=at(0)), runtime=runtime, fencing_token=fencing_token))

        assert state.accounts() == []
        assert state.feed.malformed == 1
        assert state.feed.last_malformed == f"reconciliation:stream:result 1-0: {problem}"


class TestBreakIdentity:
    def test_a_stock_and_an_option_of_one_symbol_are_two_breaks(self):
        state = BoardState()
        state.apply(entry("discrepancy", discrepancy(symbol="AAPL", asset_type="stock", timestamp=at(1))))
        state.apply(entry("discrepancy", discrepancy(symbol="AAPL", asset_type="option", timestamp=at(1))))

        (account,) = state.accounts()
        assert sorted((b.symbol, b.asset_type) for b in account.breaks) == [("AAPL", "option"), ("AAPL", "stock")]

    def test_cash_in_two_currencies_is_two_breaks(self):
        state = BoardState()
        for currency in ("USD", "EUR"):
            state.apply(
                entry(
                    "discrepancy",
                    discrepancy(symbol=None, type="cash_mismatch", currency=currency, asset_type=None, timestamp=at(1)),
                )
            )

        (account,) = state.accounts()
        assert sorted(b.currency or "" for b in account.breaks) == ["EUR", "USD"]

    def test_a_resolved_notice_closes_only_the_break_of_its_asset_type(self):
        state = BoardState()
        stock = discrepancy(symbol="AAPL", asset_type="stock", timestamp=at(1))
        state.apply(entry("discrepancy", stock))
        state.apply(entry("discrepancy", discrepancy(symbol="AAPL", asset_type="option", timestamp=at(1))))

        state.apply(entry("resolved", resolved(asset_type="stock", break_id=stock["break_id"], resolved_at=at(2))))

        (account,) = state.accounts()
        assert [(b.symbol, b.asset_type) for b in account.breaks] == [("AAPL", "option")]

    def test_the_row_shows_the_asset_type_and_the_difference(self):
        state = BoardState()
        state.apply(entry("discrepancy", discrepancy(symbol="AAPL", asset_type="option", timestamp=at(1))))

        fragment = board_fragment(state.accounts(), state.feed, T0)

        assert '<td>option</td><td class="num">100</td><td class="num">150</td><td class="num">50</td>' in fragment


class TestHistory:
    def test_a_breaks_history_is_newest_first_and_marks_the_escalation_and_the_kill_switch(self):
        runs = [uuid.uuid4() for _ in range(3)]
        sightings = [
            BreakSighting(run, T0 + dt.timedelta(minutes=i), severity, Decimal(100), Decimal(150), i + 1)
            for i, (run, severity) in enumerate(
                zip(runs, [DiscrepancySeverity.WARNING, DiscrepancySeverity.CRITICAL, DiscrepancySeverity.CRITICAL], strict=True)
            )
        ]

        fragment = history_fragment(None, sightings, title="t", now=T0, halted_run_id=str(runs[2]))

        shown = [fragment.index(f'data-run-id="{run}"') for run in runs]
        assert shown == sorted(shown, reverse=True)
        assert '<td class="mark"><span class="escalated">escalated</span></td>' in fragment
        assert '<span class="halt">HALT: kill switch</span>' in fragment


@pytest.fixture
def store_path(tmp_path: Path) -> str:
    path = str(tmp_path / "audit.db")
    seed_store(path)
    return path


@pytest.fixture
def web(store_path: str, redis_server: RedisServer) -> Iterator[tuple[TestClient, Board]]:
    store = open_store(store_path)
    client = client_for(f"redis://127.0.0.1:{redis_server.port}/0", retry_commands=False)
    board = Board(seed(store), store, client, where="the test's Redis", replay=100)
    with TestClient(create_app(board, where="the test"), base_url="http://127.0.0.1") as client:
        yield client, board
    store.close()


def eventually(check: Any, what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.02)
    return found


def _accounts(client: TestClient) -> dict[str, Any]:
    return {account["account_id"]: account for account in client.get("/api/board").json()["accounts"]}


def _accounts_once(client: TestClient, account_id: str) -> dict[str, Any] | None:
    """Every account by its id, once `account_id` is among them."""
    accounts = _accounts(client)
    return accounts if account_id in accounts else None


@pytest.mark.real_redis
class TestWeb:
    def test_the_page_shows_every_account_its_last_run_and_its_open_breaks(self, web):
        client, _ = web

        page = client.get("/")

        assert page.status_code == 200
        assert 'data-account="ACC-1"' in page.text
        assert 'data-symbol="AAPL"' in page.text
        assert 'data-symbol="MSFT"' in page.text
        assert "last run: ok" in page.text
        assert '<script type="module" src="static/board.js">' in page.text

    def test_the_json_api_lists_accounts_their_last_runs_and_breaks_most_severe_first(self, web):
        client, _ = web

        board = client.get("/api/board").json()

        accounts = {a["account_id"]: a for a in board["accounts"]}
        assert [(b["type"], b["severity"], b["consecutive_runs"]) for b in accounts["ACC-1"]["breaks"]] == [
            ("missing_local", "critical", 2),
            ("cash_mismatch", "warning", 2),
        ]
        assert accounts["ACC-1"]["last_run"]["status"] == "ok"
        assert accounts["ACC-2"]["breaks"][0]["broker_value"] == "10"

    def test_a_breaks_history_comes_from_the_store(self, web):
        client, _ = web
        (aapl,) = [b for a in client.get("/api/board").json()["accounts"] for b in a["breaks"] if b["symbol"] == "AAPL"]

        found = client.get(f"/api/breaks/{aapl['break_id']}").json()
        fragment = client.get(f"/breaks/{aapl['break_id']}")

        assert found["break"]["break_id"] == aapl["break_id"]
        assert [s["consecutive_runs"] for s in found["history"]] == [1, 2]
        assert "ACC-1 · missing_local · AAPL" in fragment.text

    @pytest.mark.parametrize("break_id", [str(uuid.uuid4()), "not-a-uuid"])
    def test_an_unknown_break_is_not_found(self, web, break_id):
        client, _ = web

        assert client.get(f"/api/breaks/{break_id}").status_code == 404
        assert client.get(f"/breaks/{break_id}").status_code == 404

    @pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
    def test_the_board_is_read_only(self, web, method):
        client, _ = web

        for path in ("/", "/board", "/api/board", "/events"):
            assert client.request(method, path).status_code == 405

    def test_a_request_addressed_to_another_host_is_refused(self, web):
        client, _ = web

        assert client.get("/api/board", headers={"Host": "evil.example"}).status_code == 400

    def test_every_answer_carries_a_content_security_policy(self, web):
        client, _ = web

        for path in ("/", "/board", "/api/board", "/static/board.js"):
            assert "default-src 'self'" in client.get(path).headers["content-security-policy"]

    def test_text_from_the_streams_is_escaped_and_shown_without_control_characters(self, web, real_redis):
        client, _ = web
        hostile = '<img src=x onerror="alert(1)">\x1b]0;owned\x07'
        append(real_redis, "result", result(account_id="EVIL", status="failed", error=hostile, timestamp=now_text()))
        append(real_redis, "discrepancy", discrepancy(account_id="EVIL", symbol=hostile, timestamp=now_text()))

        def shown() -> str | None:
            text = client.get("/board").text
            return text if "EVIL" in text else None

        page = eventually(shown, "the entry")

        assert "<img" not in page
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;\\x1b]0;owned\\x07" in page
        assert "\x1b" not in page

    def test_the_json_api_shows_which_runtime_owns_each_account(self, web, real_redis):
        client, _ = web

        append(real_redis, "result", result(account_id="ACC-1", timestamp=now_text()), lease=("eu-1", 2))
        append(real_redis, "result", result(account_id="ACC-8", timestamp=now_text()))

        accounts = eventually(lambda: _accounts_once(client, "ACC-8"), "the board to take both results")
        assert accounts["ACC-1"]["owner"] == "eu-1 (token 2)"
        assert (accounts["ACC-1"]["last_run"]["runtime"], accounts["ACC-1"]["last_run"]["fencing_token"]) == ("eu-1", 2)
        assert accounts["ACC-8"]["owner"] == "no lease"
        assert (accounts["ACC-8"]["last_run"]["runtime"], accounts["ACC-8"]["last_run"]["fencing_token"]) == (None, None)
        assert accounts["ACC-2"]["owner"] is None

    def test_a_takeover_shows_as_the_new_owner(self, web, real_redis):
        client, _ = web
        append(real_redis, "result", result(account_id="ACC-1", timestamp=now_text()), lease=("eu-1", 2))
        eventually(lambda: _accounts(client)["ACC-1"]["owner"] == "eu-1 (token 2)", "the first owner to show")

        append(real_redis, "result", result(account_id="ACC-1", timestamp=now_text()), lease=("eu-2", 3))

        eventually(lambda: _accounts(client)["ACC-1"]["owner"] == "eu-2 (token 3)", "the new owner to show")
        assert "owner: eu-2 (token 3)</span>" in client.get("/board").text

    def test_an_entry_appended_while_serving_reaches_the_board(self, web, real_redis):
        client, board = web
        version = board.state.version

        append(real_redis, "halt", halt(account_id="ACC-9", symbol="TSLA", timestamp=now_text(), first_seen=now_text()))

        eventually(lambda: board.state.version > version, "the board to change")
        (account,) = [a for a in client.get("/api/board").json()["accounts"] if a["account_id"] == "ACC-9"]
        assert account["breaks"][0]["halted"] is True
        assert client.get("/board").headers["x-board-version"] == str(board.state.version)


@pytest.mark.real_redis
def test_the_board_follows_redis_again_once_a_stream_key_of_the_wrong_type_is_fixed(web, real_redis):
    client, board = web
    real_redis.delete(STREAM_OF["result"])
    real_redis.set(STREAM_OF["result"], "not a stream")

    eventually(lambda: not client.get("/api/board").json()["feed"]["live"], "the board to say the feed is down")
    assert "WRONGTYPE" in client.get("/api/board").json()["feed"]["detail"]
    real_redis.delete(STREAM_OF["result"])
    eventually(lambda: client.get("/api/board").json()["feed"]["live"], "the board to follow Redis again", 20)
    append(real_redis, "discrepancy", discrepancy(account_id="ACC-AFTER", timestamp=now_text()))

    eventually(lambda: "ACC-AFTER" in {a.account_id for a in board.state.accounts()}, "an entry after the fix")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def serving(redis_server: RedisServer, store_path: str) -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "reconciliation", "serve", "--store", store_path,
         "--redis-url", f"redis://127.0.0.1:{redis_server.port}/0", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _answers(url, server), "serve to answer")
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
    assert server.returncode == 0


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - a loopback http URL we built
        return json.load(answer)


def _answers(url: str, server: subprocess.Popen[str]) -> bool:
    assert server.poll() is None, server.communicate()
    try:
        return bool(_get_json(f"{url}/api/board")["feed"]["live"])
    except (urllib.error.URLError, ConnectionError):
        return False


@pytest.mark.real_redis
def test_serve_tells_open_event_streams_of_each_change(serving: str, real_redis: redis.Redis) -> None:
    with urllib.request.urlopen(f"{serving}/events", timeout=10) as events:  # noqa: S310 - loopback
        first = _next_board_event(events)
        append(real_redis, "discrepancy", discrepancy(account_id="ACC-7", timestamp=now_text()))
        second = _next_board_event(events)

    assert second > first
    assert "ACC-7" in [a["account_id"] for a in _get_json(f"{serving}/api/board")["accounts"]]


def _next_board_event(events: Any) -> int:
    while line := events.readline().decode():
        if line.startswith("data: "):
            return int(line.removeprefix("data: "))
    msg = "the event stream ended"
    raise AssertionError(msg)


def test_serve_without_the_store_file_is_a_usage_error(tmp_path: Path) -> None:
    outcome = CliRunner().invoke(main, ["serve", "--store", str(tmp_path / "none.db")])

    assert outcome.exit_code == 2, outcome.output
    assert "--store: no audit store at" in outcome.output


def test_serve_on_a_store_without_audit_tables_exits_5_saying_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()

    outcome = CliRunner().invoke(main, ["serve", "--store", str(empty)])

    assert outcome.exit_code == 5, outcome.output
    assert "has no audit tables" in outcome.output


def test_serve_with_a_url_that_is_not_a_redis_url_is_a_usage_error(store_path: str) -> None:
    outcome = CliRunner().invoke(main, ["serve", "--store", store_path, "--redis-url", "notaurl"])

    assert outcome.exit_code == 2, outcome.output
    assert "--redis-url: not a Redis URL" in outcome.output


def test_serve_on_a_port_in_use_exits_4_naming_it(store_path: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]

        outcome = CliRunner().invoke(main, ["serve", "--store", store_path, "--port", str(port)])

    assert outcome.exit_code == 4, outcome.output
    assert f"cannot listen on 127.0.0.1:{port}" in outcome.output


@pytest.mark.parametrize("port", ["0", "65536", str(10**20)])
def test_serve_with_a_port_out_of_range_is_a_usage_error(store_path: str, port: str) -> None:
    outcome = CliRunner().invoke(main, ["serve", "--store", store_path, "--port", port])

    assert outcome.exit_code == 2, outcome.output
    assert "--port" in outcome.output
