"""`reconciliation watch`: the streams, read with XREAD BLOCK, survived, filtered and shown safely."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import fakeredis
import pytest
from cli_runner import stderr_apart
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from stream_payloads import STREAM_OF, append, correction, discrepancy, halt, resolved, result

from reconciliation._cli.main import main
from reconciliation._cli.watch import Filters, Liveness, human_line, json_line, watch
from reconciliation._publishing.inbound import MAX_DEPTH, MAX_ENTRY_BYTES, Message, decode
from reconciliation._publishing.streams import StreamCursor, StreamEntry

if TYPE_CHECKING:
    from collections.abc import Iterator

    import redis
    from redis_server import RedisServer


_BUILDERS = {
    "result": result,
    "discrepancy": discrepancy,
    "resolved": resolved,
    "halt": halt,
    "correction": correction,
}


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    fake = fakeredis.FakeRedis()
    yield fake
    fake.close()


def replayed(client: redis.Redis, last: int = 100, **options: Any) -> list[Message]:
    shown: list[Message] = []
    watch(client, shown.append, replay_last=last, timeout=0.05, **options)
    return shown


def _payload(entry: StreamEntry) -> dict[str, Any]:
    return json.loads(entry.raw or b"")


def shown_text(message: Message) -> str:
    console = Console(file=io.StringIO(), color_system=None, width=400, soft_wrap=True)
    console.print(human_line(message))
    return console.file.getvalue()  # type: ignore[attr-defined]


class TestReading:
    def test_replay_shows_the_latest_entries_of_the_four_streams_merged_in_publish_order(self, client):
        run = result(run_id="R1")
        append(client, "result", result(run_id="R0"))
        append(client, "result", run)
        append(client, "discrepancy", discrepancy(run_id="R1"))
        append(client, "resolved", resolved())
        append(client, "halt", halt())

        shown = replayed(client, last=4)

        assert [m.channel for m in shown] == [
            "reconciliation:result",
            "reconciliation:discrepancy",
            "reconciliation:resolved",
            "reconciliation:halt",
        ]
        assert shown[0].payload == run
        assert all(m.replayed for m in shown)

    def test_entries_with_the_same_id_in_two_streams_follow_publish_order(self, client):
        client.xadd(STREAM_OF["discrepancy"], {"payload": json.dumps(discrepancy())}, id="5-0")
        client.xadd(STREAM_OF["result"], {"payload": json.dumps(result())}, id="5-0")

        shown = replayed(client)

        assert [m.channel for m in shown] == ["reconciliation:result", "reconciliation:discrepancy"]

    def test_an_entry_appended_while_watching_is_shown_once_and_live(self, client):
        append(client, "result", result(account_id="OLD"))
        shown: list[Message] = []
        started = threading.Event()
        watcher = threading.Thread(
            target=watch, args=(client, shown.append), kwargs={"count": 1, "on_started": started.set}
        )
        watcher.start()
        assert started.wait(5)
        append(client, "discrepancy", discrepancy(account_id="NEW"))
        watcher.join(10)

        assert not watcher.is_alive()
        assert [(m.payload or {}).get("account_id") for m in shown] == ["NEW"]
        assert not shown[0].replayed

    def test_a_backlog_larger_than_one_read_is_handed_on_in_publish_order(self, client):
        cursor = StreamCursor(client, count=2)
        cursor.start()
        for n in range(5):
            millis = 1_000 + n
            client.xadd(STREAM_OF["result"], {"payload": json.dumps(result(run_id=f"R{n}"))}, id=f"{millis}-0")
            for symbol in ("AAPL", "MSFT"):
                client.xadd(
                    STREAM_OF["discrepancy"],
                    {"payload": json.dumps(discrepancy(run_id=f"R{n}", symbol=symbol))},
                    id=f"{millis}-*",
                )

        handed_on: list[StreamEntry] = []
        while batch := cursor.read(0.01):
            handed_on.extend(batch)

        published = [(f"R{n}", symbol) for n in range(5) for symbol in (None, "AAPL", "MSFT")]
        assert [(payload["run_id"], payload.get("symbol")) for payload in map(_payload, handed_on)] == published

    def test_a_stream_key_of_another_type_is_refused_by_redis_not_taken_for_an_outage(self, client):
        client.set(STREAM_OF["halt"], "not a stream")

        with pytest.raises(Exception, match="WRONGTYPE"):
            replayed(client)


class TestFilters:
    def test_account_filter_shows_only_that_accounts_payloads(self, client):
        append(client, "result", result(account_id="ACC-1"))
        append(client, "discrepancy", discrepancy(account_id="ACC-2"))
        append(client, "halt", halt(account_id="ACC-1"))

        shown = replayed(client, filters=Filters(accounts=frozenset({"ACC-1"})))

        assert [m.channel for m in shown] == ["reconciliation:result", "reconciliation:halt"]

    def test_severity_filter_leaves_out_results_and_other_severities(self, client):
        append(client, "result", result())
        append(client, "discrepancy", discrepancy(severity="info", type="cost_mismatch"))
        append(client, "discrepancy", discrepancy(severity="critical"))
        append(client, "resolved", resolved(severity="critical"))

        shown = replayed(client, filters=Filters(severities=frozenset({"critical"})))

        assert [m.channel for m in shown] == ["reconciliation:discrepancy", "reconciliation:resolved"]

    def test_a_malformed_entry_is_shown_whatever_the_filters(self, client):
        append(client, "discrepancy", b"not json")

        shown = replayed(client, filters=Filters(frozenset({"ACC-1"}), frozenset({"critical"})))

        assert [m.malformed for m in shown] == [True]


MALFORMED = {
    "not JSON": ("result", b"{not json", "not JSON"),
    "not UTF-8": ("result", b"\xff\xfe{}", "not UTF-8"),
    "deeply nested JSON": ("discrepancy", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "a list as run_id": ("result", json.dumps(result(run_id=["x"])).encode(), "run_id: not a string"),
    "duration_ms of 10**400": ("result", json.dumps(result(duration_ms=10**400)).encode(), "duration_ms: out of range"),
    "a float beyond range": (
        "result",
        json.dumps(result()).replace('"duration_ms": 3.2', '"duration_ms": 1e400').encode(),
        "beyond the range of a JSON number",
    ),
    "NaN": ("result", json.dumps(result()).replace('"duration_ms": 3.2', '"duration_ms": NaN').encode(), "not JSON"),
    "an integer too long to read": (
        "result",
        json.dumps(result()).replace('"positions_checked": 12', '"positions_checked": ' + "9" * 5000).encode(),
        "not JSON",
    ),
    "a missing field": (
        "discrepancy",
        json.dumps({k: v for k, v in discrepancy().items() if k != "severity"}).encode(),
        "missing severity",
    ),
    "a huge value": ("result", json.dumps(result(error="x" * (MAX_ENTRY_BYTES + 1))).encode(), "bytes, more than"),
    "an array": ("halt", b"[1, 2, 3]", "not a JSON object but list"),
    "an unknown severity": ("discrepancy", json.dumps(discrepancy(severity="apocalyptic")).encode(), "severity: not one of"),
    "an unknown discrepancy type": (
        "discrepancy",
        json.dumps(discrepancy(type="margin_mismatch")).encode(),
        "type: not one of missing_local, missing_broker,",
    ),
    "a netted position of no side": (
        "result",
        json.dumps(result(netted=[{"side": "both", "symbol": "AAPL", "asset_type": "stock", "entries": 2}])).encode(),
        "netted[0].side: not one of local, broker",
    ),
    "a time that is not one": ("halt", json.dumps(halt(first_seen="yesterday")).encode(), "first_seen: not an ISO-8601"),
    "a count below zero": (
        "resolved",
        json.dumps(resolved(consecutive_runs=-1)).encode(),
        "consecutive_runs: out of range",
    ),
    "extra keys nested too deep": (
        "result",
        json.dumps(result(extra=json.loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)))).encode(),
        f"nested deeper than {MAX_DEPTH} levels",
    ),
}


class TestMalformedEntries:
    @pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
    def test_is_shown_as_malformed_with_its_stream_id_and_the_watch_goes_on(self, client, case):
        kind, raw, reason = MALFORMED[case]
        bad = append(client, kind, raw)
        append(client, kind, _BUILDERS[kind](account_id="AFTER"))

        first, second = replayed(client)

        assert first.malformed
        assert first.entry_id == bad
        assert reason in (first.problem or "")
        assert f"MALFORMED {STREAM_OF[kind]} entry {bad}" in shown_text(first)
        assert (second.payload or {}).get("account_id") == "AFTER"

    def test_an_entry_without_a_payload_field_is_malformed(self, client):
        bad = client.xadd(STREAM_OF["result"], {"other": "x"}).decode()

        (shown,) = replayed(client)

        assert (shown.entry_id, shown.problem) == (bad, "no payload field")

    def test_an_entry_that_cannot_be_shown_is_shown_as_malformed_and_the_watch_goes_on(self, client):
        append(client, "result", result(account_id="FIRST"))
        append(client, "result", result(account_id="SECOND"))
        shown: list[Message] = []

        def show(message: Message) -> None:
            if (message.payload or {}).get("account_id") == "FIRST":
                msg = "boom"
                raise RuntimeError(msg)
            shown.append(message)

        watch(client, show, replay_last=10, timeout=0.05)

        assert [m.problem for m in shown] == ["cannot be shown: RuntimeError: boom", None]


class TestOutput:
    def test_json_line_carries_channel_stream_and_stream_id_so_jq_can_select_on_them(self, client):
        append(client, "result", result())
        entry_id = append(client, "discrepancy", discrepancy(severity="critical"))
        append(client, "resolved", resolved(severity="critical"))

        lines = [json.loads(json_line(m)) for m in replayed(client)]
        critical_breaks = [
            line
            for line in lines
            if line["channel"] == "reconciliation:discrepancy" and line.get("severity") == "critical"
        ]

        (only,) = critical_breaks
        assert only["stream"] == "reconciliation:stream:discrepancy"
        assert only["stream_id"] == entry_id
        assert only["replayed"] is True
        assert only["type"] == "quantity_mismatch"
        assert list(only)[:4] == ["channel", "stream", "stream_id", "replayed"]

    def test_json_line_of_a_malformed_entry_says_why_and_shows_its_start(self, client):
        entry_id = append(client, "halt", b"\x1b]0;owned\x07 not json")

        (line,) = [json.loads(json_line(m)) for m in replayed(client)]

        assert line["stream_id"] == entry_id
        assert line["malformed"].startswith("not JSON")
        assert line["raw"] == "\\x1b]0;owned\\x07 not json"

    def test_a_payload_key_named_like_the_envelope_does_not_replace_it(self, client):
        append(client, "result", result(channel="forged", stream_id="0-1"))

        (line,) = [json.loads(json_line(m)) for m in replayed(client)]

        assert line["channel"] == "reconciliation:result"
        assert line["stream_id"] != "0-1"

    @pytest.mark.parametrize(
        "hostile",
        ["\x1b]0;pwned\x07", "\x1b[2J\x1b[H", "\x9b31m", "\x1b]8;;http://evil\x1b\\link", "a\rb", "\u202eevil"],
    )
    def test_escape_sequences_in_a_payload_never_reach_the_terminal(self, client, hostile):
        append(client, "result", result(status="failed", error=f"gateway {hostile} down", account_id=hostile))

        (message,) = replayed(client)
        text = shown_text(message)

        assert "FAILED: gateway" in text
        assert not set(text) & FORBIDDEN
        assert not set(json_line(message)) & FORBIDDEN


FORBIDDEN = {chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0), 0x202E)} - {"\n"}
"""Characters that may start or be part of a terminal control sequence, or reorder text."""

_HOSTILE = st.sampled_from(
    ["\x1b]0;t\x07", "\x1b[31m", "\x9b2J", "\x00", "\r", "\u202e", "\x1b]8;;x\x1b\\", "\x7f", "\x85"]
)
_TEXT = st.one_of(
    st.text(max_size=8),
    st.builds("".join, st.lists(st.one_of(_HOSTILE, st.text(max_size=3)), max_size=4)),
)
_JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-1000, max_value=1000),
    st.sampled_from([2**53, 2**53 + 1, 2**63, 10**400, -(10**400), 0.1, -0.0, 1e308, 5e-324]),
    _TEXT,
)
_JSON = st.recursive(
    _JSON_LEAF,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_TEXT, children, max_size=3),
    max_leaves=6,
)


@st.composite
def _stream_entry(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(list(_BUILDERS)))
    shape = draw(st.sampled_from(["payload with hostile fields", "any JSON", "bytes", "nesting"]))
    if shape == "bytes":
        return kind, draw(st.binary(max_size=64))
    if shape == "nesting":
        depth = draw(st.sampled_from([MAX_DEPTH, MAX_DEPTH + 1, 999, 1000, 5000]))
        return kind, draw(st.sampled_from([b"[", b'{"a":'])) * depth
    if shape == "any JSON":
        return kind, json.dumps(draw(_JSON)).encode()
    payload = _BUILDERS[kind]()
    for key in draw(st.lists(st.sampled_from(sorted(payload)), max_size=3)):
        payload[key] = draw(st.one_of(_TEXT, _JSON_LEAF, _JSON))
    return kind, json.dumps(payload).encode()


class _Entries:
    """A stand-in for redis-py that holds fixed entries: the fuzz test reads thousands of them quickly."""

    def __init__(self, entries: list[tuple[str, bytes]], stop: threading.Event) -> None:
        self._rows: dict[str, list[tuple[bytes, dict[bytes, bytes]]]] = {stream: [] for stream in STREAM_OF.values()}
        for n, (kind, raw) in enumerate(entries, start=1):
            self._rows[STREAM_OF[kind]].append((f"{n}-0".encode(), {b"payload": raw}))
        self._stop = stop

    def xrevrange(self, stream: str, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        return list(reversed(self._rows[stream]))[:count]

    def xread(self, streams: dict[str, str], count: int, block: int) -> list[Any]:
        self._stop.set()
        return []


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(_stream_entry(), min_size=1, max_size=12), st.booleans())
def test_fuzzed_stream_entries_never_stop_the_watch_nor_reach_the_terminal_raw(entries, as_json):
    stop = threading.Event()
    console = Console(file=io.StringIO(), color_system=None, width=200, soft_wrap=True)
    lines: list[str] = []
    show = (lambda m: lines.append(json_line(m))) if as_json else (lambda m: console.print(human_line(m)))

    watch(_Entries(entries, stop), show, replay_last=len(entries), stop=stop)  # type: ignore[arg-type]

    output = "\n".join(lines) if as_json else console.file.getvalue()  # type: ignore[attr-defined]
    assert not set(output) & FORBIDDEN
    shown = len(lines) if as_json else output.count("\n")
    assert shown == len(entries)
    if as_json:
        assert all(json.loads(line)["stream_id"] for line in lines)


def test_decoding_a_well_formed_payload_keeps_keys_it_does_not_know() -> None:
    payload = {**result(), "added_later": {"x": [1, 2]}}
    entry = StreamEntry(STREAM_OF["result"], "1-0", json.dumps(payload).encode(), replayed=False)

    assert decode(entry).payload == payload


# The command, as an operator runs it, against a private redis-server.


def _url(server: RedisServer) -> str:
    return f"redis://127.0.0.1:{server.port}/0"


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciliation", *args]


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_blocked_in_xread(client: redis.Redis, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 10
    while not any(c.get("cmd") == "xread" for c in client.client_list()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "watch never read the streams"
        time.sleep(0.02)


def _watch(server: RedisServer, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        _command("watch", "--redis-url", _url(server), *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.real_redis
def test_watch_prints_an_entry_appended_while_it_listens(redis_server: RedisServer, real_redis: redis.Redis):
    watcher = _watch(redis_server, "--json", "--count", "1", "--timeout", "20")
    try:
        _wait_until_blocked_in_xread(real_redis, watcher)
        entry_id = append(real_redis, "discrepancy", discrepancy(account_id="LIVE"))
        out, err = watcher.communicate(timeout=10)
    finally:
        watcher.kill()

    assert watcher.returncode == 0, err
    (line,) = [json.loads(text) for text in out.splitlines()]
    assert (line["stream_id"], line["account_id"], line["replayed"]) == (entry_id, "LIVE", False)


@pytest.mark.real_redis
def test_watch_replays_what_the_streams_kept_and_colours_it(redis_server: RedisServer, real_redis: redis.Redis):
    append(real_redis, "result", result(account_id="ACC-9"))
    append(real_redis, "discrepancy", discrepancy(account_id="ACC-9", type="missing_broker", broker_value=None))
    append(real_redis, "halt", halt(account_id="ACC-9", first_seen="2026-11-25T10:00:00.000000+00:00"))

    outcome = CliRunner(env={"FORCE_COLOR": "1", "COLUMNS": "200"}).invoke(
        main, ["watch", "--replay", "5", "--timeout", "0.5", "--redis-url", _url(redis_server)]
    )

    assert outcome.exit_code == 0, outcome.output
    lines = [line for line in outcome.output.splitlines() if "(replay)" in line]
    assert len(lines) == 3
    assert "ACC-9" in lines[0]
    assert "periodic" in lines[0]
    assert "missing_broker" in lines[1]
    assert "\x1b[1;31mCRITICAL" in lines[1]
    assert "HALT" in lines[2]
    assert "kill switch: 3 runs in a row since 10:00:00" in lines[2]


@pytest.mark.real_redis
def test_watch_resumes_after_the_last_entry_shown_when_its_connection_drops(
    redis_server: RedisServer, real_redis: redis.Redis
):
    shown_before = append(real_redis, "result", result(account_id="BEFORE"))
    watcher = _watch(redis_server, "--json", "--replay", "1", "--count", "2", "--timeout", "30")
    try:
        _wait_until_blocked_in_xread(real_redis, watcher)
        real_redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        while_away = [
            append(real_redis, "result", result(account_id="AWAY")),
            append(real_redis, "discrepancy", discrepancy(account_id="AWAY")),
        ]
        out, err = watcher.communicate(timeout=20)
    finally:
        watcher.kill()

    assert watcher.returncode == 0, err
    assert [json.loads(line)["stream_id"] for line in out.splitlines()] == [shown_before, *while_away]
    assert "Lost Redis at redis://127.0.0.1:" in err
    assert f"is back; resuming after entry {shown_before}" in err


@pytest.mark.real_redis
def test_watch_shows_what_comes_after_a_redis_restart(redis_server: RedisServer, real_redis: redis.Redis):
    watcher = _watch(redis_server, "--json", "--count", "1", "--timeout", "30")
    try:
        _wait_until_blocked_in_xread(real_redis, watcher)
        redis_server.restart()
        fresh = redis_server.client()
        try:
            _wait_until_blocked_in_xread(fresh, watcher)
            entry_id = append(fresh, "halt", halt(account_id="AFTER-RESTART"))
        finally:
            fresh.close()
        out, err = watcher.communicate(timeout=20)
    finally:
        watcher.kill()

    assert watcher.returncode == 0, err
    assert [json.loads(line)["stream_id"] for line in out.splitlines()] == [entry_id]
    assert "Traceback" not in err


@pytest.mark.real_redis
def test_watch_gives_up_after_retry_for_and_exits_3_naming_the_cause(
    redis_server: RedisServer, real_redis: redis.Redis
):
    watcher = _watch(redis_server, "--retry-for", "1", "--timeout", "30")
    try:
        _wait_until_blocked_in_xread(real_redis, watcher)
        redis_server.kill()
        _, err = watcher.communicate(timeout=20)
    finally:
        watcher.kill()

    assert watcher.returncode == 3, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("Error: lost Redis at redis://127.0.0.1:"), err
    assert "did not come back within 1 s" in last
    assert "Traceback" not in err


@pytest.mark.real_redis
def test_watch_on_a_stream_key_of_another_type_exits_6_with_one_line(
    redis_server: RedisServer, real_redis: redis.Redis
):
    real_redis.set(STREAM_OF["resolved"], "not a stream")

    outcome = CliRunner().invoke(main, ["watch", "--timeout", "1", "--redis-url", _url(redis_server)])

    assert outcome.exit_code == 6, outcome.output
    assert "refused to read the streams" in outcome.output
    assert "WRONGTYPE" in outcome.output


@pytest.mark.real_redis
def test_watch_whose_reader_goes_away_ends_without_a_traceback(
    redis_server: RedisServer, real_redis: redis.Redis
):
    for _ in range(2000):
        append(real_redis, "result", result())
    watcher = _watch(redis_server, "--json", "--replay", "2000", "--timeout", "30")
    assert watcher.stdout is not None
    watcher.stdout.readline()
    watcher.stdout.close()
    _, err = watcher.communicate(timeout=20)

    assert watcher.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.real_redis
def test_watch_timing_out_before_count_exits_1(redis_server: RedisServer) -> None:
    outcome = CliRunner().invoke(
        main, ["watch", "--count", "1", "--timeout", "0.3", "--redis-url", _url(redis_server)]
    )

    assert outcome.exit_code == 1
    assert "0 of 1 messages" in outcome.output


def test_watch_without_redis_exits_3_with_one_line() -> None:
    outcome = CliRunner().invoke(main, ["watch", "--redis-url", f"redis://127.0.0.1:{_closed_port()}/0"])

    assert outcome.exit_code == 3
    assert outcome.output.strip().count("\n") == 0
    assert outcome.output.startswith("Error: no Redis answered at redis://127.0.0.1:")


@pytest.mark.parametrize("url", ["notaurl", "redis://127.0.0.1:notaport/0", "http://127.0.0.1/"])
def test_watch_with_a_url_that_is_not_a_redis_url_is_a_usage_error(url: str) -> None:
    outcome = CliRunner().invoke(main, ["watch", "--redis-url", url])

    assert outcome.exit_code == 2, outcome.output
    assert outcome.output.startswith("Error: --redis-url: not a Redis URL")
    assert outcome.output.strip().count("\n") == 0


@pytest.mark.parametrize(
    "url",
    ["redis://:s3cr3t@127.0.0.1:{port}/0", "redis://127.0.0.1:{port}/0?password=s3cr3t", "redis://u:s3cr3t@127.0.0.1:{port}"],
)
def test_watch_never_prints_the_password_of_its_url(url: str) -> None:
    outcome = CliRunner().invoke(main, ["watch", "--redis-url", url.format(port=_closed_port())])

    assert outcome.exit_code == 3
    assert "s3cr3t" not in outcome.output
    assert "***" in outcome.output


@pytest.mark.parametrize(
    ("option", "value"),
    [("--replay", "1000000000"), ("--count", str(10**20)), ("--timeout", "1e400"), ("--retry-for", "-1")],
)
def test_watch_values_out_of_range_are_usage_errors(option: str, value: str) -> None:
    outcome = CliRunner().invoke(main, ["watch", option, value])

    assert outcome.exit_code == 2, outcome.output
    assert "Traceback" not in outcome.output
    assert option in outcome.output


def test_an_explained_break_shows_its_fills_under_it() -> None:
    from reconciliation._cli.render import discrepancy_line  # noqa: PLC0415 - the line alone

    payload = {
        "severity": "critical",
        "type": "quantity_mismatch",
        "symbol": "MSFT",
        "local_value": "100",
        "broker_value": "110",
        "explanation": {"summary": "explained: broker fill E-123 BUY 10 @ 412.30 10:31:02 not booked"},
    }

    lines = discrepancy_line(payload).plain.splitlines()

    assert lines[1].strip() == "explained: broker fill E-123 BUY 10 @ 412.30 10:31:02 not booked"


def test_a_line_shows_the_date_and_says_utc() -> None:
    message = decode(
        StreamEntry(STREAM_OF["result"], "1-0", json.dumps(result(timestamp="2026-11-25T10:00:00.500000+00:00")).encode(), replayed=False)
    )

    assert human_line(message).plain.startswith("2026-11-25 10:00:00 UTC  ")


class TestLiveness:
    def test_an_account_whose_next_run_is_overdue_is_said_stale_once(self) -> None:
        liveness = Liveness(dt.timedelta(minutes=2))
        payload = result(timestamp="2026-11-25T10:00:00.000000+00:00", next_run_due="2026-11-25T10:05:00.000000+00:00")
        liveness.saw(decode(StreamEntry(STREAM_OF["result"], "1-0", json.dumps(payload).encode(), replayed=False)))
        at = dt.datetime(2026, 11, 25, 10, 21, tzinfo=dt.UTC)

        assert liveness.stale(at - dt.timedelta(minutes=14)) == []
        (line,) = liveness.stale(at)
        assert line.plain == "2026-11-25 10:21:00 UTC  STALE ACC-1: no run for 21 min (expected every 5 min)"
        assert liveness.stale(at + dt.timedelta(minutes=1)) == []

    def test_a_newer_result_makes_it_live_again(self) -> None:
        liveness = Liveness(dt.timedelta(minutes=2))
        for ran, due in (("10:00", "10:05"), ("10:20", "10:25")):
            payload = result(timestamp=f"2026-11-25T{ran}:00.000000+00:00", next_run_due=f"2026-11-25T{due}:00.000000+00:00")
            liveness.saw(decode(StreamEntry(STREAM_OF["result"], "1-0", json.dumps(payload).encode(), replayed=False)))

        assert liveness.stale(dt.datetime(2026, 11, 25, 10, 21, tzinfo=dt.UTC)) == []


@pytest.mark.real_redis
def test_watch_prints_its_banner_on_stderr_not_among_the_entries(redis_server: RedisServer) -> None:
    outcome = stderr_apart().invoke(main, ["watch", "--timeout", "0.3", "--redis-url", _url(redis_server)])

    assert outcome.exit_code == 0, outcome.output
    assert "Watching" in outcome.stderr
    assert "Watching" not in outcome.stdout


@pytest.mark.real_redis
def test_watch_in_80_columns_never_wraps_inside_a_number(redis_server: RedisServer, real_redis: redis.Redis) -> None:
    append(
        real_redis,
        "discrepancy",
        discrepancy(account_id="ACCOUNT-WITH-A-LONG-NAME", local_value="123456789012.123456", broker_value="987654321098.654321"),
    )

    outcome = CliRunner(env={"COLUMNS": "80"}).invoke(
        main, ["watch", "--replay", "1", "--timeout", "0.3", "--redis-url", _url(redis_server)]
    )

    assert outcome.exit_code == 0, outcome.output
    assert all(len(line) <= 80 for line in outcome.stdout.splitlines())
    assert "123456789012.123456" in outcome.stdout
    assert "987654321098.654321" in outcome.stdout


@pytest.mark.real_redis
def test_watch_since_shows_only_what_was_appended_since(redis_server: RedisServer, real_redis: redis.Redis) -> None:
    real_redis.xadd(STREAM_OF["discrepancy"], {"payload": json.dumps(discrepancy(account_id="OLD"))}, id="1000-0")
    append(real_redis, "discrepancy", discrepancy(account_id="NEW"))

    outcome = CliRunner().invoke(
        main, ["watch", "--since", "15m", "--json", "--timeout", "0.3", "--redis-url", _url(redis_server)]
    )

    assert outcome.exit_code == 0, outcome.output
    assert [json.loads(line)["account_id"] for line in outcome.stdout.splitlines()] == ["NEW"]


def test_watch_since_neither_a_duration_nor_a_time_is_a_usage_error() -> None:
    outcome = CliRunner().invoke(main, ["watch", "--since", "yesterday", "--redis-url", "redis://127.0.0.1:1/0"])

    assert outcome.exit_code == 2
    assert "neither a duration (30s, 15m, 2h, 1d) nor an ISO-8601 time" in outcome.output
