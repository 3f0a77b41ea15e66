"""Chat clients that behave like the browser client under faults, and the one
property every fault test ends with.

A `Chatter` connects with the token as a subprotocol, joins its room from
the newest id it saw, sends messages with a `client_id` and keeps each in an
outbox until it is acknowledged (resent, same `client_id`, after a reconnect
or a refusal), and reconnects with jittered exponential backoff, moving to
the next replica, when its connection drops: `frontend/socket.js` and
`frontend/outbox.js` in a few lines.

The property (`check_nothing_lost`): every message acknowledged to a sender
is stored in MongoDB exactly once, and every client that is still running
got it, live or by resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from aurora.settings import Settings
from aurora.stream import parse_id
from aurora.tokens import issue_token

BACKOFF_MIN_S = 0.05  # the browser's is 0.5 s; tests compress time
BACKOFF_MAX_S = 1.0
RESEND_AFTER_S = 2.0  # an unacknowledged send is repeated after this


def backoff(attempt: int) -> float:
    """The browser client's delay: exponential, half of it random (jitter)."""
    base = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2**attempt)
    return base / 2 + random.random() * base / 2


@dataclass
class Chatter:
    name: str
    urls: list[str]
    token: str
    room: str
    rate: float = 0.0  # messages per second while connected (0: only reads)
    padding: int = 0  # characters added to each message's text
    small_window: bool = False  # a 4 KiB receive buffer: stops the flow as soon as it stops reading
    url_index: int = 0
    received: Counter = field(default_factory=Counter)  # message id -> deliveries
    acked: dict[str, str] = field(default_factory=dict)  # client_id -> message id
    outbox: dict[str, float] = field(default_factory=dict)  # client_id -> last sent (monotonic)
    last_id: str | None = None
    closes: Counter = field(default_factory=Counter)  # close code (or HTTP status) -> times
    connections: int = 0
    # Resumes the server could not replay whole (`recovered: false`: the
    # window no longer reached back, or the replay was cut to fit the send
    # buffer): [since, first id received after it], the range a real client
    # pages from the history API (see `check_nothing_lost`).
    gaps: list[list[str | None]] = field(default_factory=list)
    _since: str | None = None
    ws: ClientConnection | None = None
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    sending: bool = False  # new messages only once the whole fleet has joined
    running: bool = True
    _sent: int = 0

    # -- the connection loop -----------------------------------------------------

    async def run(self) -> None:
        attempt = 0
        while self.running:
            url = self.urls[self.url_index % len(self.urls)]
            try:
                async with connect(
                    url,
                    sock=await self._socket(url) if self.small_window else None,
                    subprotocols=["aurora.v1", f"bearer.{self.token}"],
                    open_timeout=10,
                    close_timeout=2,
                    ping_interval=None,
                    max_size=None,
                ) as ws:
                    self.ws = ws
                    self.connections += 1
                    await self._session(ws)
                    attempt = 0
            except ConnectionClosed as exc:
                self.closes[exc.rcvd.code if exc.rcvd else 1006] += 1
            except InvalidStatus as exc:
                self.closes[exc.response.status_code] += 1
            except (OSError, InvalidHandshake, TimeoutError):
                self.closes["refused"] += 1
            finally:
                self.ws = None
                self.joined.clear()
            if not self.running:
                return
            self.url_index += 1  # the next replica (the load balancer's choice)
            await asyncio.sleep(backoff(attempt))
            attempt += 1

    @staticmethod
    async def _socket(url: str) -> socket.socket:
        host, port = url.removeprefix("ws://").rsplit(":", 1)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        return sock

    async def _session(self, ws: ClientConnection) -> None:
        ready = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ready["type"] == "ready", ready
        # From the newest message seen; after a first join, from the start of
        # the window if nothing was seen yet (it may have been said meanwhile).
        since = self.last_id or ("0-0" if self.connections > 1 else None)
        self._since = since
        await ws.send(json.dumps({"type": "join", "room": self.room, "since": since}))
        sender = asyncio.create_task(self._send_loop(ws))
        try:
            async for raw in ws:
                self._on_frame(json.loads(raw))
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        self.closes[ws.close_code] += 1

    def _on_frame(self, frame: dict[str, Any]) -> None:
        match frame.get("type"):
            case "joined":
                self.joined.set()
                if frame.get("recovered") is False and self._since is not None:
                    self.gaps.append([self._since, None])
                for client_id in self.outbox:  # resend what is in flight
                    self.outbox[client_id] = 0.0
            case "message":
                if self.gaps and self.gaps[-1][1] is None:
                    self.gaps[-1][1] = frame["id"]
                self.received[frame["id"]] += 1
                self.last_id = frame["id"]
            case "ack":
                self.acked[frame["client_id"]] = frame["id"]
                self.outbox.pop(frame["client_id"], None)
            case "rate_limited" | "error" if "client_id" in frame:
                if frame["client_id"] in self.outbox:
                    self.outbox[frame["client_id"]] = 0.0  # retried by the send loop

    async def _send_loop(self, ws: ClientConnection) -> None:
        await self.joined.wait()
        interval = 1 / self.rate if self.rate else 0.2
        while True:
            now = time.monotonic()
            for client_id, sent_at in list(self.outbox.items()):
                if now - sent_at > RESEND_AFTER_S:
                    self.outbox[client_id] = now
                    await ws.send(self._message(client_id))
            if self.rate and self.sending:
                client_id = f"{self.name}-{self._sent}"
                self._sent += 1
                self.outbox[client_id] = now
                await ws.send(self._message(client_id))
            await asyncio.sleep(interval * (0.5 + random.random()))

    def _message(self, client_id: str) -> str:
        text = client_id + " " + "x" * self.padding if self.padding else client_id
        return json.dumps(
            {"type": "message", "room": self.room, "text": text, "client_id": client_id}
        )

    # -- for the tests -------------------------------------------------------------

    def pause_reading(self) -> None:
        """Stop reading from the socket (a client whose tab froze)."""
        if self.ws is not None:
            self.ws.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.ws is not None:
            self.ws.transport.resume_reading()


