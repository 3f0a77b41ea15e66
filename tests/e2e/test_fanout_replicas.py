"""Fan-out replicas as real processes (`python -m fanout`) on one Redis: the
same order everywhere, failover with resume after a replica is killed, a
graceful SIGTERM, and a property-based fuzz of frames against a live replica."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from aurora.tokens import issue_token
from local.servers import free_port, wait_for_port
from tests.support import ROOT

ROOM = "replicas"


class Replica:
    def __init__(self, env: dict[str, str], log_path) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "fanout"],
                cwd=ROOT,
                env=env | {"FANOUT_PORT": str(self.port)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def replicas(settings, tmp_path) -> Iterator[list[Replica]]:
    """Three replicas on one Redis, each a process of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "FANOUT_"))}
    env |= {
        "AURORA_ENV": "local",
        "REDIS_URL": settings.redis_url,
        "JWT_SECRET": settings.jwt_secret,
        "FANOUT_HOST": "127.0.0.1",
        "RATE_LIMIT_MESSAGES": "1000",
        "USER_MESSAGES_PER_SECOND": "1000",
        "USER_MESSAGE_BURST": "1000",
        "MAX_CONNECTIONS_PER_USER": "2",
        "CONNECTION_LEASE_SECONDS": "1",
    }
    started = [Replica(env, tmp_path / f"replica-{i}.log") for i in range(3)]
    try:
        for replica in started:
            wait_for_port(replica.port, replica.process, timeout=30)
        yield started
    finally:
        for replica in started:
            replica.stop()


class Client:
    """A v1 client that remembers the last id it saw and resumes from it."""

    def __init__(self, settings, name: str) -> None:
        self.token = issue_token(f"id-{name}", name, settings)
        self.ids: list[str] = []
        self.missed: list[int] = []  # `missed` of each join
        self.ws = None

    async def connect(self, url: str) -> None:
        self.ws = await connect(url, subprotocols=["aurora.v1", f"bearer.{self.token}"])
        assert (await self.frame())["type"] == "ready"
        frame = {"type": "join", "room": ROOM} | ({"since": self.ids[-1]} if self.ids else {})
        await self.ws.send(json.dumps(frame))
        joined = await self.frame()
        assert joined["type"] == "joined" and joined["recovered"] is True
        self.missed.append(joined["missed"])
        for _ in range(joined["missed"]):
            self.ids.append((await self.frame())["id"])

    async def frame(self, timeout: float = 10.0) -> dict:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def read_messages(self, count: int) -> None:
        while len(self.ids) < count:
            frame = await self.frame()
            if frame["type"] == "message":
                self.ids.append(frame["id"])


async def send_all(client: Client, texts: list[str], pause: float = 0.0) -> list[str]:
    """Send each text with a client_id; the ids of the acks, in order."""
    acked = []
    for i, text in enumerate(texts):
        cid = f"{text}-{i}"
        await client.ws.send(json.dumps({"type": "message", "room": ROOM, "text": text,
                                         "client_id": cid}))  # fmt: skip
        while True:
            frame = await client.frame()
            if frame["type"] == "message":
                client.ids.append(frame["id"])
            elif frame["type"] == "ack" and frame["client_id"] == cid:
                acked.append(frame["id"])
                break
        await asyncio.sleep(pause)
    return acked


def id_key(message_id: str) -> tuple[int, int]:
    ms, seq = message_id.split("-")
    return int(ms), int(seq)


def test_clients_on_three_replicas_see_every_message_in_the_same_order(replicas, settings):
    async def scenario() -> list[list[str]]:
        clients = [Client(settings, f"user{i}") for i in range(3)]
        for client, replica in zip(clients, replicas, strict=True):
            await client.connect(replica.url)
        await asyncio.sleep(0.2)
        await asyncio.gather(*(send_all(c, [f"{c.token[-4:]}:{n}" for n in range(15)])
                               for c in clients))  # fmt: skip
        for client in clients:
            await client.read_messages(45)
            await client.ws.close()
        return [client.ids for client in clients]

    seen = asyncio.run(scenario())
    assert len(seen[0]) == 45 and len(set(seen[0])) == 45
    assert seen[0] == seen[1] == seen[2]
    assert seen[0] == sorted(seen[0], key=id_key)


