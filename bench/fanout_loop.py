"""How much of a delivery is the hub's Python per-member checks (no writes).

    python bench/fanout_loop.py

500 real WebSocket connections on loopback in one process; times the checks
`Hub.deliver_many` makes for each member (state, fragmented send, buffer
size) without the write, over 400 rounds. Prints nanoseconds per member.
"""

from __future__ import annotations

import asyncio
import resource

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.protocol import State

MEMBERS, ROUNDS, LIMIT = 500, 400, 256 * 1024


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main() -> None:
    connections = []

    async def handler(ws) -> None:
        connections.append(ws)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        clients = [
            await connect(f"ws://127.0.0.1:{port}", compression=None, ping_interval=None)
            for _ in range(MEMBERS)
        ]
        await asyncio.sleep(0.5)
        started, checked = cpu(), 0
        for _ in range(ROUNDS):
            for c in connections:
                if c.protocol.state is not State.OPEN or c.send_in_progress is not None:
                    continue
                if c.transport.get_write_buffer_size() > LIMIT:
                    continue
                checked += 1
        print(f"per-member checks: {(cpu() - started) / checked * 1e9:.0f} ns ({checked} checks)")
        for client in clients:
            await client.close()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
