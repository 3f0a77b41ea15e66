"""Giving memory back after a wave of connections closes.

A connection that closes leaves two kinds of memory behind (measured in
docs/benchmarks.md with bench/memory_wave.py and bench/fanout_load.py hold
--wave):
- garbage in reference cycles (a transport and its protocol, a task and its
  coroutine), freed only by a full collection, which CPython runs only once
  the long-lived objects have grown by a quarter, i.e. rarely after a wave;
- free memory the allocator keeps. CPython's own allocator (pymalloc) frees
  a 1 MiB arena only when every object in it is gone, and the few objects a
  wave leaves alive (pool connections, tables sized for the peak) are spread
  over all of the wave's arenas: +39 % of the idle RSS stays after 3,000
  connections close. So the replica runs on jemalloc where the machine has
  it (`ALLOCATOR_ENV`: `PYTHONMALLOC=malloc` and jemalloc preloaded, as the
  image does): every object comes from jemalloc, which hands back any page
  left free, and costs no more CPU per delivery than pymalloc (glibc's
  malloc costs twice as much).
So when the replica's connections have fallen by a wave (at least `WAVE` and a
quarter of the peak) and stopped falling, it runs one full collection,
shrinks the tables a peak left large (`compact`), then asks the allocator to
hand its free pages back (jemalloc: purge every arena; glibc:
`malloc_trim(0)`). Both hold the loop (a collection visits every tracked
object: milliseconds per thousand connections still open), which is why they
run once per wave, never on a timer.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import gc
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("aurora.fanout")

WAVE = 1000  # connections closed since the peak before anything is released
CHECK_SECONDS = 5.0
RELEASE_ENABLED = True  # bench/memory_wave.py applies each lever by hand instead

_PAGE = os.sysconf("SC_PAGE_SIZE")


# What the replica's environment needs to run on jemalloc (Debian's
# libjemalloc2, which Redis depends on): every Python object from it; slabs
# of one page, so that a survivor of a wave pins a page, not a run of them;
# free pages kept for reuse (no decay: handing them back and faulting them in
# again costs system time in steady chat) until `release` after a wave.
JEMALLOC = "libjemalloc.so.2"
ALLOCATOR_ENV = {
    "PYTHONMALLOC": "malloc",
    "MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1,slab_sizes:1-4096:1",
}
_ALL_ARENAS = b"arena.4096.purge"  # MALLCTL_ARENAS_ALL


@functools.cache  # finding the library runs `ldconfig -p`: once per process
def jemalloc_env() -> dict[str, str]:
    """`ALLOCATOR_ENV` with jemalloc preloaded, for starting a replica; empty
    where the machine has no jemalloc (the replica then runs on pymalloc)."""
    found = ctypes.util.find_library("jemalloc")
    return {"LD_PRELOAD": found, **ALLOCATOR_ENV} if found else {}


def _jemalloc_stat(mallctl: Any, name: bytes) -> int:
    value, size = ctypes.c_size_t(0), ctypes.c_size_t(ctypes.sizeof(ctypes.c_size_t))
    mallctl(name, ctypes.byref(value), ctypes.byref(size), None, 0)
    return value.value


def _load_release() -> tuple[str, Callable[[], object] | None, Callable[[], dict[str, float]]]:
    """The allocator this process runs on, how to make it return its free
    pages (jemalloc's purge when it is preloaded, else glibc's trim), and
    what it holds (jemalloc's own counts, MiB; nothing for the others)."""
    symbols = ctypes.CDLL(None)
    mallctl = getattr(symbols, "mallctl", None)
    if mallctl is not None:

        def purge() -> None:
            # This thread's cache of freed objects first, then every arena's free pages.
            mallctl(b"thread.tcache.flush", None, None, None, 0)
            mallctl(_ALL_ARENAS, None, None, None, 0)

        def held() -> dict[str, float]:
            epoch = ctypes.c_uint64(1)  # the counts are refreshed by writing the epoch
            size = ctypes.c_size_t(ctypes.sizeof(epoch))
            mallctl(b"epoch", ctypes.byref(epoch), ctypes.byref(size), ctypes.byref(epoch), size)
            return {
                f"jemalloc_{name}_mib": round(
                    _jemalloc_stat(mallctl, f"stats.{name}".encode()) / 2**20, 1
                )
                for name in ("allocated", "active", "metadata", "resident")
            }

        return "jemalloc", purge, held
    malloc_trim = getattr(symbols, "malloc_trim", None)  # glibc; not musl or macOS
    if malloc_trim is not None:
        return "glibc", lambda: malloc_trim(0), dict
    return "unknown", None, dict


ALLOCATOR, _release_pages, allocator_stats = _load_release()


def trim() -> None:
    """Hand the allocator's free pages back to the system."""
    if _release_pages is not None:
        _release_pages()


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


Table = dict | set


def compact(tables: Iterable[Table]) -> int:
    """Shrink the tables a peak left large, in place (whoever holds one keeps
    it); returns the bytes given back. CPython never shrinks a dict or a set
    as entries go, so the registries of 5,000 connections stay sized for
    5,000 after they close (~1 MiB for the WebSocket server's two sets alone),
    and those tables are big blocks the allocator can hand back whole."""
    freed = 0
    for table in tables:
        before = sys.getsizeof(table)
        kept = table.copy()  # sized for what it holds now
        if sys.getsizeof(kept) < before:
            table.clear()  # frees the grown table
            table.update(kept)
            freed += before - sys.getsizeof(table)
    return freed


def release(tables: Iterable[Table] = ()) -> None:
    before, started = rss_bytes(), time.perf_counter()
    gc.collect()
    compacted = compact(tables)
    trim()
    log.info(
        "memory released after a wave of closed connections",
        extra={
            "rss_before_mib": round(before / 2**20, 1),
            "rss_after_mib": round(rss_bytes() / 2**20, 1),
            "tables_compacted_kib": compacted // 1024,
            **allocator_stats(),
            "took_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )


async def release_after_waves(
    open_connections: Callable[[], int], tables: Callable[[], Iterable[Table]] = tuple
) -> None:
    """Run until cancelled: `release(tables())` once per wave of closed connections."""
    peak = last = open_connections()
    while True:
        await asyncio.sleep(CHECK_SECONDS)
        now = open_connections()
        falling, last = now < last, now
        if now > peak:
            peak = now
        elif not falling and peak - now >= max(WAVE, peak // 4):
            if RELEASE_ENABLED:
                release(tables())
            peak = now
