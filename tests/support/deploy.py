"""Helpers for the deploy checks: where the SAM CLI is, and reading templates."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT

SAM_VENV = ROOT / ".venv-sam"


def python312_dir() -> str:
    """Where the Lambda runtime's interpreter (python3.12) is, for `sam build`
    without a container: one of pyenv's versions, or on PATH (pyenv's shim
    is skipped: it fails unless that version is enabled)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for version in sorted(pyenv.glob("3.12.*"), reverse=True):
        if (version / "bin" / "python3.12").exists():
            return str(version / "bin")
    found = shutil.which("python3.12")
    return str(Path(found).parent) if found and "shims" not in found else ""


def sam_binary() -> str:
    sam = SAM_VENV / "bin" / "sam"
    if sam.exists():
        return str(sam)
    found = shutil.which("sam")
    if found:
        return found
    missing("the SAM CLI is missing: `make test` installs it into .venv-sam")
    raise AssertionError("unreachable")


def missing(prerequisite: str) -> None:
    """A prerequisite of a test is missing: a skip on a developer's machine,
    a failure in CI (CI=true), where a skip would hide an unchecked promise."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{prerequisite} (CI=true: a missing prerequisite fails, it never skips)")
    pytest.skip(prerequisite)


def decode(path: Path) -> dict[str, Any]:
    """A CloudFormation YAML template as JSON-shaped data (tags become Fn:: dicts)."""
    from cfnlint.decode import decode as cfn_decode

    template, problems = cfn_decode(str(path))
    assert not problems, problems
    return json.loads(json.dumps(template, default=str))
