"""Helpers the tests share, one module per thing they help with; conftest files
keep only fixtures and import from here."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_script(path: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`python <path> <args>` from the repository root, as an operator runs it
    (settings from this process's environment); its output captured as text."""
    return subprocess.run(
        [sys.executable, path, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
