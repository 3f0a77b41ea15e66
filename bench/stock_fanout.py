"""The fan-out replica with the library's stock path in its hot loop: each
broadcast goes out through `websockets.broadcast()` to the room's members
instead of the hub's pre-framed write per transport. Everything else (auth,
Redis, resume, metrics) is the real replica's, so `bench/fanout_load.py
throughput --against-stock` measures only what the member loop costs.

    python bench/stock_fanout.py   (same environment as `python -m fanout`)
"""

from __future__ import annotations

import argparse

import websockets

from fanout.hub import Hub
from fanout.server import main


def stock_write_to_members(self: Hub, room: str, fresh: list[tuple[str, str]]) -> int:
    members = self._rooms.get(room, set())
    for _, frame in fresh:
        websockets.broadcast(members, frame)
    return len(members) * len(fresh)


if __name__ == "__main__":
    # No options of its own (the environment configures it, as it does the
    # replica), but --help says what it is instead of starting a server.
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    Hub._write_to_members = stock_write_to_members
    main()
