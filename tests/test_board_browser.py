"""The break board in a real browser: headless Chromium driven by selenium against `reconciliation serve`.

Each test starts `serve` on a free port, over a private redis-server and an audit store
seeded by real services (board_seed.py), and opens the page in a fresh headless
Chromium (Debian's `chromium` and `chromium-driver`, which .ci/run installs). Without
them the tests are skipped on a developer's machine but fail in CI (`CI=true`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from board_seed import seed_store
from stream_payloads import append, discrepancy, halt, now_text, resolved, result

if TYPE_CHECKING:
    from collections.abc import Iterator

    import redis
    from redis_server import RedisServer

pytestmark = pytest.mark.real_redis

WAIT_SECONDS = 15.0


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - a loopback http URL we built
        return json.load(answer)


@pytest.fixture
def board_url(redis_server: RedisServer, tmp_path: Path) -> Iterator[str]:
    """`reconciliation serve` over a seeded store and the test's redis-server; stopped by PID after."""
    yield from _serve(redis_server, tmp_path)


@pytest.fixture
def quick_board_url(redis_server: RedisServer, tmp_path: Path) -> Iterator[str]:
    """The same board, where an account is stale 1 s after its next run was due."""
    yield from _serve(redis_server, tmp_path, "--stale-grace", "1")


