from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pykka
import pytest
from postgres_server import audit_target, postgres_url
from redis_server import real_redis, redis_server
from service_fixtures import harness_factory

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["audit_target", "harness_factory", "postgres_url", "real_redis", "redis_server"]


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    """No test leaks an actor (or its thread) into the next."""
    yield
    pykka.ActorRegistry.stop_all()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The command line configures the root logger; put it back for the next test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
