"""The requirements files the layer and the fan-out image install say what
pyproject.toml says: they are generated from it, never edited by hand."""

import subprocess
import sys

from tests.support import ROOT


def test_the_requirements_files_are_in_step_with_pyproject():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "requirements.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
