"""`python -m local` starts only on free ports, says what it stops, and never
leaves a `local.json` behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from local.servers import free_port
from tests.support.servers import running_stack

ROOT = Path(__file__).resolve().parents[2]


def start_stack(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MONGO_URL")}
    return subprocess.run(
        [sys.executable, "-m", "local", "--data-dir", str(data_dir), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("busy", "option", "variable"),
    [("api", "--api-port", "AURORA_API_PORT"), ("ws", "--ws-port", "AURORA_WS_PORT")],
)
def test_a_taken_port_starts_nothing_and_names_the_port_and_how_to_pick_another(
    tmp_path, busy, option, variable
):
    ports = {"api": free_port(), "ws": free_port()}
    data_dir = tmp_path / "aurora"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[busy]))
        holder.listen()
        result = start_stack(
            data_dir, "--api-port", str(ports["api"]), "--ws-port", str(ports["ws"])
        )
    assert result.returncode != 0
    assert f"port {ports[busy]}" in result.stderr
    assert option in result.stderr and variable in result.stderr
    assert "running" not in result.stdout + result.stderr
    # Nothing started: no server's data, no local.json, not even the folder.
    assert not data_dir.exists(), list(data_dir.iterdir())


def test_a_stopped_stack_says_what_it_stops_and_leaves_no_local_json(tmp_path):
    data_dir = tmp_path / "aurora"
    data_dir.mkdir()
    with running_stack(data_dir) as urls:
        assert (data_dir / "local.json").exists()
        # A function logs through Powertools (JSON in the cloud).
        refused = httpx.post(
            urls["api_url"] + "/api/auth/login", json={"username": "nobody", "password": "x" * 8}
        )
        assert refused.status_code == 401
    # running_stack stopped it with SIGTERM and checked its children are gone.
    assert not (data_dir / "local.json").exists()
    console = (data_dir / "stack.log").read_text()
    for part in ("the HTTP front", "the fan-out", "the functions", "Redis", "MongoDB", "S3"):
        assert f"stopping {part}" in console, console[-2000:]
    assert "stopped in" in console
    # One readable format: no JSON line on the console.
    assert "auth: login refused code=invalid_credentials" in console
    assert not [line for line in console.splitlines() if line.lstrip().startswith("{")]
