"""Giving memory back after a wave of connections closes.

A connection that closes leaves two kinds of memory behind (measured in
docs/benchmarks.md with bench/memory_wave.py):
- garbage in reference cycles (a transport and its protocol, a task and its
  coroutine), freed only by a full collection, which CPython runs only once
  the long-lived objects have grown by a quarter, i.e. rarely after a wave;
- free memory the allocator keeps: glibc keeps freed chunks for reuse until
  `malloc_trim` hands their pages back to the system.
So when the replica's connections have fallen by a wave (at least `WAVE` and a
quarter of the peak) and stopped falling, it runs one full collection and
`malloc_trim(0)`. Both hold the loop (a collection visits every tracked
object: milliseconds per thousand connections still open), which is why
they run once per wave, never on a timer.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
import time
from collections.abc import Callable

log = logging.getLogger("aurora.fanout")

WAVE = 1000  # connections closed since the peak before anything is released
CHECK_SECONDS = 5.0
RELEASE_ENABLED = True  # bench/memory_wave.py applies each lever by hand instead

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


_malloc_trim = _load_trim()


def trim() -> None:
    """Hand the allocator's free pages back to the system (glibc only)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def freeze_startup() -> None:
    """Leave what exists at start (modules, settings, clients: most of the
    tracked objects of an idle replica) out of every later collection, so a
    collection visits only what connections brought. Each full collection
    is that much shorter, and so is the loop's stall."""
    gc.collect()
    gc.freeze()


def rss_bytes() -> int:
    """This process's resident memory; 0 where /proc is missing (macOS)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        return 0


def release() -> None:
    before, started = rss_bytes(), time.perf_counter()
    gc.collect()
    trim()
    log.info(
        "memory released after a wave of closed connections",
        extra={
            "rss_before_mib": round(before / 2**20, 1),
            "rss_after_mib": round(rss_bytes() / 2**20, 1),
            "took_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )


async def release_after_waves(open_connections: Callable[[], int]) -> None:
    """Run until cancelled: `release()` once per wave of closed connections."""
    peak = last = open_connections()
    while True:
        await asyncio.sleep(CHECK_SECONDS)
        now = open_connections()
        falling, last = now < last, now
        if now > peak:
            peak = now
        elif not falling and peak - now >= max(WAVE, peak // 4):
            if RELEASE_ENABLED:
                release()
            peak = now