def test_clients_of_a_killed_replica_resume_on_another_with_no_gap_or_duplicate(replicas, settings):
    async def scenario() -> tuple[list[str], list[str], list[int]]:
        writer, reader = Client(settings, "writer"), Client(settings, "reader")
        await writer.connect(replicas[2].url)
        await reader.connect(replicas[0].url)
        await asyncio.sleep(0.2)
        acked = await send_all(writer, [f"before {i}" for i in range(10)])
        await reader.read_messages(10)
        replicas[0].stop()  # SIGKILL: no goodbye, no cleanup
        with pytest.raises(ConnectionClosed):
            while True:
                await reader.frame()
        acked += await send_all(writer, [f"offline {i}" for i in range(10)])
        # Reconnect elsewhere and resume from the last id while messages keep coming.
        during = asyncio.create_task(send_all(writer, [f"during {i}" for i in range(20)], 0.01))
        await reader.connect(replicas[1].url)
        acked += await during
        await reader.read_messages(40)
        await reader.ws.close()
        await writer.ws.close()
        return acked, reader.ids, reader.missed

    acked, received, missed = asyncio.run(scenario())
    assert received == acked  # every message, once, in order
    assert missed[1] >= 10  # at least the offline ones came from the resume window


def test_a_killed_replicas_connections_stop_counting_against_the_user_cap(replicas, settings):
    async def scenario() -> tuple[int, str]:
        first, second = Client(settings, "alice"), Client(settings, "alice")
        await first.connect(replicas[0].url)
        await second.connect(replicas[0].url)
        refused = Client(settings, "alice")
        with pytest.raises(ConnectionClosed) as caught:
            await refused.connect(replicas[1].url)  # the cap (2) counts both replicas
        replicas[0].stop()  # SIGKILL: its two leases are never released...
        await asyncio.sleep(1.5)  # ...and expire after one lease (1 s here)
        healed = Client(settings, "alice")
        await healed.connect(replicas[1].url)
        await healed.ws.close()
        return caught.value.rcvd.code, "healed"

    assert asyncio.run(scenario()) == (4029, "healed")


def test_sigterm_closes_clients_with_1012_and_exits_within_10_seconds(replicas, settings):
    async def scenario() -> int:
        client = Client(settings, "alice")
        await client.connect(replicas[1].url)
        os.kill(replicas[1].process.pid, signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as caught:
            while True:  # who is online (after `joined`), then the close
                await client.frame()
        return caught.value.rcvd.code

    started = time.monotonic()
    assert asyncio.run(scenario()) == 1012
    assert replicas[1].process.wait(10) == 0
    assert time.monotonic() - started < 10
    # Its log: one JSON object per line, with no token in it.
    lines = replicas[1].log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["message"] == "fan-out listening" for r in records)
    assert "bearer." not in "".join(lines) and "token=" not in "".join(lines)


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = (
    json_scalars
    | st.lists(json_scalars, max_size=3)
    | st.dictionaries(st.text(max_size=5), json_scalars, max_size=3)
)
typed_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(["join", "leave", "message", "typing", "ping", "nope"]) | json_values},
    optional={
        "room": st.sampled_from(["general", "r1", "bad room", ""]) | json_values,
        "text": st.text(max_size=50) | json_values,
        "since": st.sampled_from(["0-0", "1-1", "x", "99999999999999-0"]) | json_values,
        "typing": json_values,
        "client_id": st.text(max_size=70) | json_values,
    },
).map(json.dumps)
raw_frames = st.text(max_size=200) | st.binary(max_size=200) | typed_frames


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(batch=st.lists(raw_frames, min_size=1, max_size=20))
def test_a_live_replica_survives_any_stream_of_frames(replicas, settings, batch):
    """Whatever arrives, the connection stays open and the server answers."""
    token = issue_token("id-fuzz", "fuzz", settings)

    marker = f"marker-{time.monotonic_ns()}"

    async def scenario() -> dict:
        async with connect(f"{replicas[0].url}/?token={token}") as ws:
            for frame in batch:
                await ws.send(frame)
            await ws.send(json.dumps({"type": "join", "room": marker}))
            while True:
                reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert isinstance(reply, dict) and "type" in reply
                if reply.get("room") == marker:
                    return reply

    assert asyncio.run(scenario())["type"] == "joined"
    assert replicas[0].process.poll() is None
