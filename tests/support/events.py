"""The functions of template.yaml, loaded as the emulator loads them, and the
sample events under events/ filled in for a test: body, bearer token, client
IP, in API Gateway HTTP API (2.0) or REST API (1.0) format."""

from __future__ import annotations

import json
from typing import Any

from local.runtime import LocalFunction
from local.template import functions
from tests.support import ROOT

EVENTS = ROOT / "events"
FORMATS = ("http-v2", "rest-v1")
_KEEP = object()


def event(
    name: str,
    fmt: str,
    *,
    body: Any = _KEEP,
    raw: str | None = None,
    token: str | None = None,
    ip: str | None = None,
) -> dict[str, Any]:
    """events/<name>.<fmt>.json with the given body (JSON-encoded, or raw text),
    bearer token and source IP."""
    sample = json.loads((EVENTS / f"{name}.{fmt}.json").read_text())
    if raw is not None:
        sample["body"] = raw
    elif body is not _KEEP:
        sample["body"] = None if body is None else json.dumps(body)
    v1 = fmt == "rest-v1"
    headers = sample["headers"]
    for header in ("Authorization", "authorization"):
        headers.pop(header, None)
        (sample.get("multiValueHeaders") or {}).pop(header, None)
    if token is not None:
        name = "Authorization" if v1 else "authorization"
        headers[name] = f"Bearer {token}"
        if v1:
            sample["multiValueHeaders"][name] = [headers[name]]
    if ip is not None:
        context = sample["requestContext"]
        (context["identity"] if v1 else context["http"])["sourceIp"] = ip
    return sample


def call(fn: LocalFunction, sample: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    """(status, decoded JSON body, lower-cased headers) of one invocation."""
    result = fn.invoke(sample)
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    for k, values in (result.get("multiValueHeaders") or {}).items():
        headers[k.lower()] = values[-1]
    return result["statusCode"], json.loads(result["body"] or "null"), headers


def template_function(name: str, *, concurrency: int = 4) -> LocalFunction:
    """A function of template.yaml, invoked the way the local emulator does."""
    (found,) = [f for f in functions(ROOT / "template.yaml") if f.name == name]
    return LocalFunction(found, concurrency=concurrency)
