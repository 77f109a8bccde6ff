from __future__ import annotations

from collections.abc import Iterator

import pykka
import pytest


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    """No test leaks an actor (or its thread) into the next."""
    yield
    pykka.ActorRegistry.stop_all()