@dataclass
class Fleet:
    """Chatters running together, over the same replicas."""

    chatters: list[Chatter]
    tasks: list[asyncio.Task] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        settings: Settings,
        urls: list[str],
        *,
        senders: int,
        readers: int,
        rate: float,
        room: str,
        prefix: str = "chatter",
        padding: int = 0,
    ) -> Fleet:
        chatters = []
        for i in range(senders + readers):
            name = f"{prefix}{i}"
            chatters.append(
                Chatter(
                    name=name,
                    urls=urls,
                    token=issue_token(f"id-{name}", name, settings),
                    room=room,
                    rate=rate if i < senders else 0.0,
                    padding=padding,
                    url_index=i,  # spread over the replicas
                )
            )
        return cls(chatters)

    def start(self) -> None:
        self.tasks = [asyncio.create_task(c.run()) for c in self.chatters]

    async def joined(self, timeout: float = 30) -> None:
        """Wait until every chatter has joined, then let the senders send: a
        message said before a client first joined is not that client's."""
        await asyncio.wait_for(asyncio.gather(*(c.joined.wait() for c in self.chatters)), timeout)
        for chatter in self.chatters:
            chatter.sending = True

    def acked(self) -> dict[str, str]:
        return {cid: mid for c in self.chatters for cid, mid in c.acked.items()}

    async def settle(self, timeout: float = 30) -> None:
        """Stop new sends; wait until every send is acknowledged and every
        client has every acknowledged message (or the time is up)."""
        for chatter in self.chatters:
            chatter.sending = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            acked = set(self.acked().values())
            if not any(c.outbox for c in self.chatters) and all(
                acked <= c.received.keys() for c in self.chatters
            ):
                return
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        for chatter in self.chatters:
            chatter.running = False
            if chatter.ws is not None:
                await chatter.ws.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def stored_by_client_id(db, room: str) -> dict[str, list[str]]:
    """What MongoDB holds for the room: client_id -> the message ids stored with it."""
    stored: dict[str, list[str]] = {}
    for doc in db["messages"].find({"room": room}, {"client_id": 1, "id": 1}):
        message_id = doc.get("id") or doc["_id"]  # the stream id, whatever the key's shape
        stored.setdefault(doc.get("client_id"), []).append(message_id)
    return stored


def check_nothing_lost(fleet: Fleet, db, room: str) -> None:
    """Every message acknowledged to a sender is stored exactly once, and every
    live client got it or recovered it by resume."""
    acked = fleet.acked()
    assert acked, "nothing was acknowledged: the test sent nothing"
    stored = stored_by_client_id(db, room)
    missing = sorted(cid for cid in acked if cid not in stored)
    twice = sorted(cid for cid, ids in stored.items() if cid is not None and len(ids) > 1)
    wrong = sorted(cid for cid, mid in acked.items() if cid in stored and stored[cid] != [mid])
    assert not missing, f"{len(missing)} acknowledged messages not stored: {missing[:10]}"
    assert not twice, f"{len(twice)} messages stored more than once: {twice[:10]}"
    assert not wrong, f"stored under another id than acknowledged: {wrong[:10]}"
    unacked = [c.name for c in fleet.chatters if c.outbox]
    assert not unacked, f"sends never acknowledged by: {unacked[:10]}"
    ids = set(acked.values())
    for chatter in fleet.chatters:
        # What a resume told it to page from history is there: stored, above.
        gap = {i for i in ids - chatter.received.keys() if not _paged(chatter.gaps, i)}
        assert not gap, f"{chatter.name} never got {len(gap)} messages, e.g. {sorted(gap)[:5]}"


def _paged(gaps: list[list[str | None]], message_id: str) -> bool:
    """Whether `message_id` lies in a gap a resume left (after its `since`,
    before the first message received after it)."""
    key = parse_id(message_id)
    return any(
        parse_id(since) < key and (until is None or key < parse_id(until)) for since, until in gaps
    )
