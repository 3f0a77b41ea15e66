"""The replica's local connection registry and its write path.

A connection joins rooms here; the hub writes each published frame, framed
once with the WebSocket library's own encoder, as the same bytes to every
local member's transport: nobody waits for the slowest client, and a client
whose send buffer goes over the limit is closed with 4008. The members
written to are kept up to date by the connections themselves
(`fanout.connection`), so a broadcast is one write per member and nothing
else. What Redis publishes reaches `deliver_many` through the replica's
subscriber (`fanout.subscriber`), which the hub asks, through `Channels`, to
follow a room's channel while the room has local members.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from websockets.frames import Frame, Opcode
from websockets.protocol import State

from aurora.keyspace import SINGLE, Layout
from aurora.sending import EPHEMERAL_ID, recent
from aurora.stream import parse_id
from fanout.protocol import CLOSE_TOO_SLOW, joined_frame

if TYPE_CHECKING:
    import redis.asyncio
    from websockets.asyncio.server import ServerConnection

    from aurora.settings import Settings
    from fanout.metrics import Metrics


# Presence changes written to a room's members at most this often, batched.
PRESENCE_BATCH_S = 0.05


def encode(frame: str) -> bytes:
    """A server-to-client text frame (unmasked), serialized once."""
    return Frame(Opcode.TEXT, frame.encode()).serialize(mask=False)


class Channels(Protocol):
    """The replica's pub/sub subscriber as the hub uses it: a room's channel
    is followed before its first member's replay is read, and dropped when
    its last member leaves."""

    @property
    def connected(self) -> bool: ...

    async def subscribe(self, room: str) -> None: ...

    async def unsubscribe(self, room: str) -> None: ...


class RoomPresence(Protocol):
    """Presence as the hub tells it who is in which room (`fanout.presence`)."""

    def enter(self, connection: ServerConnection, room: str) -> None: ...

    def exit(self, connection: ServerConnection, room: str) -> None: ...


class Hub:
    def __init__(
        self,
        client: redis.asyncio.Redis,
        settings: Settings,
        metrics: Metrics,
        channels: Channels,
        layout: Layout = SINGLE,
    ) -> None:
        self._redis = client  # commands (resume window reads)
        self._settings = settings
        self._layout = layout
        self._metrics = metrics
        self._channels = channels
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
        # Clients of the original protocol (joined without `joined`): no presence frames.
        self._quiet: set[ServerConnection] = set()
        # Joins waiting for their presence snapshot: changes wait here, so the
        # snapshot comes first and they after it (`write_snapshot`).
        self._before_snapshot: dict[tuple[ServerConnection, str], list[bytes]] = {}
        self.presence: RoomPresence | None = None  # set by the server
        # Presence changes not written yet, per room, and when the last batch went.
        self._presence_out: dict[str, list[tuple[str, bytes]]] = {}
        self._presence_flush_due = False
        self._presence_flushed = 0.0

    # -- membership ------------------------------------------------------------------

    def tables(self) -> list[dict | set]:
        """What grows with the connections (`memory.compact`), a room's
        members included: a room that had thousands keeps their table."""
        return [
            self._rooms, self._joined, self._writers, self._pending, self._last_id, self._slow,
            self._quiet, self._before_snapshot, *self._rooms.values(), *self._writers.values(),
        ]  # fmt: skip

    def rooms_of(self, connection: ServerConnection) -> list[str]:
        return list(self._joined.get(connection, ()))

    def rooms(self) -> list[str]:
        """The rooms with local members (their channels are followed)."""
        return list(self._rooms)

    def resume_points(self) -> dict[str, str]:
        """The newest id delivered in each room, for a replay after the
        subscriber lost Redis."""
        return {room: f"{ms}-{seq}" for room, (ms, seq) in self._last_id.items()}

    def members(self, room: str) -> list[ServerConnection]:
        """The local connections in the room (joined, replay written)."""
        return list(self._rooms.get(room, ()))

    def member_count(self, room: str) -> int:
        return len(self._rooms.get(room, ()))

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
            if room not in self._rooms or not self._channels.connected:
                await self._channels.subscribe(room)
            missed = await recent(
                self._redis, room, since, window=self._settings.resume_window, layout=self._layout
            )
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
        replay, complete = self._fit_replay(connection, missed.frames)
        if announce:
            self._write(
                connection,
                joined_frame(room, recovered=missed.complete and complete, missed=len(replay)),
            )
        if connection.protocol.state is State.OPEN:
            connection.transport.write(b"".join(replay))
        newest = parse_id(since) if since is not None else (0, 0)
        for message_id, _ in missed.frames:
            newest = max(newest, parse_id(message_id))
        for message_id, frame in buffered:
            if message_id == EPHEMERAL_ID or parse_id(message_id) > newest:
                self._write(connection, frame)
        self._rooms.setdefault(room, set()).add(connection)
        self._joined.setdefault(connection, set()).add(room)
        if connection.protocol.state is State.OPEN and connection not in self._slow:
            self._writers.setdefault(room, {})[connection] = connection.transport
        if not announce:
            self._quiet.add(connection)
        if self.presence is not None:
            self.presence.enter(connection, room)

    def _fit_replay(
        self, connection: ServerConnection, frames: list[tuple[str, str]]
    ) -> tuple[list[bytes], bool]:
        """The newest of `frames` that fit in half the connection's send-buffer
        limit (what it has queued already counted), encoded, oldest first;
        and whether that is all of them. A replay of the whole resume window
        (500 messages of up to 16 KiB) written at once to a client that is
        not reading would go far past the limit: the client gets what fits
        with `recovered: false` and pages the rest from the history API."""
        room = self._settings.max_send_buffer_bytes // 2
        if connection.transport is not None:
            room -= connection.transport.get_write_buffer_size()
        fitted: list[bytes] = []
        for _, frame in reversed(frames):
            data = encode(frame)
            room -= len(data)
            if room < 0:
                return fitted[::-1], False
            fitted.append(data)
        return fitted[::-1], True

    async def leave(self, connection: ServerConnection, room: str) -> None:
        members = self._rooms.get(room)
        if members is None or connection not in members:
            return
        members.discard(connection)
        self._stop_writing(connection, room)
        if self.presence is not None:
            self.presence.exit(connection, room)
        self._before_snapshot.pop((connection, room), None)
        rooms = self._joined[connection]
        rooms.discard(room)
        if not rooms:
            del self._joined[connection]
            self._quiet.discard(connection)
        if not members and not self._pending.get(room):
            del self._rooms[room]
            self._last_id.pop(room, None)
            await self._channels.unsubscribe(room)

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

    def stop_writing(self, connection: ServerConnection, room: str) -> None:
        """No more broadcasts of this room to this connection, from now on."""
        self._stop_writing(connection, room)

    def write(self, connection: ServerConnection, frame: str) -> None:
        """One frame to one connection, now, in order with broadcasts."""
        self._write(connection, frame)

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

    # -- delivery ----------------------------------------------------------------------

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

    def write_presence(self, room: str, user_id: str, frame: str) -> None:
        """A change of `user_id`'s presence, for the room's other members (not
        clients of the original protocol, which never had them). Written in
        batches: a burst of joins into a big room is otherwise one write per
        change per member (1,000 joins into one room: 500,000 writes, ~5 s of
        the loop); batched, each member gets one write per batch."""
        if not self._writers.get(room):
            return
        batch = self._presence_out.setdefault(room, [])
        batch.append((user_id, encode(frame)))
        if not self._presence_flush_due:
            # The first change after a quiet spell goes out on this turn of
            # the loop; later ones wait for the next batch, PRESENCE_BATCH_S on.
            self._presence_flush_due = True
            loop = asyncio.get_running_loop()
            loop.call_at(
                max(loop.time(), self._presence_flushed + PRESENCE_BATCH_S), self._flush_presence
            )

    def _flush_presence(self) -> None:
        batches, self._presence_out = self._presence_out, {}
        self._presence_flush_due = False
        self._presence_flushed = asyncio.get_running_loop().time()
        waiting = self._before_snapshot
        for room, changes in batches.items():
            writers = self._writers.get(room)
            if not writers:
                continue
            data = b"".join(frame for _, frame in changes)
            about = {user_id for user_id, _ in changes}
            for connection, transport in tuple(writers.items()):
                if connection in self._quiet:
                    continue
                user_id = connection.claims.user_id
                out = data
                if user_id in about:  # nobody is told about themselves
                    out = b"".join(frame for who, frame in changes if who != user_id)
                    if not out:
                        continue
                if waiting and (connection, room) in waiting:
                    waiting[(connection, room)].append(out)
                else:
                    transport.write(out)

    def await_snapshot(self, connection: ServerConnection, room: str) -> None:
        """Presence changes for this connection in this room wait for its snapshot."""
        self._before_snapshot[(connection, room)] = []

    def write_snapshot(self, connection: ServerConnection, room: str, frame: str | None) -> None:
        """The snapshot (if it could be read), then the changes that waited."""
        waited = self._before_snapshot.pop((connection, room), [])
        if not self.is_member(connection, room) or connection.protocol.state is not State.OPEN:
            return
        if frame is not None:
            self._write(connection, frame)
        for data in waited:
            connection.transport.write(data)

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
