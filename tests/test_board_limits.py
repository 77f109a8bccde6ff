"""`reconciliation serve` under hostile clients: a request timeout, a connection cap, and a
SQLite store left exactly as it was.

The board runs as its own process with at most 1,024 open files (`ulimit -n 1024`), as
on many hosts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from board_seed import seed_store
from click.testing import CliRunner
from helpers import eventually
from redis_server import free_port

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from reconciliation._cli.main import main

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

DESCRIPTOR_LIMIT = 1024
HALF_A_REQUEST = b"GET /api/board HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def limited_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTOR_LIMIT, DESCRIPTOR_LIMIT))


class Board:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=timeout) as answer:  # noqa: S310 - loopback
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)


@pytest.fixture
def store_path(tmp_path: Path) -> str:
    path = str(tmp_path / "audit.db")
    seed_store(path)
    return path


@pytest.fixture
def serve(store_path: str) -> Iterator[Callable[..., Board]]:
    """Start `reconciliation serve` with the given options, limited to 1,024 open files."""
    started: list[subprocess.Popen[str]] = []

    def start(*options: str) -> Board:
        port = free_port()
        process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "reconciliation", "serve", "--store", store_path,
             "--redis-url", "redis://127.0.0.1:1/0", "--port", str(port), *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=limited_descriptors,  # noqa: PLW1509 - only setrlimit, before exec
        )  # fmt: skip
        started.append(process)
        board = Board(process, port)
        eventually(lambda: _answers(board), 15, "serve to answer")
        return board

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _answers(board: Board) -> bool:
    assert board.process.poll() is None, board.process.communicate()
    try:
        return board.get("/api/board", timeout=1)[0] == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def closed_by_the_server(connection: socket.socket, within: float) -> bool:
    connection.settimeout(within)
    try:
        return connection.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_1100_idle_half_sent_requests_under_a_1024_file_limit_do_not_take_it_down(
    serve: Callable[..., Board],
) -> None:
    board = serve()
    idle = []
    try:
        for _ in range(1_100):
            connection = board.connect()
            with contextlib.suppress(OSError):
                connection.sendall(HALF_A_REQUEST)
            idle.append(connection)

        status, body = board.get("/api/board")

        assert status == 200
        assert [account["account_id"] for account in json.loads(body)["accounts"]] == ["ACC-1", "ACC-2"]
        still_open = sum(not closed_by_the_server(connection, 0.01) for connection in idle)
        assert still_open <= 100
    finally:
        for connection in idle:
            connection.close()
    assert board.process.poll() is None
    board.process.send_signal(signal.SIGTERM)
    _, stderr = board.process.communicate(timeout=10)
    assert "Too many open files" not in stderr
    assert "closing those that have waited longest without sending a request" in stderr


def test_a_connection_that_sends_half_a_request_is_closed_after_the_request_timeout(
    serve: Callable[..., Board],
) -> None:
    board = serve("--request-timeout", "0.5")
    with board.connect() as slow:
        slow.sendall(HALF_A_REQUEST)
        started = time.monotonic()

        assert closed_by_the_server(slow, within=5)
        assert 0.4 < time.monotonic() - started < 3


def test_a_connection_that_sends_nothing_is_closed_after_the_request_timeout(serve: Callable[..., Board]) -> None:
    board = serve("--request-timeout", "0.5")
    with board.connect() as silent:
        assert closed_by_the_server(silent, within=5)


def test_an_event_stream_outlives_the_request_timeout(serve: Callable[..., Board]) -> None:
    board = serve("--request-timeout", "0.5")
    with board.connect() as events:
        events.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert b"retry: 2000" in events.recv(4096)

        assert not closed_by_the_server(events, within=1.5)


def test_when_every_connection_is_serving_a_request_a_new_one_is_answered_503(serve: Callable[..., Board]) -> None:
    board = serve("--max-connections", "2")
    streams = [board.connect() for _ in range(2)]
    try:
        for stream in streams:
            stream.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert b"200 OK" in stream.recv(4096)

        status, body = board.get("/api/board")

        assert status == 503
        assert b"as many connections as it may" in body
    finally:
        for stream in streams:
            stream.close()
    eventually(lambda: board.get("/api/board")[0] == 200, 5, "the board to answer again")


def test_a_connection_cap_beyond_the_file_limit_is_a_usage_error(store_path: str) -> None:
    ran = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "reconciliation", "serve", "--store", store_path, "--max-connections", "2000"],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=limited_descriptors,
        check=False,
    )

    assert ran.returncode == 2, ran.stderr
    assert "--max-connections: this process may open 1024 files" in ran.stderr
    assert "would need 2128 (2000 connections, 64 queued ones and 64 of its own)" in ran.stderr


def files_of(store_path: str) -> dict[str, str]:
    directory = Path(store_path).parent
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(directory.iterdir())}


def journal_mode(store_path: str) -> tuple[int, int]:
    header = Path(store_path).read_bytes()[:20]
    return header[18], header[19]


def break_id_of(board: Board) -> str:
    accounts: list[dict[str, Any]] = json.loads(board.get("/api/board")[1])["accounts"]
    return str(accounts[0]["breaks"][0]["break_id"])


def test_serve_leaves_a_store_in_wal_mode_as_it_is(serve: Callable[..., Board], store_path: str) -> None:
    before = files_of(store_path)
    assert journal_mode(store_path) == (2, 2)

    board = serve()
    assert board.get(f"/api/breaks/{break_id_of(board)}")[0] == 200

    assert files_of(store_path) == before


def test_serve_leaves_a_rollback_journal_store_as_it_is(serve: Callable[..., Board], store_path: str) -> None:
    with contextlib.closing(sqlite3.connect(store_path)) as connection:
        connection.execute("PRAGMA journal_mode = DELETE")
    before = files_of(store_path)
    assert journal_mode(store_path) == (1, 1)

    board = serve()
    assert board.get(f"/api/breaks/{break_id_of(board)}")[0] == 200

    assert files_of(store_path) == before


def test_history_leaves_the_store_as_it_is(store_path: str) -> None:
    before = files_of(store_path)

    ran = CliRunner().invoke(main, ["history", "--store", store_path, "--account", "ACC-1"])

    assert ran.exit_code == 0, ran.output
    assert files_of(store_path) == before


def test_serve_reads_a_store_while_a_service_writes_it(serve: Callable[..., Board], store_path: str) -> None:
    writer = sqlite3.connect(store_path)
    try:
        writer.execute("PRAGMA journal_mode = WAL")
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE runs SET duration_ms = duration_ms")
        writer.execute("COMMIT")
        board = serve()

        assert board.get(f"/api/breaks/{break_id_of(board)}")[0] == 200
    finally:
        writer.close()