def _serve(redis_server: RedisServer, tmp_path: Path, *options: str) -> Iterator[str]:
    store = tmp_path / "audit.db"
    seed_store(str(store))
    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [
            sys.executable,
            "-m",
            "reconciliation",
            "serve",
            "--store",
            str(store),
            "--redis-url",
            f"redis://127.0.0.1:{redis_server.port}/0",
            "--port",
            str(port),
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            assert server.poll() is None, server.communicate()
            try:
                if _get_json(f"{url}api/board")["feed"]["live"]:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "serve did not answer"
            time.sleep(0.05)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A fresh headless Chromium, quit after the test."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        _unavailable("Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver  # noqa: PLC0415 - only these tests need it
        from selenium.webdriver.chrome.service import Service  # noqa: PLC0415
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[test]')")
    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1600,760",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def _wait(browser: Any, condition: Any, what: str) -> Any:
    """Until `condition` holds; an element swapped out by the board meanwhile is looked up again."""
    from selenium.common.exceptions import StaleElementReferenceException  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    wait = WebDriverWait(
        browser, WAIT_SECONDS, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
    )
    return wait.until(condition, message=what)


def _rows(browser: Any, account: str) -> list[tuple[str, str, str]]:
    """(type, symbol, severity) of the account's rows, read again if the board was swapped meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException  # noqa: PLC0415
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    def read(driver: Any) -> list[tuple[str, str, str]] | None:
        try:
            return [
                (
                    row.get_attribute("data-type"),
                    row.get_attribute("data-symbol"),
                    row.find_element(By.CSS_SELECTOR, ".severity").text,
                )
                for row in driver.find_elements(By.CSS_SELECTOR, f'section.account[data-account="{account}"] tr.break')
            ]
        except StaleElementReferenceException:
            return None

    rows: list[tuple[str, str, str]] = _wait(browser, lambda driver: (found := read(driver)) is not None and (found,), "a steady board")[0]
    return rows


def _row(browser: Any, account: str, symbol: str) -> list[Any]:
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    return list(browser.find_elements(By.CSS_SELECTOR, f'tr.break[data-account="{account}"][data-symbol="{symbol}"]'))


def _click(browser: Any, account: str, symbol: str) -> bool:
    """Click the break's row; False if the board was swapped in between (then try again)."""
    from selenium.common.exceptions import StaleElementReferenceException  # noqa: PLC0415

    try:
        (row,) = _row(browser, account, symbol)
        row.click()
    except StaleElementReferenceException:
        return False
    return True


def _open(browser: Any, url: str) -> None:
    """Load the page once and mark it: a reload would lose the mark."""
    browser.get(url)
    _wait(browser, lambda b: b.execute_script("return document.readyState") == "complete", "the page to load")
    browser.execute_script("window.loadedOnce = 'still this page';")


def _feed(browser: Any) -> tuple[str, bool]:
    """The feed's state and whether it names WRONGTYPE, read from one lookup of the element
    (inside `_wait`, a feed swapped out meanwhile is looked up again)."""
    feed = browser.find_element("id", "feed")
    return feed.get_attribute("class"), "WRONGTYPE" in feed.text


def _not_reloaded(browser: Any) -> bool:
    return bool(browser.execute_script("return window.loadedOnce") == "still this page")


def test_the_page_shows_the_seeded_breaks_most_severe_first(browser: Any, board_url: str) -> None:
    _open(browser, board_url)

    assert _rows(browser, "ACC-1") == [("missing_local", "AAPL", "CRITICAL"), ("cash_mismatch", "", "WARNING")]
    assert _rows(browser, "ACC-2") == [("missing_local", "MSFT", "CRITICAL")]
    assert "last run: ok" in browser.find_element("css selector", 'section[data-account="ACC-1"] .run').text


def test_a_break_published_while_the_page_is_open_appears_without_a_reload(
    browser: Any, board_url: str, real_redis: redis.Redis
) -> None:
    _open(browser, board_url)

    now = now_text()
    append(real_redis, "result", result(account_id="ACC-3", timestamp=now), lease=("eu-1", 2))
    append(real_redis, "discrepancy", discrepancy(account_id="ACC-3", symbol="NVDA", timestamp=now, first_seen=now))

    (row,) = _wait(browser, lambda b: _row(b, "ACC-3", "NVDA"), "the new break to appear")
    assert "quantity_mismatch" in row.text
    owner = 'section[data-account="ACC-3"] .owner'
    _wait(browser, lambda b: b.find_element("css selector", owner).text == "owner: eu-1 (token 2)", "its owner to show")
    assert _not_reloaded(browser)


def test_a_resolved_break_disappears_without_a_reload(browser: Any, board_url: str, real_redis: redis.Redis) -> None:
    _open(browser, board_url)
    (row,) = _row(browser, "ACC-2", "MSFT")

    append(
        real_redis,
        "resolved",
        resolved(
            account_id="ACC-2",
            symbol="MSFT",
            type="missing_local",
            break_id=row.get_attribute("data-break-id"),
            last_seen=now_text(),
            resolved_at=now_text(),
        ),
    )

    _wait(browser, lambda b: not _row(b, "ACC-2", "MSFT"), "the resolved break to disappear")
    assert _rows(browser, "ACC-1") == [("missing_local", "AAPL", "CRITICAL"), ("cash_mismatch", "", "WARNING")]
    assert _not_reloaded(browser)


def test_clicking_a_break_shows_its_history(
    browser: Any, board_url: str, real_redis: redis.Redis, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    _open(browser, board_url)
    now = now_text()
    append(
        real_redis,
        "result",
        result(
            account_id="ACC-3",
            timestamp=now,
            status="failed",
            discrepancy_count=0,
            error="broker.get_positions failed: TimeoutError: no answer within 30 s",
        ),
    )
    append(
        real_redis,
        "halt",
        halt(account_id="ACC-4", symbol="TSLA", local_value="-20", broker_value="0", timestamp=now, first_seen=now),
    )
    _wait(browser, lambda b: _row(b, "ACC-4", "TSLA"), "the halted break to appear")

    _wait(browser, lambda b: _click(b, "ACC-1", "AAPL"), "a click on the AAPL break")

    panel = _wait(
        browser,
        lambda b: b.find_element(By.ID, "history").is_displayed() and b.find_element(By.ID, "history"),
        "the history panel",
    )
    assert "ACC-1 · missing_local · AAPL" in panel.text
    assert len(panel.find_elements(By.CSS_SELECTOR, "tbody tr")) == 2
    assert _wait(browser, lambda b: "HALT" in b.find_element(By.CSS_SELECTOR, '[data-account="ACC-4"]').text, "HALT")
    screenshot = tmp_path / "board.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 0


def _status(browser: Any, account: str) -> str | None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: PLC0415

    try:
        status: str | None = browser.find_element("css selector", f'section.account[data-account="{account}"]').get_attribute(
            "data-status"
        )
    except (NoSuchElementException, StaleElementReferenceException):
        return None
    return status


def test_an_account_turns_red_once_its_service_is_killed(
    browser: Any, quick_board_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    config = tmp_path / "reconciliation.toml"
    config.write_text(
        f'redis_url = "redis://127.0.0.1:{redis_server.port}/0"\n'
        '[defaults]\nbroker = "reconciliation.paper:paper_broker"\n'
        'portfolio = "reconciliation.paper:paper_portfolio"\ninterval_seconds = 1\n\n'
        '[[accounts]]\naccount_id = "LIVE-1"\n'
    )
    service = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "reconciliation", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={key: value for key, value in os.environ.items() if key != "REDIS_URL"},
    )
    try:
        _open(browser, quick_board_url)
        _wait(browser, lambda b: _status(b, "LIVE-1") == "clean", "the service's account, clean")
        time.sleep(2.5)
        assert _status(browser, "LIVE-1") == "clean", "an account whose runs come is not stale"
    finally:
        service.kill()
        service.wait(timeout=10)

    _wait(browser, lambda b: _status(b, "LIVE-1") == "stale", "the killed service's account to go stale")
    section = browser.find_element("css selector", 'section.account[data-account="LIVE-1"]')
    assert "STALE: no run for" in section.text
    assert "(expected every 1 s)" in section.text
    assert section.find_element("css selector", "h2").value_of_css_property("color") == "rgba(198, 40, 40, 1)"
    assert "1 stale" in browser.find_element("id", "stale-count").text
    assert _not_reloaded(browser)


def test_the_board_follows_redis_again_once_a_wrong_type_key_is_fixed(
    browser: Any, board_url: str, real_redis: redis.Redis
) -> None:
    _open(browser, board_url)
    real_redis.delete("reconciliation:stream:discrepancy")
    real_redis.set("reconciliation:stream:discrepancy", "not a stream")

    _wait(browser, lambda b: _feed(b) == ("down", True), "the board to say it is down, and why it cannot read")
    real_redis.delete("reconciliation:stream:discrepancy")
    _wait(browser, lambda b: b.find_element("id", "feed").get_attribute("class") == "live", "the feed live again")
    now = now_text()
    append(real_redis, "discrepancy", discrepancy(account_id="ACC-5", symbol="AMD", timestamp=now, first_seen=now))

    _wait(browser, lambda b: _row(b, "ACC-5", "AMD"), "a break published after the fix")
    assert _not_reloaded(browser)
