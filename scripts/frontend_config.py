"""The browser client's config.json for a deployed stack, from its outputs.

    aws cloudformation describe-stacks --stack-name aurorachat-dev > stack.json
    python scripts/frontend_config.py stack.json > config.json

`ws_url` is the stack's WebSocketUrl, or --ws-url when the fan-out tier runs
elsewhere (DeployFanout=false) or behind your own wss:// host name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def outputs(describe_stacks: dict[str, Any]) -> dict[str, str]:
    """OutputKey -> OutputValue of the one stack in a describe-stacks answer."""
    stacks = describe_stacks.get("Stacks") or []
    if len(stacks) != 1:
        raise ValueError(f"expected one stack in the describe-stacks JSON, found {len(stacks)}")
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs") or []}


def frontend_config(values: dict[str, str], ws_url: str | None = None) -> dict[str, str]:
    """What frontend/ reads from config.json: where the REST API and the fan-out are."""
    if "ApiUrl" not in values:
        raise ValueError("the stack has no ApiUrl output: is it an AuroraChat stack?")
    ws = ws_url or values.get("WebSocketUrl", "")
    if not ws.startswith(("ws://", "wss://")):
        raise ValueError(
            f"no WebSocket URL in the stack's outputs ({ws!r}): pass --ws-url wss://..."
        )
    return {"api_url": values["ApiUrl"].rstrip("/"), "ws_url": ws.rstrip("/")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scripts/frontend_config.py", description=__doc__)
    parser.add_argument("stack_json", help="describe-stacks output (a file, or - for stdin)")
    parser.add_argument("--ws-url", help="the fan-out tier's wss:// URL, if not the stack's")
    args = parser.parse_args(argv)
    raw = sys.stdin.read() if args.stack_json == "-" else Path(args.stack_json).read_text()
    try:
        config = frontend_config(outputs(json.loads(raw)), args.ws_url)
    except ValueError as exc:
        raise SystemExit(f"frontend_config: {exc}") from None
    print(json.dumps(config, indent=2))


if __name__ == "__main__":
    main()
