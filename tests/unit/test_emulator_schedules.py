"""The emulator's schedules: a run never starts while the previous one of the
same function is still going (a slow drain cannot pile up behind itself)."""

from __future__ import annotations

import asyncio
import itertools
import json
import textwrap
from pathlib import Path

from local.runtime import LocalFunction
from local.stack import LocalStack, StackConfig
from local.template import functions

SLOW_HANDLER = textwrap.dedent(
    """
    import json, time

    def handler(event, context):
        started = time.monotonic()
        time.sleep(0.3)  # slower than the 0.05 s schedule
        with open(__file__ + ".runs", "a") as f:
            f.write(json.dumps([started, time.monotonic()]) + "\\n")
        return {}
    """
)

TEMPLATE = textwrap.dedent(
    """
    Transform: AWS::Serverless-2016-10-31
    Resources:
      SlowFunction:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: slow/
          Handler: app.handler
          Timeout: 5
          Events:
            Tick:
              Type: Schedule
              Properties:
                Schedule: rate(1 minute)
    """
)


async def run_for(stack: LocalStack, seconds: float) -> None:
    task = asyncio.create_task(stack.run_schedules())
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_a_scheduled_run_never_overlaps_the_previous_one(tmp_path: Path):
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "app.py").write_text(SLOW_HANDLER)
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    stack = LocalStack(StackConfig(template=tmp_path / "template.yaml", schedule_seconds=0.05))
    stack.functions = [LocalFunction(fn) for fn in functions(tmp_path / "template.yaml")]
    try:
        asyncio.run(run_for(stack, 1.2))
    finally:
        stack.stop()
    runs = [
        json.loads(line) for line in (tmp_path / "slow" / "app.py.runs").read_text().splitlines()
    ]
    assert len(runs) >= 2
    for (_, previous_end), (next_start, _) in itertools.pairwise(runs):
        assert next_start >= previous_end
