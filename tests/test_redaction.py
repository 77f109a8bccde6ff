"""Secrets never printed: one redaction for every URL and message, masking only what was given."""

from __future__ import annotations

import logging

import click
import pytest
from click.testing import CliRunner

from reconciliation._cli.main import ExitCode, main
from reconciliation._cli.shared import ERROR_LIMIT, CommandError, _RedactingFormatter
from reconciliation._domain.redaction import redact_text, redact_url
from reconciliation._publishing import redis_clients


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:pw@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://:pw@host/0", "redis://:***@host/0"),
        ("rediss://default:p%40ss@host", "rediss://default:***@host"),
        ("postgresql://u:p@h/db", "postgresql://u:***@h/db"),
        ("mysql://u:secret@h/db", "mysql://u:***@h/db"),
        ("redis://host/0?password=pw&db=1", "redis://host/0?password=***&db=1"),
        ("postgresql://h/db?sslpassword=pw", "postgresql://h/db?sslpassword=***"),
        ("unix:///run/redis.sock?db=0&password=pw", "unix:///run/redis.sock?db=0&password=***"),
        ("redis://u:p@ss@host", "redis://u:***@host"),
        ("redis://u:pa/ss@host/0", "redis://u:***@host/0"),
        ("amqp://u:pw@h/?token=abc", "amqp://u:***@h/?token=***"),
    ],
)
def test_a_given_password_is_masked_in_any_scheme(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "redis://user@host/0",
        "redis://host:6379/0",
        "redis://:@host/0",
        "redis://host/0?password=",
        "redis://[::1]:6379/0",
        "redis://host:6379/0?client_name=a@b",
        "/var/lib/audit.db",
        "sqlite:///audit.db",
        "notaurl",
    ],
)
def test_a_url_without_a_password_is_shown_as_it_is(url: str) -> None:
    assert redact_url(url) == url


def test_a_message_quoting_urls_and_settings_has_every_password_masked() -> None:
    text = "cannot use 'mysql://u:secret@h/db' nor redis://:hunter2@r/0; dsn: host=h password='a b' sslpassword=x"

    masked = redact_text(text)

    assert masked == (
        "cannot use 'mysql://u:***@h/db' nor redis://:***@r/0; dsn: host=h password=*** sslpassword=***"
    )


def test_the_redis_clients_redacted_is_the_one_redaction() -> None:
    assert redis_clients.redacted is redact_url


def test_the_commands_log_lines_are_redacted_and_escaped() -> None:
    record = logging.LogRecord(
        "reconciliation.x", logging.ERROR, __file__, 1, "store %s failed: %s", ("postgresql://u:pw@h/db", "\x1b]0;t\x07"), None
    )

    line = _RedactingFormatter("%(message)s").format(record)

    assert line == "store postgresql://u:***@h/db failed: \\x1b]0;t\\x07"


def test_a_commands_error_lines_are_redacted_escaped_bounded_and_end_it_with_their_code() -> None:
    @click.command()
    def failing() -> None:
        raise CommandError(
            "store postgresql://u:pw@h/db failed: \x1b]0;t\x07 [bold]not markup[/bold]",
            "x" * (ERROR_LIMIT + 10),
            exit_code=ExitCode.STORE_UNAVAILABLE,
        )

    outcome = CliRunner().invoke(failing)

    assert outcome.exit_code == ExitCode.STORE_UNAVAILABLE
    assert outcome.output.splitlines() == [
        "Error: store postgresql://u:***@h/db failed: \\x1b]0;t\\x07 [bold]not markup[/bold]",
        f"Error: {'x' * ERROR_LIMIT}… (10 more characters)",
    ]


def test_an_audit_url_of_an_unknown_scheme_is_not_echoed_by_history() -> None:
    outcome = CliRunner().invoke(main, ["history", "--store", "mysql://u:s3cr3t@h/db", "--account", "A"])

    assert outcome.exit_code == 2, outcome.output
    assert "s3cr3t" not in outcome.output
    assert "mysql://u:***@h/db" in outcome.output


def test_an_audit_url_of_an_unknown_scheme_is_not_echoed_by_the_config_error(tmp_path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[defaults]\nbroker = "reconciliation.paper:paper_broker"\nportfolio = "reconciliation.paper:paper_portfolio"\n'
        '[[accounts]]\naccount_id = "A"\naudit_store = "mysql://u:s3cr3t@h/db"\n'
    )

    outcome = CliRunner().invoke(main, ["run", "--check", "--config", str(config)])

    assert outcome.exit_code == 2, outcome.output
    assert "s3cr3t" not in outcome.output
    assert "accounts[0].audit_store" in outcome.output


def test_run_check_shows_the_redis_and_audit_urls_without_passwords(tmp_path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        'redis_url = "redis://:s3cr3t@127.0.0.1:6379/0?password=s3cr3t"\n'
        '[defaults]\nbroker = "reconciliation.paper:paper_broker"\nportfolio = "reconciliation.paper:paper_portfolio"\n'
        '[[accounts]]\naccount_id = "A"\naudit_store = "postgresql://u:s3cr3t@h/db?sslpassword=s3cr3t"\n'
    )

    outcome = CliRunner(env={"REDIS_URL": None}).invoke(main, ["run", "--check", "--config", str(config)])

    assert outcome.exit_code == 0, outcome.output
    assert "s3cr3t" not in outcome.output
    assert "redis://:***@127.0.0.1:6379/0?password=***" in outcome.output
    assert "postgresql://u:***@h/db?sslpassword=***" in outcome.output


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "binanceusdm GET https://fapi.binance.com/fapi/v3/account?timestamp=1&signature=9f8e 503 down",
            "binanceusdm GET https://fapi.binance.com/fapi/v3/account?*** 503 down",
        ),
        ("wss://stream.example/ws?listenKey=abc#top", "wss://stream.example/ws?***#top"),
        ("http://u:pw@h/p?a=1", "http://u:***@h/p?***"),
        ("https://h/p", "https://h/p"),
    ],
)
def test_a_web_url_in_a_message_loses_its_query_string(text: str, shown: str) -> None:
    assert redact_text(text) == shown


def test_a_signature_setting_in_a_message_is_masked() -> None:
    assert redact_text("body: symbol=BTC&signature=9f8e7d") == "body: symbol=BTC&signature=***"


def test_a_redis_url_keeps_its_settings_but_not_its_password() -> None:
    assert redact_text("redis://h/0?db=1&password=pw") == "redis://h/0?db=1&password=***"
