"""What the per-user send budget adds to one send (one more Redis round trip).

    python bench/send_budget.py [--sends 3000] [--rounds 3]

Starts a redis-server on an ephemeral port in a temporary folder and times
sends one after another, as one connection's receive loop makes them: the
room's send script alone, then the budget (`aurora.budget`) followed by the
script, alternately for each round. Limits are lifted so nothing is refused.
Prints microseconds of wall time per send and this process's CPU per send.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

from aurora.backends import async_redis_client
from aurora.budget import SendBudget
from aurora.keyspace import STREAM_KEY
from aurora.sending import Sender
from aurora.settings import Settings
from local.servers import start_redis


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(url: str, sends: int, rounds: int) -> None:
    unlimited = Settings(
        env="local", redis_url=url, rate_limit_messages=10**9, user_messages_per_second=1e9,
        user_message_burst=10**9, user_bytes_per_window=2**50,
    )  # fmt: skip
    client = async_redis_client(url)
    sender, budget = Sender(client, unlimited), SendBudget(client, unlimited)
    try:
        for round_ in range(1, rounds + 1):
            for with_budget in (False, True):
                wall, used = time.perf_counter(), cpu()
                for _ in range(sends):
                    if with_budget:
                        await budget.take("u1", 11)
                    await sender.send(room="bench", user_id="u1", username="a", text="hello world")
                wall, used = time.perf_counter() - wall, cpu() - used
                await client.delete(STREAM_KEY)
                label = "budget + script" if with_budget else "script alone   "
                print(
                    f"round {round_} {label}: {wall / sends * 1e6:6.0f} us wall, "
                    f"{used / sends * 1e6:5.0f} us CPU per send"
                )
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = start_redis(Path(folder))
        try:
            asyncio.run(measure(server.url, args.sends, args.rounds))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
