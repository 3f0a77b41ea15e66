"""What each lever returns after a wave of connections closes: a replica in
this process (on uvloop, as `python -m fanout` runs), waves of N idle
connections from load-generator processes (bench/fanout_load.py's holders),
and the process's RSS after each wave, then after each lever applied by hand:
a full garbage collection, then glibc's `malloc_trim(0)`. Run it again with
`--allocator malloc` (PYTHONMALLOC=malloc: every Python object from glibc,
whose free pages malloc_trim can return) or with MALLOC_ARENA_MAX set, to
compare. The replica's own release (fanout/memory.py) is switched off here so
that each lever shows alone.

    python bench/memory_wave.py --connections 5000 [--waves 2] [--allocator malloc]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import multiprocessing as mp
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "aurora"), str(ROOT / "bench")]

import fanout_load  # noqa: E402

from fanout import memory  # noqa: E402
from local.servers import start_redis  # noqa: E402
from tests.support.fanout import replica  # noqa: E402


def rss_mib() -> float:
    return fanout_load.rss_bytes(os.getpid()) / 2**20


async def wave(url: str, connections: int, processes: int) -> float:
    """Open `connections`, hold them, close them all; the RSS while held."""
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    tasks_before = len(asyncio.all_tasks())
    started = time.monotonic()
    procs = await asyncio.to_thread(
        fanout_load.start_load, ctx, fanout_load.holders, connections, processes,
        (url, stop), 600,
    )  # fmt: skip
    opened = time.monotonic() - started
    full = rss_mib()
    stop.set()
    for proc in procs:
        await asyncio.to_thread(proc.join, 60)
    # Until every session has ended (its lease released, its task done).
    while len(asyncio.all_tasks()) > tasks_before:
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)  # the last closes' garbage goes
    print(f"  {connections} opened in {opened:.1f} s; RSS with them {full:.1f} MiB")
    return full


def levers(idle: float, trace: int, before) -> None:
    """The RSS now, after a full collection, then after malloc_trim(0)."""
    stages = [("closed", rss_mib())]
    started = time.perf_counter()
    gc.collect()
    stages.append((f"gc.collect() ({(time.perf_counter() - started) * 1000:.0f} ms)", rss_mib()))
    memory.trim()
    stages.append(("malloc_trim(0)", rss_mib()))
    for name, rss in stages:
        print(f"  after {name}: {rss:.1f} MiB ({(rss - idle) / idle * 100:+.0f}% of idle)")
    if trace:
        left = tracemalloc.take_snapshot().compare_to(before, "lineno")
        print(f"  Python allocations left: {sum(s.size_diff for s in left) / 2**20:.1f} MiB")
        for stat in left[:trace]:
            site = stat.traceback[0]
            print(f"  {stat.size_diff / 1024:8.0f} KiB  {site.filename}:{site.lineno}")


async def measure(args) -> None:
    memory.RELEASE_ENABLED = False  # each lever by hand below
    with tempfile.TemporaryDirectory() as tmp:
        redis = start_redis(Path(tmp))
        settings = dataclasses.replace(
            fanout_load.SETTINGS, redis_url=redis.url, admissions_per_second=10**6
        )
        try:
            async with replica(settings) as (url, _server):
                await asyncio.sleep(1)
                gc.collect()
                idle, before = rss_mib(), None
                if args.trace:
                    tracemalloc.start(1)
                    before = tracemalloc.take_snapshot()
                print(f"allocator={os.environ.get('PYTHONMALLOC', 'pymalloc')} "
                      f"MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', '-')} "
                      f"idle RSS {idle:.1f} MiB")  # fmt: skip
                for n in range(args.waves):
                    print(f"wave {n + 1}:")
                    full = await wave(url, args.connections, args.processes)
                    print(f"  {(full - idle) * 1024 / args.connections:.1f} KiB per connection")
                    levers(idle, args.trace, before)
        finally:
            redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=5, help="load-generator processes")
    parser.add_argument("--waves", type=int, default=2)
    parser.add_argument("--trace", type=int, default=0, metavar="N",
                        help="the N sites holding most Python memory after a wave")  # fmt: skip
    parser.add_argument("--allocator", choices=("pymalloc", "malloc"), default="pymalloc")
    args = parser.parse_args()
    if args.allocator == "malloc" and os.environ.get("PYTHONMALLOC") != "malloc":
        os.environ["PYTHONMALLOC"] = "malloc"  # only at start: run this file again
        os.execv(sys.executable, [sys.executable, *sys.argv])  # noqa: S606 - this script again
    fanout_load.raise_file_limit()
    try:
        import uvloop
    except ImportError:
        asyncio.run(measure(args))
    else:
        uvloop.run(measure(args))


if __name__ == "__main__":
    main()
