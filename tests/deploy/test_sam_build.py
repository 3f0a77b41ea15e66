"""A real `sam build` (no container: the runtime's python3.12 on PATH), and
every `Handler:` of the built template resolves to a callable in the built
artifact."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT
from tests.support.deploy import decode, missing, python312_dir, sam_binary


@pytest.fixture(scope="module")
def built(tmp_path_factory, aws_env) -> Path:
    if not python312_dir():
        missing(
            "no python3.12 here: `sam build` needs the Lambda runtime's interpreter"
            " (on PATH, or under pyenv's versions/3.12.*)"
        )
    build_dir = tmp_path_factory.mktemp("sam-build")
    result = subprocess.run(
        [sam_binary(), "build", "--template", "template.yaml", "--build-dir", str(build_dir)],
        cwd=ROOT, env=aws_env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return build_dir


def built_functions(built: Path) -> dict[str, dict[str, Any]]:
    resources = decode(built / "template.yaml")["Resources"]
    return {
        n: r["Properties"] for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"
    }


def test_the_build_has_every_function_the_layer_and_the_nested_fanout_template(built):
    assert set(built_functions(built)) == {
        "AuthFunction", "IngestFunction", "AttachmentsFunction", "MessagesFunction",
        "DocsFunction",
    }  # fmt: skip
    assert (built / "SharedLayer" / "python" / "aurora" / "__init__.py").exists()
    assert (built / "FanoutService" / "template.yaml").exists()


def test_the_layer_holds_every_requirement_built_for_the_runtime_and_arm64(built):
    layer = built / "SharedLayer" / "python"
    wanted = [
        re.split(r"[<>=!~ ;\\[]", line, maxsplit=1)[0].lower().replace("-", "_")
        for line in (ROOT / "layers/aurora/requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    present = {p.name.split("-")[0].lower() for p in layer.glob("*.dist-info")}
    assert set(wanted) <= present, set(wanted) - present
    extensions = list(layer.rglob("*.so"))
    assert extensions, "no compiled extension at all: bcrypt and pydantic-core have some"
    for ext in extensions:
        if ".cpython-" in ext.name:
            assert "cpython-312-aarch64-linux-gnu" in ext.name, ext


def test_every_handler_resolves_to_a_callable_in_the_built_artifact(built, tmp_path):
    """The built function code and the built `aurora` package are imported (the
    compiled third-party wheels are aarch64 and cannot load on this machine, so
    those come from the test environment)."""
    aurora_only = tmp_path / "layer"
    aurora_only.mkdir()
    (aurora_only / "aurora").symlink_to(built / "SharedLayer" / "python" / "aurora")
    for name, props in built_functions(built).items():
        module, attribute = props["Handler"].rsplit(".", 1)
        code = built / props["CodeUri"]
        probe = (
            "import importlib, json, sys;"
            f"sys.path[:0] = [{str(code)!r}, {str(aurora_only)!r}];"
            f"handler = getattr(importlib.import_module({module!r}), {attribute!r});"
            "import aurora;"
            "print(json.dumps([callable(handler), aurora.__file__]))"
        )
        result = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=False,
            env={"PATH": "/usr/bin:/bin", "POWERTOOLS_METRICS_NAMESPACE": "AuroraChat"},
        )  # fmt: skip
        assert result.returncode == 0, (name, result.stderr[-3000:])
        is_callable, aurora_file = json.loads(result.stdout.splitlines()[-1])
        assert is_callable, name
        assert aurora_file.startswith(str(aurora_only)), (name, aurora_file)
