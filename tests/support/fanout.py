"""Helpers for fan-out tests: an in-process replica on an ephemeral port,
tokens, and reading frames with a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json

from aurora.settings import Settings
from aurora.tokens import issue_token
from fanout.server import FanoutServer


@contextlib.asynccontextmanager
async def replica(settings: Settings):
    """One fan-out replica on an ephemeral port; yields its ws:// URL and server."""
    server = FanoutServer(dataclasses.replace(settings, fanout_host="127.0.0.1", fanout_port=0))
    loop = asyncio.get_running_loop()
    stop, ready = loop.create_future(), loop.create_future()
    task = asyncio.create_task(server.run(stop, ready))
    port = await asyncio.wait_for(ready, 10)
    try:
        await asyncio.wait_for(server.subscriber._connected.wait(), 5)
        yield f"ws://127.0.0.1:{port}", server
    finally:
        stop.set_result(None)
        try:
            await asyncio.wait_for(task, 10)
        finally:
            # A replica that did not finish stopping in time (a loaded machine)
            # has not closed its Redis client: closed here, not by the garbage
            # collector during some later test.
            await server.redis.aclose()


def token_for(settings: Settings, name: str) -> str:
    return issue_token(f"id-{name}", name, settings)


async def receive_json(ws, timeout: float = 5.0, *, presence: bool = False) -> dict:
    """The next frame within `timeout`. Presence frames (written after every
    `joined`, then as people come and go) are skipped unless asked for: most
    tests are about something else."""
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if presence or frame.get("type") != "presence":
                return frame


async def send_json(ws, frame: dict) -> None:
    await ws.send(json.dumps(frame))


async def eventually(condition, what: str, timeout: float = 5.0) -> None:
    """Wait until `condition()` holds; fail with `what` if it does not in time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.02)


async def settle() -> None:
    # Let the replica's subscription reach Redis before anyone publishes.
    await asyncio.sleep(0.1)
