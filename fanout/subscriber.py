"""The replica's one Redis pub/sub subscriber: it follows the channels of the
rooms with local members, the revocation channel and the membership channel,
and routes each message by its channel (a room's frames to the hub, its
presence changes to presence, a revocation notice to the revocation watch, a
membership notice to room access).

Redis pub/sub is at-most-once: after losing its Redis connection the
subscriber reconnects, resubscribes, replays from each room's resume window
what arrived after the newest id the hub had delivered there, and has the
revocation watch re-check everyone (notices sent meanwhile are gone).

On a Redis Cluster the rooms' channels are shard channels (SSUBSCRIBE): the
subscriber holds one connection per master that owns a subscribed room's slot
(the first also takes the global channels, which a cluster broadcasts to every
node). redis-py's cluster pub/sub re-routes shard channels by itself after a
failover or a slot migration, so a caller never learns that frames were lost
in between; here any lost node connection, MOVED reply or server-sent
`sunsubscribe` is a reconnect of the whole subscriber, with its replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from aurora.backends import redis_seeds, redis_unavailable
from aurora.errors import UnavailableError
from aurora.keyspace import MEMBERSHIP_CHANNEL, REVOCATIONS_CHANNEL, SINGLE, Layout
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
# ...and at most about this many deliveries (frames x local members) per
# step of the loop: a replica behind by 256 messages in a room of 1,000 held
# the loop for hundreds of milliseconds in one step (bench/loop_stalls.py).
MAX_STEP_DELIVERIES = 20_000
SUBSCRIBE_WAIT_S = 5  # how long a join waits for a reconnecting subscriber
GLOBAL_CHANNELS = (REVOCATIONS_CHANNEL, MEMBERSHIP_CHANNEL)


class TopologyChanged(Exception):
    """A node dropped one of our shard subscriptions (its slot moved)."""


class _Link:
    """One subscription connection: to the single Redis, or to one node."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self.pubsub = client.pubsub(ignore_subscribe_messages=False)
        self.reader: asyncio.Task | None = None
        # Shard channels we unsubscribed from whose confirmation is still to
        # come: ours, not a node's, even if the room is joined again meanwhile.
        self.leaving: Counter[str] = Counter()


