"""Reads what the emulator needs from template.yaml: each function's code,
handler, HTTP routes and schedules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation tags (!Ref, !Sub, ...) as dicts."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


@dataclass(frozen=True)
class Route:
    method: str  # upper case, or "ANY"
    path: str  # API Gateway path, e.g. /api/rooms/{roomId}

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in ("ANY", method.upper()):
            return None
        pattern = "^"
        for part in re.split(r"(\{[^}]+\})", self.path):
            if part.startswith("{") and part.endswith("+}"):
                pattern += f"(?P<{_group(part[1:-2])}>.+)"
            elif part.startswith("{"):
                pattern += f"(?P<{_group(part[1:-1])}>[^/]+)"
            else:
                pattern += re.escape(part)
        found = re.match(pattern + "$", path)
        return {_ungroup(k): v for k, v in found.groupdict().items()} if found else None


def _group(name: str) -> str:
    return "p_" + name.encode().hex()


def _ungroup(group: str) -> str:
    return bytes.fromhex(group[2:]).decode()


@dataclass(frozen=True)
class Function:
    name: str
    code_uri: Path
    handler: str
    timeout: int
    routes: tuple[Route, ...] = ()
    schedules: tuple[str, ...] = field(default=())


def load_template(path: Path) -> dict[str, Any]:
    with open(path) as f:
        return yaml.load(f, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def _resolve(value: Any, parameters: dict[str, Any]) -> Any:
    if isinstance(value, dict) and "Ref" in value:
        return parameters.get(value["Ref"], {}).get("Default")
    return value


def functions(template_path: Path) -> list[Function]:
    """Every AWS::Serverless::Function, with its HttpApi/Api routes and schedules."""
    template = load_template(template_path)
    parameters = template.get("Parameters", {})
    glob = template.get("Globals", {}).get("Function", {})
    found = []
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {})
        routes, schedules = [], []
        for event in (props.get("Events") or {}).values():
            kind, eprops = event.get("Type"), event.get("Properties", {})
            if kind in ("HttpApi", "Api"):
                method = str(eprops.get("Method", "ANY")).upper()
                routes.append(Route("ANY" if method == "ANY" else method, eprops["Path"]))
            elif kind == "Schedule":
                schedules.append(str(_resolve(eprops["Schedule"], parameters)))
        found.append(
            Function(
                name=name,
                code_uri=(template_path.parent / props["CodeUri"]).resolve(),
                handler=props.get("Handler", glob.get("Handler")),
                timeout=int(props.get("Timeout", glob.get("Timeout", 3))),
                routes=tuple(routes),
                schedules=tuple(schedules),
            )
        )
    return found


def schedule_seconds(expression: str) -> float:
    """Seconds between runs of a `rate(...)` expression (cron is not emulated)."""
    match = re.fullmatch(
        r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", expression.strip()
    )
    if not match:
        raise ValueError(f"unsupported schedule expression {expression!r}; use rate(...)")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit
