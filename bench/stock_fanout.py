"""The fan-out replica with the library's stock path in its hot loop: each
broadcast goes out through `websockets.broadcast()` to the room's members
instead of the hub's pre-framed write per transport. Everything else (auth,
Redis, resume, metrics) is the real replica's, so `bench/fanout.py
throughput --against-stock` measures only what the member loop costs.

    python -P bench/stock_fanout.py   (same environment as `python -m fanout`;
                                       -P, or bench/fanout.py shadows the package)
"""

from __future__ import annotations

import websockets

from fanout.hub import Hub
from fanout.server import main


def stock_write_to_members(self: Hub, room: str, fresh: list[tuple[str, str]]) -> int:
    members = self._rooms.get(room, set())
    for _, frame in fresh:
        websockets.broadcast(members, frame)
    return len(members) * len(fresh)


if __name__ == "__main__":
    Hub._write_to_members = stock_write_to_members
    main()