class Subscriber:
    """The hub's `Channels`; `run(hub)` is its task."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        settings: Settings,
        revocations: RevocationWatch,
        access: RoomAccess,
        presence: Presence,
        *,
        layout: Layout = SINGLE,
    ) -> None:
        self._redis = client  # commands (resume window reads, cluster topology)
        self._settings = settings
        self._revocations = revocations
        self._access = access
        self._presence = presence
        self._layout = layout
        self._links: dict[str, _Link] = {}  # by node address ("" on a single Redis)
        self._failure: asyncio.Future | None = None  # a reader's error ends the connection
        self._connected = asyncio.Event()
        self._replaying = False  # readers wait for the replay after a connect
        self._hub: Hub | None = None  # set by run()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def subscribe(self, room: str) -> None:
        await asyncio.wait_for(self._connected.wait(), SUBSCRIBE_WAIT_S)
        channel = self._layout.room_channel(room)
        if not self._layout.cluster:
            await self._links[""].pubsub.subscribe(channel)
            return
        link = await self._link_for(channel)
        await link.pubsub.ssubscribe(channel)
        if not self._replaying:  # else `_connect` starts it after the replay
            self._start_reader(link)

    async def unsubscribe(self, room: str) -> None:
        if not self._links or not self.connected:
            return  # the resubscription after the reconnect leaves it out
        channel = self._layout.room_channel(room)
        try:
            with redis_unavailable():
                if self._layout.cluster:
                    link = self._links.get(self._node_of(channel))
                    if link is not None:
                        link.leaving[channel] += 1
                        await link.pubsub.sunsubscribe(channel)
                else:
                    await self._links[""].pubsub.unsubscribe(channel)
        except UnavailableError as exc:  # a resubscribe skips it anyway
            log.warning("unsubscribe failed", extra={"room": room, "error": str(exc.__cause__)})

    async def run(self, hub: Hub) -> None:
        """Forward what is published to the hub until cancelled. On a lost
        Redis connection: reconnect, resubscribe, replay what was missed."""
        self._hub = hub
        backoff = 0.1
        while True:
            try:
                with redis_unavailable():
                    self._failure = asyncio.get_running_loop().create_future()
                    await self._connect(hub)
                    backoff = 0.1
                    await self._failure  # raises what ended a reader
            except (UnavailableError, TopologyChanged) as exc:
                log.warning("redis subscriber lost a connection; reconnecting",
                            extra={"error": str(exc.__cause__ or exc),
                                   "retry_in_s": backoff})  # fmt: skip
            except Exception:
                # A bug or an unexpected message must not end fan-out for this
                # replica: restart the subscriber; the reconnect replays the gap.
                log.exception("redis subscriber failed; restarting it",
                              extra={"retry_in_s": backoff})  # fmt: skip
            self._connected.clear()
            await self._drop_links()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def close(self) -> None:
        self._connected.clear()
        await self._drop_links()

    async def _read(self, hub: Hub, link: _Link) -> None:
        """One link's reader: forwards until its connection fails, then hands
        the failure to `run` (which reconnects every link)."""
        try:
            with redis_unavailable():
                while True:
                    message = await link.pubsub.get_message(timeout=1.0)
                    await self._forward(hub, link, message)
                    # What is already buffered is read without suspending:
                    # let the loop run others between batches.
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if self._failure is not None and not self._failure.done():
                self._failure.set_exception(exc)

    async def _forward(self, hub: Hub, link: _Link, message: dict | None) -> None:
        """Route `message` and whatever else has already arrived; room frames
        are delivered grouped by room: under bursts each member gets several
        frames in one write (one system call), at no added latency (nothing
        waits for a batch)."""
        batch: dict[str, list[tuple[str, str]]] = {}
        count = deliveries = 0
        try:
            while message is not None:
                kind = message["type"]
                if kind == "message" and message["channel"] == REVOCATIONS_CHANNEL:
                    self._revocations.notice(message["data"])
                elif kind == "message" and message["channel"] == MEMBERSHIP_CHANNEL:
                    self._access.notice(message["data"])
                elif kind in ("message", "smessage"):
                    room = self._layout.room_of_channel(message["channel"])
                    message_id, _, frame = message["data"].partition(" ")
                    if message_id == EPHEMERAL_ID and frame.startswith(PRESENCE_FRAME):
                        self._presence.change(room, frame)  # coalesced there
                    else:
                        batch.setdefault(room, []).append((message_id, frame))
                        deliveries += hub.member_count(room)
                    count += 1
                elif kind == "sunsubscribe" and message["channel"] in link.leaving:
                    # Ours (a leave), even if the room was joined again since.
                    link.leaving[message["channel"]] -= 1
                    link.leaving += Counter()  # drops the channel at zero
                elif kind == "sunsubscribe" and self._still_wanted(hub, message["channel"]):
                    # A node drops shard subscriptions of a slot it gave away.
                    raise TopologyChanged(f"{message['channel']} moved to another node")
                if count >= MAX_BATCH or deliveries >= MAX_STEP_DELIVERIES:
                    break
                message = await link.pubsub.get_message(timeout=0)
        finally:  # even if the connection dropped mid-batch: what was read goes out
            for room, items in batch.items():
                hub.deliver_many(room, items)

    def _still_wanted(self, hub: Hub, channel: str) -> bool:
        return self._layout.room_of_channel(channel) in set(hub.rooms())

    async def _connect(self, hub: Hub) -> None:
        channels = [self._layout.room_channel(room) for room in hub.rooms()]
        if not self._layout.cluster:
            link = self._start_link("", self._settings.redis_url)
            await link.pubsub.subscribe(*GLOBAL_CHANNELS, *channels)
        else:
            # The slot map as it is now: after a failover the promoted
            # replica owns what its master had.
            await self._redis.nodes_manager.initialize()
            first = self._redis.get_primaries()[0]
            link = await self._link_for(None, node=first)
            await link.pubsub.subscribe(*GLOBAL_CHANNELS)
            # SSUBSCRIBE takes several channels only within one slot.
            by_slot: dict[int, list[str]] = {}
            for channel in channels:
                by_slot.setdefault(self._redis.keyslot(channel), []).append(channel)
            for group in by_slot.values():
                await (await self._link_for(group[0])).pubsub.ssubscribe(*group)
        self._replaying = True
        self._connected.set()
        # Notices published while disconnected are gone: re-check everyone.
        self._revocations.check_all_soon()
        self._access.check_all_soon()
        try:
            await self._replay(hub)
        finally:
            self._replaying = False
        # Only now: a live frame delivered during the replay would make the hub
        # drop the older frames the replay then brings as already delivered.
        # What was published meanwhile waits on the links, read in order next.
        for link in self._links.values():
            self._start_reader(link)

    def _node_of(self, channel: str) -> str:
        return self._redis.get_node_from_key(channel).name

    async def _link_for(self, channel: str | None, *, node=None) -> _Link:
        """The link to the node owning `channel`'s slot, opened if needed."""
        node = node or self._redis.get_node_from_key(channel)
        link = self._links.get(node.name)
        if link is None:
            seed = urlsplit(redis_seeds(self._settings.redis_url)[0])
            auth = seed.netloc.rpartition("@")[0]
            netloc = (auth + "@" if auth else "") + f"{node.host}:{node.port}"
            link = self._start_link(node.name, urlunsplit(seed._replace(netloc=netloc)))
        return link

    def _start_link(self, name: str, url: str) -> _Link:
        # A client of its own, with no silent retries: a reconnect must be
        # noticed here, because it needs a replay.
        client = redis.asyncio.Redis.from_url(
            url,
            decode_responses=True,
            # Anyone with access can publish any bytes: they must not kill the subscriber.
            encoding_errors="replace",
            socket_connect_timeout=2,
            health_check_interval=15,
            retry=Retry(NoBackoff(), 0),
        )
        link = self._links[name] = _Link(client)
        return link

    def _start_reader(self, link: _Link) -> None:
        """Once the link has a subscription (redis-py reads none before)."""
        if link.reader is None:
            link.reader = asyncio.create_task(self._read(self._hub, link))

    async def _replay(self, hub: Hub) -> None:
        """Deliver what each room got while this replica was not subscribed."""
        for room, since in hub.resume_points().items():
            missed = await recent(
                self._redis,
                room,
                since,
                window=self._settings.resume_window,
                layout=self._layout,
            )
            if not missed.complete:
                log.warning("resume window too short after reconnect", extra={"room": room})
            if missed.frames:
                hub.deliver_many(room, missed.frames)

    async def _drop_links(self) -> None:
        links, self._links = list(self._links.values()), {}
        for link in links:
            if link.reader is not None:
                link.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await link.reader
            # A broken connection may fail to close: it is dropped either way.
            with contextlib.suppress(UnavailableError), redis_unavailable():
                await link.pubsub.aclose()
                await link.client.aclose()
