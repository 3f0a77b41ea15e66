"""The replica's one Redis pub/sub subscriber: it follows the channels of the
rooms with local members, the revocation channel and the membership channel,
and routes each message by its channel (a room's frames to the hub, its
presence changes to presence, a revocation notice to the revocation watch, a
membership notice to room access).

Redis pub/sub is at-most-once: after losing its Redis connection the
subscriber reconnects, resubscribes, replays from each room's resume window
what arrived after the newest id the hub had delivered there, and has the
revocation watch re-check everyone (notices sent meanwhile are gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from aurora.backends import redis_unavailable
from aurora.errors import UnavailableError
from aurora.keyspace import MEMBERSHIP_CHANNEL, REVOCATIONS_CHANNEL, room_channel, room_of_channel
from aurora.presence import FRAME_PREFIX as PRESENCE_FRAME
from aurora.sending import EPHEMERAL_ID, recent

if TYPE_CHECKING:
    from aurora.settings import Settings
    from fanout.access import RoomAccess
    from fanout.hub import Hub
    from fanout.presence import Presence
    from fanout.revocation import RevocationWatch

log = logging.getLogger("aurora.fanout")

MAX_BATCH = 256  # published frames forwarded in one go
SUBSCRIBE_WAIT_S = 5  # how long a join waits for a reconnecting subscriber


class Subscriber:
    """The hub's `Channels`; `run(hub)` is its task."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        settings: Settings,
        revocations: RevocationWatch,
        access: RoomAccess,
        presence: Presence,
    ) -> None:
        self._redis = client  # commands (resume window reads)
        self._settings = settings
        self._revocations = revocations
        self._access = access
        self._presence = presence
        self._client: redis.asyncio.Redis | None = None  # its own, see _connect
        self._pubsub: redis.asyncio.client.PubSub | None = None
        self._connected = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def subscribe(self, room: str) -> None:
        await asyncio.wait_for(self._connected.wait(), SUBSCRIBE_WAIT_S)
        await self._pubsub.subscribe(room_channel(room))

    async def unsubscribe(self, room: str) -> None:
        if self._pubsub is None or not self.connected:
            return  # the resubscription after the reconnect leaves it out
        try:
            with redis_unavailable():
                await self._pubsub.unsubscribe(room_channel(room))
        except UnavailableError as exc:  # a resubscribe skips it anyway
            log.warning("unsubscribe failed", extra={"room": room, "error": str(exc.__cause__)})

    async def run(self, hub: Hub) -> None:
        """Forward what is published to the hub until cancelled. On a lost
        Redis connection: reconnect, resubscribe, replay what was missed."""
        backoff = 0.1
        while True:
            try:
                with redis_unavailable():
                    await self._connect(hub)
                    backoff = 0.1
                    while True:
                        await self._forward(hub, await self._pubsub.get_message(timeout=1.0))
            except UnavailableError as exc:
                log.warning("redis subscriber lost its connection; reconnecting",
                            extra={"error": str(exc.__cause__), "retry_in_s": backoff})  # fmt: skip
            except Exception:
                # A bug or an unexpected message must not end fan-out for this
                # replica: restart the subscriber; the reconnect replays the gap.
                log.exception("redis subscriber failed; restarting it",
                              extra={"retry_in_s": backoff})  # fmt: skip
            self._connected.clear()
            await self._drop_pubsub()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def close(self) -> None:
        self._connected.clear()
        await self._drop_pubsub()

    async def _forward(self, hub: Hub, message: dict | None) -> None:
        """Route `message` and whatever else has already arrived; room frames
        are delivered grouped by room: under bursts each member gets several
        frames in one write (one system call), at no added latency (nothing
        waits for a batch)."""
        batch: dict[str, list[tuple[str, str]]] = {}
        count = 0
        try:
            while message is not None:
                if message["type"] == "message" and message["channel"] == REVOCATIONS_CHANNEL:
                    self._revocations.notice(message["data"])
                elif message["type"] == "message" and message["channel"] == MEMBERSHIP_CHANNEL:
                    self._access.notice(message["data"])
                elif message["type"] == "message":
                    room = room_of_channel(message["channel"])
                    message_id, _, frame = message["data"].partition(" ")
                    if message_id == EPHEMERAL_ID and frame.startswith(PRESENCE_FRAME):
                        self._presence.change(room, frame)  # coalesced there
                    else:
                        batch.setdefault(room, []).append((message_id, frame))
                    count += 1
                if count >= MAX_BATCH:
                    break
                message = await self._pubsub.get_message(timeout=0)
        finally:  # even if the connection dropped mid-batch: what was read goes out
            for room, items in batch.items():
                hub.deliver_many(room, items)

    async def _connect(self, hub: Hub) -> None:
        # A client of its own, with no silent retries: a reconnect must be
        # noticed here, because it needs a replay.
        self._client = redis.asyncio.Redis.from_url(
            self._settings.redis_url,
            decode_responses=True,
            # Anyone with access can publish any bytes: they must not kill the subscriber.
            encoding_errors="replace",
            socket_connect_timeout=2,
            health_check_interval=15,
            retry=Retry(NoBackoff(), 0),
        )
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(
            REVOCATIONS_CHANNEL, MEMBERSHIP_CHANNEL, *map(room_channel, hub.rooms())
        )
        self._connected.set()
        # Notices published while disconnected are gone: re-check everyone.
        self._revocations.check_all_soon()
        self._access.check_all_soon()
        await self._replay(hub)

    async def _replay(self, hub: Hub) -> None:
        """Deliver what each room got while this replica was not subscribed."""
        for room, since in hub.resume_points().items():
            missed = await recent(self._redis, room, since, window=self._settings.resume_window)
            if not missed.complete:
                log.warning("resume window too short after reconnect", extra={"room": room})
            if missed.frames:
                hub.deliver_many(room, missed.frames)

    async def _drop_pubsub(self) -> None:
        if self._pubsub is not None:
            # A broken connection may fail to close: it is dropped either way.
            with contextlib.suppress(UnavailableError), redis_unavailable():
                await self._pubsub.aclose()
                await self._client.aclose()
            self._pubsub = None
