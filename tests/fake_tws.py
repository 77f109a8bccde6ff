"""A TWS that speaks the API wire protocol on localhost, answering from recorded messages.

ib_async connects to it as to a real TWS or IB Gateway: the handshake, `startApi`, then
each request it sends is answered with the recorded wire messages (tests/fixtures/
brokers/ib_wire.json), which ib_async's own decoder (`decoder.interpret(fields)`) parses.
The server runs on an event loop in a thread of its own, so it serves whichever loop
the client runs on. A test changes the book by replacing the message lists.
"""

from __future__ import annotations

import asyncio
import copy
import struct
import threading
from typing import Any

__all__ = ["FakeTws"]

SERVER_VERSION = 176
"""The version the recorded messages were written for."""


def _frame(fields: list[str]) -> bytes:
    payload = ("\0".join(fields) + "\0").encode()
    return struct.pack(">I", len(payload)) + payload


class FakeTws:
    """Serves one recorded account; `requests` lists every message a client sent, as fields."""

    def __init__(self, recording: dict[str, Any]) -> None:
        self.account: str = recording["account"]
        self.positions: list[list[str]] = copy.deepcopy(recording["position_msgs"])
        self.portfolio: list[list[str]] = copy.deepcopy(recording["portfolio_msgs"])
        self.summary: list[list[str]] = copy.deepcopy(recording["account_summary_msgs"])
        self.executions: list[list[str]] = copy.deepcopy(recording.get("execution_msgs", []))
        """Execution details (11) and commission reports (59), answered to reqExecutions in this order."""
        self.requests: list[list[str]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-tws", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    def start(self) -> int:
        """Listen on a free port of 127.0.0.1; the port."""
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result(5)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def stop(self) -> None:
        async def close() -> None:
            for writer in self._writers:
                writer.close()
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def requested(self, message_id: str) -> list[list[str]]:
        return [fields for fields in self.requests if fields[0] == message_id]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            assert await reader.readexactly(4) == b"API\0"
            await self._message(reader)
            writer.write(_frame([str(SERVER_VERSION), "20260105 14:59:50 UTC"]))
            while True:
                fields = await self._message(reader)
                self.requests.append(fields)
                for answer in self._answers(fields):
                    writer.write(_frame(answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    @staticmethod
    async def _message(reader: asyncio.StreamReader) -> list[str]:
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        return (await reader.readexactly(size)).decode().split("\0")[:-1]

    @staticmethod
    def _of_request(messages: list[list[str]], request_id: str) -> list[list[str]]:
        """`messages` as the answer to one request: an execution's request id is the second field."""
        return [[message[0], request_id, *message[2:]] if message[0] == "11" else message for message in messages]

    def _answers(self, fields: list[str]) -> list[list[str]]:
        answers = {
            "71": lambda: [["15", "1", self.account], ["9", "1", "1"]],
            "61": lambda: self.positions,
            "5": lambda: [["53", "1"]],
            "99": lambda: [["102"]],
            "6": lambda: [*self.portfolio, ["54", "1", self.account]] if fields[2] == "1" else [],
            "76": lambda: [["74", "1", fields[2]]],
            "7": lambda: [*self._of_request(self.executions, fields[2]), ["55", "1", fields[2]]],
            "62": lambda: [[*message[:2], fields[2], *message[3:]] for message in self.summary],
        }
        answer = answers.get(fields[0])
        return copy.deepcopy(answer()) if answer is not None else []
