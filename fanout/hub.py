"""The local connection registry and the one Redis subscriber of this replica.

A replica subscribes only to the channels of rooms its clients are in (one
channel per room). Each published frame is framed once, with the WebSocket
library's own encoder, and the same bytes are written to every local member's
transport: nobody waits for the slowest client, and a client whose send
buffer goes over the limit is closed with 4008. The members written to are
kept up to date by the connections themselves (`fanout.connection`), so a
broadcast is one write per member and nothing else.

Redis pub/sub is at-most-once: after losing its Redis connection the hub
reconnects, resubscribes, and replays from each room's resume window what
arrived after the newest id it had delivered there.

The same subscriber receives revocation notices and hands them to the
replica's `RevocationWatch` (which re-checks everyone after a reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from websockets.frames import Frame, Opcode
from websockets.protocol import State

from aurora.keyspace import REVOCATIONS_CHANNEL, room_channel, room_of_channel
from aurora.sending import EPHEMERAL_ID, recent
from aurora.stream import parse_id
from fanout.protocol import CLOSE_TOO_SLOW, joined_frame

if TYPE_CHECKING:
    import redis.asyncio
    from websockets.asyncio.server import ServerConnection

    from aurora.settings import Settings
    from fanout.metrics import Metrics
    from fanout.revocation import RevocationWatch

log = logging.getLogger("aurora.fanout")

MAX_BATCH = 256  # published frames forwarded in one go


def encode(frame: str) -> bytes:
    """A server-to-client text frame (unmasked), serialized once."""
    return Frame(Opcode.TEXT, frame.encode()).serialize(mask=False)


class Hub:
    def __init__(
        self,
        client: redis.asyncio.Redis,
        settings: Settings,
        metrics: Metrics,
        revocations: RevocationWatch,
    ) -> None:
        self._redis = client  # commands (resume window reads)
        self._settings = settings
        self._metrics = metrics
        self._revocations = revocations
        self._pubsub: redis.asyncio.client.PubSub | None = None
        self._connected = asyncio.Event()
        self._rooms: dict[str, set[ServerConnection]] = {}
        # The same membership by connection: leaving everything on disconnect
        # costs the connection's rooms, not every room of the replica.
        self._joined: dict[ServerConnection, set[str]] = {}
        # The members a broadcast is written to: open, within their send-buffer
        # limit. FanoutConnection takes itself out (forget / too_slow) the moment
        # either stops being true, so a broadcast checks nobody.
        self._writers: dict[str, dict[ServerConnection, asyncio.Transport]] = {}
        # Connections joining a room: live frames wait here while their replay is read.
        self._pending: dict[str, dict[ServerConnection, list[tuple[str, str]]]] = {}
        self._last_id: dict[str, tuple[int, int]] = {}  # newest id delivered per room
        self._slow: set[ServerConnection] = set()  # being closed with 4008

    # -- membership ------------------------------------------------------------------

    def rooms_of(self, connection: ServerConnection) -> list[str]:
        return list(self._joined.get(connection, ()))

    def is_member(self, connection: ServerConnection, room: str) -> bool:
        return connection in self._rooms.get(room, ())

    async def join(
        self, connection: ServerConnection, room: str, since: str | None, *, announce: bool = True
    ) -> None:
        """Subscribe (if first here), write `joined`, then what the client missed
        since `since`, then live frames: no gap, no duplicate, in id order.
        `announce=False` (v0 clients) writes no `joined` frame."""
        pending = self._pending.setdefault(room, {})
        pending[connection] = []
        try:
            await self._subscribe(room)
            missed = await recent(self._redis, room, since, window=self._settings.resume_window)
        except BaseException:
            self._forget_pending(room, connection)
            raise
        # From here on nothing awaits: the replay and the buffered live frames
        # are written in one go, before any later live frame.
        buffered = pending.pop(connection, [])
        self._forget_pending(room, connection)
        if connection.protocol.state is not State.OPEN:
            return
        # The replica's own resume point for this room, should the subscriber
        # drop: the newest id in the window, or (0, 0) when the window is empty
        # (then everything it later holds is newer than what anyone here saw).
        self._last_id.setdefault(
            room, parse_id(missed.newest) if missed.newest is not None else (0, 0)
        )
        frames = missed.frames
        if announce:
            self._write(
                connection, joined_frame(room, recovered=missed.complete, missed=len(frames))
            )
        newest = parse_id(since) if since is not None else (0, 0)
        for message_id, frame in frames:
            self._write(connection, frame)
            newest = max(newest, parse_id(message_id))
        for message_id, frame in buffered:
            if message_id == EPHEMERAL_ID or parse_id(message_id) > newest:
                self._write(connection, frame)
        self._rooms.setdefault(room, set()).add(connection)
        self._joined.setdefault(connection, set()).add(room)
        if connection.protocol.state is State.OPEN and connection not in self._slow:
            self._writers.setdefault(room, {})[connection] = connection.transport

    async def leave(self, connection: ServerConnection, room: str) -> None:
        members = self._rooms.get(room)
        if members is None or connection not in members:
            return
        members.discard(connection)
        self._stop_writing(connection, room)
        rooms = self._joined[connection]
        rooms.discard(room)
        if not rooms:
            del self._joined[connection]
        if not members and not self._pending.get(room):
            del self._rooms[room]
            self._last_id.pop(room, None)
            if self._pubsub is not None and self._connected.is_set():
                import redis

                try:
                    await self._pubsub.unsubscribe(room_channel(room))
                except (redis.RedisError, OSError) as exc:  # a resubscribe skips it anyway
                    log.warning("unsubscribe failed", extra={"room": room, "error": str(exc)})

    async def leave_all(self, connection: ServerConnection) -> None:
        for room in self.rooms_of(connection):
            await self.leave(connection, room)

    def forget(self, connection: ServerConnection) -> None:
        """No more broadcasts to `connection` (its closing handshake started or
        it is gone); its rooms are left by the session's `leave_all`."""
        for room in self._joined.get(connection, ()):
            self._stop_writing(connection, room)

    def too_slow(self, connection: ServerConnection) -> None:
        """Its send buffer went over the limit: no more broadcasts, close 4008."""
        self.forget(connection)
        self._close_slow(connection)

    def _stop_writing(self, connection: ServerConnection, room: str) -> None:
        writers = self._writers.get(room)
        if writers is not None and writers.pop(connection, None) is not None and not writers:
            del self._writers[room]

    def _forget_pending(self, room: str, connection: ServerConnection) -> None:
        pending = self._pending.get(room)
        if pending is not None:
            pending.pop(connection, None)
            if not pending:
                del self._pending[room]

    async def _subscribe(self, room: str) -> None:
        if room in self._rooms and self._connected.is_set():
            return  # already subscribed
        await asyncio.wait_for(self._connected.wait(), 5)
        await self._pubsub.subscribe(room_channel(room))

    # -- the subscriber --------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._connected.is_set()

    async def run(self) -> None:
        """Forward published frames to local members until cancelled. On a lost
        Redis connection: reconnect, resubscribe, replay what was missed."""
        import redis

        backoff = 0.1
        while True:
            try:
                await self._connect()
                backoff = 0.1
                while True:
                    await self._forward(await self._pubsub.get_message(timeout=1.0))
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                log.warning("redis subscriber lost its connection; reconnecting",
                            extra={"error": str(exc), "retry_in_s": backoff})  # fmt: skip
            except Exception:
                # A bug or an unexpected message must not end fan-out for this
                # replica: restart the subscriber; the reconnect replays the gap.
                log.exception("redis subscriber failed; restarting it",
                              extra={"retry_in_s": backoff})  # fmt: skip
            self._connected.clear()
            await self._drop_pubsub()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _forward(self, message: dict | None) -> None:
        """Deliver `message` and whatever else has already arrived, grouped by
        room: under bursts each member gets several frames in one write (one
        system call), at no added latency (nothing waits for a batch)."""
        batch: dict[str, list[tuple[str, str]]] = {}
        count = 0
        try:
            while message is not None:
                if message["type"] == "message" and message["channel"] == REVOCATIONS_CHANNEL:
                    self._revocations.notice(message["data"])
                elif message["type"] == "message":
                    room = room_of_channel(message["channel"])
                    message_id, _, frame = message["data"].partition(" ")
                    batch.setdefault(room, []).append((message_id, frame))
                    count += 1
                if count >= MAX_BATCH:
                    break
                message = await self._pubsub.get_message(timeout=0)
        finally:  # even if the connection dropped mid-batch: what was read goes out
            for room, items in batch.items():
                self.deliver_many(room, items)

    async def _connect(self) -> None:
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

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
        await self._pubsub.subscribe(REVOCATIONS_CHANNEL, *(room_channel(r) for r in self._rooms))
        self._connected.set()
        # Revocation notices published while disconnected are gone: re-check everyone.
        self._revocations.check_all_soon()
        if self._last_id:
            await self._replay()

    async def _replay(self) -> None:
        """Deliver what each room got while this replica was not subscribed."""
        for room, newest in list(self._last_id.items()):
            since = f"{newest[0]}-{newest[1]}"
            missed = await recent(self._redis, room, since, window=self._settings.resume_window)
            if not missed.complete:
                log.warning("resume window too short after reconnect", extra={"room": room})
            if missed.frames:
                self.deliver_many(room, missed.frames)

    async def _drop_pubsub(self) -> None:
        if self._pubsub is not None:
            import redis

            with contextlib.suppress(redis.RedisError, OSError):
                await self._pubsub.aclose()
                await self._client.aclose()
            self._pubsub = None

    async def close(self) -> None:
        self._connected.clear()
        await self._drop_pubsub()

    # -- delivery ----------------------------------------------------------------------

    def deliver(self, room: str, message_id: str, frame: str) -> None:
        """Write one published frame to every local member of the room."""
        self.deliver_many(room, [(message_id, frame)])

    def deliver_many(self, room: str, items: list[tuple[str, str]]) -> None:
        """Write published frames, in order, to every local member of the room:
        framed once, one write per member, no per-member checks (the members
        that may not be written to are not in `_writers`)."""
        newest = self._last_id.get(room)
        fresh = []
        for message_id, frame in items:
            if message_id != EPHEMERAL_ID:
                key = parse_id(message_id)
                if newest is not None and key <= newest:
                    continue  # already delivered (a replay overlapping live frames)
                newest = key
            fresh.append((message_id, frame))
        if not fresh:
            return
        if newest is not None:
            self._last_id[room] = newest
        for waiting in self._pending.get(room, {}).values():
            waiting.extend(fresh)
        if self._writers.get(room):
            self._metrics.messages_out.inc(self._write_to_members(room, fresh))

    def _write_to_members(self, room: str, fresh: list[tuple[str, str]]) -> int:
        """The hot loop: frame once, one write per member; returns the frames
        written. (bench/stock_fanout.py swaps in websockets.broadcast() here.)"""
        data = b"".join(encode(frame) for _, frame in fresh)
        # A copy: a write that takes a member over its limit takes it out.
        transports = tuple(self._writers[room].values())
        for transport in transports:
            transport.write(data)
        return len(transports) * len(fresh)

    def _write(self, connection: ServerConnection, frame: str) -> None:
        if connection.protocol.state is State.OPEN:
            connection.transport.write(encode(frame))

    def _close_slow(self, connection: ServerConnection) -> None:
        if connection in self._slow:
            return
        self._slow.add(connection)
        self._metrics.slow_disconnects.inc()
        task = asyncio.ensure_future(connection.close(CLOSE_TOO_SLOW, "too slow"))
        task.add_done_callback(lambda _: self._slow.discard(connection))
