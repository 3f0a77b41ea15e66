"""What holds the fan-out's event loop: a replica in this process with every
callback of its loop timed (CPU time, so that a shared machine's preemptions
do not count), under bench/fanout_load.py's throughput load
(N receivers in one room, one sender at a fixed rate). Prints each kind of
callback that held the loop longer than the threshold (by the task's
coroutine and where it stopped), and every garbage collection over it.

    python bench/loop_stalls.py --clients 1000 --rate 40 --seconds 30 [--threshold-ms 2]

The periodic tasks run at their normal intervals unless --short-intervals,
which makes each one (keepalive, membership, presence, revocation, leases)
come round every few seconds so that a short run sees them all. The loop is
asyncio's own (its callbacks can be timed from Python), not uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import gc
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "aurora"), str(ROOT / "bench")]

import fanout_load  # noqa: E402

from aurora.settings import Settings  # noqa: E402
from local.servers import start_redis  # noqa: E402
from tests.support.fanout import replica  # noqa: E402

Stalls = collections.defaultdict  # what -> [durations in ms]


def describe(handle: asyncio.Handle) -> str:
    """A task's coroutine and the line it stopped at, or the callback's name."""
    owner = getattr(handle._callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        # The innermost of our own frames it stopped in (not the library's).
        stack = owner.get_stack() if not owner.done() else []
        ours = [f for f in stack if "/fanout/" in f.f_code.co_filename
                or "/aurora/" in f.f_code.co_filename]  # fmt: skip
        where = f" at {ours[-1].f_code.co_name}:{ours[-1].f_lineno}" if ours else ""
        return f"task {getattr(coro, '__qualname__', coro)}{where}"
    return f"callback {getattr(handle._callback, '__qualname__', handle._callback)}"


def time_callbacks(threshold: float, stalls: Stalls) -> None:
    run = asyncio.events.Handle._run

    def timed(handle: asyncio.Handle) -> None:
        # CPU time of this thread: on a shared machine, wall time would count
        # the moments another process had the core.
        started = time.thread_time()
        run(handle)
        took = time.thread_time() - started
        if took > threshold:
            stalls[describe(handle)].append(took * 1000)

    asyncio.events.Handle._run = timed


def time_collections(threshold: float, stalls: Stalls) -> None:
    started = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.thread_time()
        elif (took := time.thread_time() - started[0]) > threshold:
            stalls[f"gc generation {info['generation']}"].append(took * 1000)

    gc.callbacks.append(on_gc)


def load_settings(redis_url: str, short: bool) -> Settings:
    limits = dict(
        rate_limit_messages=10**6, rate_limit_changes=10**6, user_messages_per_second=10**6,
        user_message_burst=10**6, user_bytes_per_window=2**40, inbound_frames_per_second=10**6,
        inbound_frame_burst=10**6, flood_frames_per_second=10**6, admissions_per_second=10**6,
    )  # fmt: skip
    if short:
        limits |= dict(
            ping_interval_seconds=3, membership_check_seconds=3.0, presence_ttl_seconds=9.0,
            revocation_check_seconds=3, connection_lease_seconds=9,
        )  # fmt: skip
    return dataclasses.replace(fanout_load.SETTINGS, redis_url=redis_url, **limits)


async def measure(args) -> None:
    stalls: Stalls = collections.defaultdict(list)
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        redis = start_redis(Path(tmp))
        try:
            async with replica(load_settings(redis.url, args.short_intervals)) as (url, _):
                stop, results = ctx.Event(), ctx.Queue()
                procs = await asyncio.to_thread(
                    fanout_load.start_load, ctx, fanout_load.receivers, args.clients,
                    args.processes, (url, stop, results), 300,
                )  # fmt: skip
                sent_q = ctx.Queue()
                sender = ctx.Process(target=fanout_load.sender,
                                     args=(url, args.rate, args.seconds, sent_q))  # fmt: skip
                sender.start()
                await asyncio.sleep(2)  # the sender's handshake and join
                threshold = args.threshold_ms / 1000
                time_callbacks(threshold, stalls)
                time_collections(threshold, stalls)
                await asyncio.sleep(args.seconds - 3)
                asyncio.events.Handle._run = _ORIGINAL_RUN
                gc.callbacks.clear()
                await asyncio.to_thread(sender.join, 60)
                stop.set()
                for _ in procs:
                    await asyncio.to_thread(results.get, True, 120)
                for proc in procs:
                    await asyncio.to_thread(proc.join, 60)
        finally:
            redis.stop()
    print(f"clients={args.clients} rate={args.rate}/s seconds={args.seconds} "
          f"threshold={args.threshold_ms} ms short-intervals={args.short_intervals}")  # fmt: skip
    if not stalls:
        print("no callback held the loop longer than the threshold")
    for what, took in sorted(stalls.items(), key=lambda item: -max(item[1])):
        print(f"{len(took):5d} x  max {max(took):7.1f} ms  median "
              f"{sorted(took)[len(took) // 2]:6.1f} ms  {what}")  # fmt: skip


_ORIGINAL_RUN = asyncio.events.Handle._run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--processes", type=int, default=4, help="receiver processes")
    parser.add_argument("--threshold-ms", type=float, default=2.0)
    parser.add_argument("--short-intervals", action="store_true",
                        help="every periodic task every few seconds")  # fmt: skip
    args = parser.parse_args()
    fanout_load.raise_file_limit()
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
