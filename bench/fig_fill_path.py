"""A fill's way to Redis: told to the service, it starts a post-fill run (no debounce delay),
whose last payload lands in Redis; against a bare actor hop + XADD.

The baseline is the least any actor-based publisher does for one event: a `tell` to a
pykka actor that writes one stream entry and the published marker in one pipelined round
trip. Both are timed from the `tell` to the marker's keyspace notification, one at a time,
interleaved. Only on a private server (keyspace notifications).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pykka
from _harness import Row, Sample
from _landed import Landings
from _service import start_service, stop_service
from books import ACCOUNT, make_books

from reconciliation._domain.models import OrderFill
from reconciliation._publishing.redis_sink import PUBLISHED_TTL_SECONDS, STANDALONE_KEYS, STREAM_FIELD

if TYPE_CHECKING:
    import redis

__all__ = ["fill_path_row"]

_BARE_STREAM = "bench:fill-path:stream"


class BareActor(pykka.ThreadingActor):
    """One hop and one round trip: XADD the event and set its marker."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__()
        self._client = client

    def on_receive(self, message: Any) -> None:
        pipeline = self._client.pipeline(transaction=False)
        pipeline.xadd(_BARE_STREAM, {STREAM_FIELD: message}, maxlen=10_000, approximate=True)
        pipeline.set(STANDALONE_KEYS.marker(message), "1", ex=PUBLISHED_TTL_SECONDS)
        pipeline.execute()


def fill_path_row(positions: int, fills: int, client: redis.Redis, *, private: bool) -> Row:
    figure = f"fill → post-fill run's last payload in Redis, {positions:,}-position book, no debounce delay, p50"
    target = "p50 ≤ 3x"
    if not private:
        return Row(figure, "not measured", "needs a private redis-server (keyspace notifications)", "—", target, None)
    local, broker = make_books(positions)
    service = start_service(
        local, broker, client, enabled=True, post_fill_delay_seconds=0.0, post_fill_max_wait_seconds=60.0
    )
    bare = BareActor.start(client)
    landings = Landings(client, notify=True)
    ours: list[float] = []
    theirs: list[float] = []
    try:
        for i in range(fills + 3):
            fill = OrderFill(
                f"O{i}", f"F{i}", ACCOUNT, local[0].symbol, Decimal(1), Decimal(100), dt.datetime.now(dt.UTC)
            )
            start = time.perf_counter()
            service.ref.tell(fill)
            _, landed = landings.next_after(start)
            if i >= 3:
                ours.append((landed - start) * 1000)
            time.sleep(0.01)
            event = str(uuid.uuid4())
            start = time.perf_counter()
            bare.tell(event)
            landed = landings.wait(event)
            if i >= 3:
                theirs.append((landed - start) * 1000)
            time.sleep(0.01)
    finally:
        landings.close()
        bare.stop()
        stop_service(service)
        client.delete(_BARE_STREAM)
    path, hop = Sample(ours, "ms"), Sample(theirs, "ms")
    ratio = path.median / hop.median
    return Row(
        figure=figure,
        measured=f"{path.text()}",
        baseline=f"a bare actor hop + XADD (and the marker, one round trip) {hop.text()}",
        ratio=f"{ratio:.2f}x p50",
        target=target,
        met=ratio <= 3.0,
    )


if __name__ == "__main__":
    import sys

    from _harness import render_table
    from _redis import PRIVATE, bench_redis
    from _service import quiet_logging

    quiet_logging()
    with bench_redis(None) as (bench_client, server):
        print(render_table([fill_path_row(int(sys.argv[1]), int(sys.argv[2]), bench_client, private=server.startswith(PRIVATE))]))
