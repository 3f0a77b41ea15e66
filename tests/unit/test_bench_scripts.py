"""Every benchmark script runs as `python bench/<name>.py`: none shadows one of
our packages (bench/ comes first on its path), and each answers --help."""

import subprocess
import sys

import pytest

from tests.support import ROOT

SCRIPTS = sorted((ROOT / "bench").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_the_script_answers_help(script):
    result = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")


def test_no_script_is_named_like_a_package_of_ours():
    packages = {"aurora", "fanout", "local", "functions", "tests"}
    assert {script.stem for script in SCRIPTS} & packages == set()
