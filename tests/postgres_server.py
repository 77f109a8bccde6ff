"""A PostgreSQL database of its own for each test: a fresh schema on the machine's server."""

from __future__ import annotations

import os
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["POSTGRES_URL", "audit_target", "postgres_url", "with_search_path"]

POSTGRES_URL = os.environ.get("RECONCILIATION_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={urllib.parse.quote(f'-csearch_path={schema}')}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose tables land in a schema of their own, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed")
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL answers at {POSTGRES_URL}: {exc}")
    schema = f"audit_test_{uuid.uuid4().hex}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_search_path(POSTGRES_URL, schema)
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def audit_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty audit store's location: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "audit.db")
    url: str = request.getfixturevalue("postgres_url")
    return url
