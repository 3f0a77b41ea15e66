"""Write (--write) or check (--check) the requirements files that images and
the Lambda layer install, from pyproject.toml, the one place versions live.

    python scripts/requirements.py --write   # after changing pyproject.toml
    python scripts/requirements.py --check   # exit 1 if a file is out of step

Each file is declared in pyproject's [tool.aurora.requirements] table: the
project dependencies it takes (all of them, or those named) and the extras.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = "# Generated from pyproject.toml by scripts/requirements.py --write: do not edit.\n"


def name(requirement: str) -> str:
    """A requirement's distribution name, normalised (PEP 503)."""
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    if found is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", found.group()).lower()


def generated(pyproject: dict) -> dict[str, str]:
    """Each requirements file's path (from the repository root) and its text."""
    project = pyproject["project"]
    files = {}
    for path, spec in pyproject["tool"]["aurora"]["requirements"].items():
        wanted = spec.get("dependencies", "all")
        if wanted == "all":
            lines = list(project["dependencies"])
        else:
            by_name = {name(r): r for r in project["dependencies"]}
            unknown = {name(w) for w in wanted} - by_name.keys()
            if unknown:
                raise ValueError(f"{path}: not in project.dependencies: {sorted(unknown)}")
            lines = [by_name[name(w)] for w in wanted]
        for extra in spec.get("extras", []):
            lines += project["optional-dependencies"][extra]
        comment = "".join(f"# {line}\n" for line in spec.get("comment", "").splitlines())
        files[path] = HEADER + comment + "".join(f"{line}\n" for line in lines)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite the files")
    action.add_argument("--check", action="store_true", help="fail if a file differs")
    args = parser.parse_args(argv)

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    stale = []
    for path, text in generated(pyproject).items():
        target = ROOT / path
        if target.exists() and target.read_text() == text:
            continue
        if args.write:
            target.write_text(text)
            print(f"wrote {path}")
        else:
            stale.append(path)
    for path in stale:
        print(f"{path} is out of step with pyproject.toml: run scripts/requirements.py --write")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
