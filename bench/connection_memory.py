"""What an idle connection costs the replica in Python allocations, exactly:
a replica in this process under tracemalloc, N idle connections from a
load-generator process (bench/fanout_load.py's holders), and the allocations
they added, per connection, with the sites that allocate most. Unlike RSS,
the figure does not move with allocator fragmentation or with how fast the
connections were opened, so it compares changes on a busy machine.

    python bench/connection_memory.py --connections 2000 [--top 10] [--by line]

The replica runs on uvloop when it is installed, as `python -m fanout` does.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import multiprocessing as mp
import sys
import tempfile
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "aurora"), str(ROOT / "bench")]

import fanout_load  # noqa: E402

from local.servers import start_redis  # noqa: E402
from tests.support.fanout import replica  # noqa: E402


async def measure(connections: int, top: int, by: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        redis = start_redis(Path(tmp))
        settings = dataclasses.replace(
            fanout_load.SETTINGS, redis_url=redis.url, admissions_per_second=10**6
        )
        try:
            async with replica(settings) as (url, _server):
                gc.collect()
                tracemalloc.start(1 if by == "line" else 4)
                before = tracemalloc.take_snapshot()
                ctx = mp.get_context("spawn")
                stop, ready = ctx.Event(), ctx.Event()
                holders = ctx.Process(target=fanout_load.holders,
                                      args=(url, 0, connections, ready, stop))  # fmt: skip
                holders.start()
                while not ready.is_set():
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1)  # the last handshakes' garbage goes
                gc.collect()
                after = tracemalloc.take_snapshot()
                tracemalloc.stop()
                stop.set()
                holders.join(60)
        finally:
            redis.stop()
    stats = after.compare_to(before, "lineno" if by == "line" else "traceback")
    total = sum(s.size_diff for s in stats)
    print(f"connections={connections} Python allocations per idle connection="
          f"{total / connections:,.0f} bytes")  # fmt: skip
    for stat in stats[:top]:
        frame = stat.traceback[-1]
        print(f"{stat.size_diff / connections:8.0f} B  {frame.filename}:{frame.lineno}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--top", type=int, default=10, help="allocation sites to list")
    parser.add_argument("--by", choices=("traceback", "line"), default="traceback",
                        help="group by the allocating line alone, or by its 4 callers")  # fmt: skip
    args = parser.parse_args()
    coroutine = measure(args.connections, args.top, args.by)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


if __name__ == "__main__":
    main()
