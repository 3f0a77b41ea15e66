"""The fan-out container image: lint-clean, slim, non-root, and shipping every
package the server imports."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

DOCKERFILE = ROOT / "fanout" / "Dockerfile"


def test_the_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_slim_and_runs_as_a_non_root_user():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:\S+-slim", text, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")


def test_the_image_requirements_cover_what_the_fanout_extra_installs():
    shipped = {
        re.split(r"[<>=;\s]", line)[0].lower()
        for line in (ROOT / "fanout" / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert {"websockets", "redis", "pyjwt", "pydantic", "prometheus-client",
            "python-json-logger", "uvloop"} <= shipped  # fmt: skip


def test_the_fanout_starts_without_importing_boto3():
    """boto3 (~300 ms, tens of MiB) loads on the first message with an attachment."""
    code = "import sys, fanout.server; print('boto3' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "False", result.stderr
