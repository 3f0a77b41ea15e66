"""The replica's allocator: jemalloc under every Python object where the
machine has it (Debian's libjemalloc2, which redis-server depends on, so
CI has it), and the release after a wave asks the allocator that is really
there to hand its free pages back."""

from __future__ import annotations

import os
import subprocess
import sys

from fanout import memory
from tests.support import ROOT

# The allocator this process found, after asking it to release (no crash),
# and what it says it holds.
PROBE = (
    "from fanout import memory; memory.trim(); "
    "print(memory.ALLOCATOR, *sorted(memory.allocator_stats().items()))"
)


def probe(env: dict[str, str]) -> str:
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip


def test_a_replica_started_with_the_allocator_env_runs_on_jemalloc():
    env = memory.jemalloc_env()
    assert env, "no jemalloc on this machine: apt-get install libjemalloc2"
    allocator, *held = probe(env).split(" ", 1)
    assert allocator == "jemalloc"
    for count in ("allocated", "active", "metadata", "resident"):
        assert f"('jemalloc_{count}_mib', " in held[0]


def test_without_it_the_release_falls_back_to_glibcs_trim():
    assert probe({"LD_PRELOAD": "", "PYTHONMALLOC": ""}) == "glibc"  # and no counts


def test_a_table_a_peak_left_large_is_shrunk_in_place_and_keeps_what_it_holds():
    grown_dict = {f"user{i}": i for i in range(50_000)}
    grown_set = {f"conn{i}" for i in range(50_000)}
    for i in range(3, 50_000):
        del grown_dict[f"user{i}"]
        grown_set.discard(f"conn{i}")
    small = {"a": 1}
    sizes = [sys.getsizeof(t) for t in (grown_dict, grown_set, small)]
    freed = memory.compact([grown_dict, grown_set, small])
    assert grown_dict == {"user0": 0, "user1": 1, "user2": 2}  # shrunk in place
    assert grown_set == {"conn0", "conn1", "conn2"}
    after = [sys.getsizeof(t) for t in (grown_dict, grown_set, small)]
    assert after[0] < sizes[0] // 100 and after[1] < sizes[1] // 100
    assert after[2] == sizes[2]  # nothing to give back: left alone
    assert freed == sum(sizes) - sum(after)
