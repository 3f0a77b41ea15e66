"""One client connection after the handshake: authentication (if the token did
not come with the upgrade), the connection cap, then the receive loop that
turns each frame into one command and answers it. Bad input gets an `error`
frame and the connection stays; the server never crashes on a frame."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from aurora.backends import redis_unavailable
from aurora.changes import DELETE, EDIT, REACT, Change, Unchanged
from aurora.errors import AuroraError, AuthenticationError, RateLimitedError, UnavailableError
from aurora.sending import Accepted, Backpressure, Duplicate, RateLimited
from aurora.stream import parse_id
from fanout import protocol as p
from fanout.frame_limit import UNANSWERED_TYPES, FrameLimiter
from fanout.typing import TypingRelay

if TYPE_CHECKING:
    from aurora.tokens import Claims
    from fanout.connection import FanoutConnection
    from fanout.expiry import Entry
    from fanout.replica import Replica

log = logging.getLogger("aurora.fanout")

MAX_ROOMS_PER_CONNECTION = 100
_RETRY = "unavailable, retry"  # the close reason when Redis cannot admit a connection


class Session:
    # One per connection: slots keep it small at 10,000 connections.
    __slots__ = (
        "_cursors", "_expiry", "_frames", "_typing", "claims", "connection", "replica", "v0"
    )  # fmt: skip

    def __init__(self, replica: Replica, connection: FanoutConnection) -> None:
        self.replica = replica
        self.connection = connection
        self.claims: Claims | None = connection.claims
        # v0, the original protocol: token in the URL, no subprotocol; such
        # clients are put in `general` and get no v1-only frames.
        self.v0 = connection.subprotocol != p.SUBPROTOCOL
        self._expiry: Entry | None = None  # its place in the replica's TokenExpiry
        # The newest cursor this connection moved, per (room, kind): a stale
        # or repeated one is dropped here, without a round trip.
        self._cursors: dict[tuple[str, str], tuple[int, int]] | None = None
        self._frames = FrameLimiter(replica.settings)
        self._typing: TypingRelay | None = None  # made on the first `typing` frame

    async def run(self) -> None:
        replica, connection = self.replica, self.connection
        try:
            if self.claims is None and not await self._authenticate_first_frame():
                return
            member = f"{replica.id}:{connection.id}"
            if not await self._acquire(member):
                return
            try:
                replica.metrics.connections.inc()
                # Closed with 4001 if its token is revoked; told when its rooms change.
                replica.users.add(self)
                self._schedule_expiry()
                if self.v0:
                    if not await self._join_general():
                        return
                else:
                    await connection.send(p.ready_frame(self.claims.username, self.claims.user_id))
                while True:  # recv() rather than `async for`: one frame less per connection
                    raw = await connection.recv()
                    if self._frames.flooding():
                        replica.metrics.flood_disconnects.inc()
                        await connection.close(p.CLOSE_FLOOD, "too many frames")
                        return
                    reply = await self._on_frame(raw)
                    if reply is not None:
                        await connection.send(reply)
            finally:
                if self._typing is not None:
                    self._typing.close()
                replica.metrics.connections.dec()
                replica.users.discard(self)
                if self._expiry is not None:
                    replica.expiry.cancel(self._expiry)
                replica.limit.release(self.claims.user_id, member)  # in a batch, soon
                await replica.hub.leave_all(connection)
        except ConnectionClosed:
            pass

    # -- what the notices' handlers see (`fanout.users`) ------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.connection.protocol.state is State.OPEN

    async def close(self, code: int, reason: str) -> None:
        await self.connection.close(code, reason)

    def tell(self, frame: str) -> None:
        if not self.v0:  # an original-protocol client knows no such frames
            self.replica.hub.write(self.connection, frame)

    # -- before the receive loop -------------------------------------------------

    async def _authenticate_first_frame(self) -> bool:
        """No token came with the upgrade: the first frame must be `auth`."""
        connection = self.connection
        try:
            raw = await asyncio.wait_for(
                connection.recv(), self.replica.settings.auth_timeout_seconds
            )
        except TimeoutError:
            return await self._refuse(p.CLOSE_AUTH_FAILED, "authentication timeout", "timeout")
        try:
            command = p.parse_client_frame(raw, max_text_chars=0)
        except AuroraError:
            command = None
        if not isinstance(command, p.Auth):
            return await self._refuse(p.CLOSE_AUTH_FAILED, "authentication required", "no_auth")
        try:
            self.claims = await self.replica.authenticate(command.token)
        except AuthenticationError as exc:
            return await self._refuse(exc.close_code, exc.message, "token")
        except AuroraError as exc:  # the check itself failed (e.g. Redis): not the client's fault
            return await self._refuse(exc.close_code, _RETRY, "unavailable")
        self.v0 = False
        self.connection.claims = self.claims  # room access reads whose connection it is
        return True

    async def _acquire(self, member: str) -> bool:
        try:
            with redis_unavailable():
                if await self.replica.limit.acquire(self.claims.user_id, member):
                    return True
        except UnavailableError as exc:
            log.warning("connection cap unavailable", extra={"error": repr(exc.__cause__)})
            return await self._refuse(exc.close_code, _RETRY, "unavailable")
        return await self._refuse(
            p.CLOSE_TOO_MANY_CONNECTIONS, "too many connections for this user", "user_cap"
        )

    async def _join_general(self) -> bool:
        """v0 clients are in `general` from the start."""
        try:
            with redis_unavailable():
                await self.replica.hub.join(self.connection, p.DEFAULT_ROOM, None, announce=False)
        except UnavailableError as exc:
            return await self._refuse(exc.close_code, _RETRY, "unavailable")
        return True

    async def _refuse(self, code: int, reason: str, metric: str) -> bool:
        self.replica.metrics.rejected.labels(metric).inc()
        await self.connection.close(code, reason)
        return False

    def _schedule_expiry(self) -> None:
        """Close with 4001 when the token expires (a re-auth moves this)."""
        expiry = self.replica.expiry
        if self._expiry is not None:
            expiry.cancel(self._expiry)
        deadline = self.claims.expires_at + self.replica.settings.jwt_leeway_seconds
        self._expiry = expiry.add(self, deadline)

    # -- the receive loop --------------------------------------------------------

    async def _on_frame(self, raw: str | bytes) -> str | None:
        settings = self.replica.settings
        command = None
        try:
            with redis_unavailable("Not done: Redis is unreachable, retry"):
                try:
                    command = p.parse_client_frame(raw, max_text_chars=settings.max_text_chars)
                finally:  # a frame that does not parse counts too
                    frame_type = None if command is None else command.type
                    wait = self._frames.take(frame_type)
                if wait:
                    if frame_type in UNANSWERED_TYPES:
                        return None
                    raise RateLimitedError(wait, "Too many frames")
                if command is None:
                    return None
                return await self._dispatch(command)
        except RateLimitedError as exc:  # a limit: the connection stays, the client waits
            return p.rate_limited_frame(exc.retry_after_ms, client_id=_answering(command, raw))
        except AuroraError as exc:
            return p.error_frame(exc.code, exc.message, client_id=_answering(command, raw))

    async def _dispatch(self, command: p.ClientFrame) -> str | None:
        replica, connection, settings = self.replica, self.connection, self.replica.settings
        match command:
            case p.SendMessage():
                return await self._send(command)
            case p.Edit() | p.Delete() | p.React():
                return await self._change(command)
            case p.Read(type=kind, room=room, id=message_id):
                await self._move_cursor(kind, room, message_id)
                return None
            case p.Join(room=room, since=since):
                return await self._join(room, since)
            case p.Leave(room=room):
                await replica.hub.leave(connection, room)
                if self._typing is not None:
                    self._typing.forget(room)
                return p.left_frame(room)
            case p.Typing(room=room, typing=typing):
                if not (await replica.access.standing(self.claims, room)).may_post:
                    return p.error_frame("forbidden", f"You may not write to {room!r}")
                if not replica.hub.is_member(connection, room):
                    return p.error_frame("not_joined", f"Join {room!r} first")
                if self._typing is None:
                    self._typing = TypingRelay(
                        self._publish_typing, settings.typing_interval_ms, replica.lingering
                    )
                await self._typing.update(room, typing)
                return None
            case p.Ping():
                return p.PONG
            case p.Auth(token=token):
                return await self._reauthenticate(token)
        return None  # unreachable: parse_client_frame returns only the types above

    async def _publish_typing(self, room: str, typing: bool) -> None:
        frame = p.typing_frame(room, self.claims.username, self.claims.user_id, typing)
        with redis_unavailable():
            await self.replica.sender.publish_ephemeral(room, frame)

    async def _join(self, room: str, since: str | None) -> str | None:
        replica, connection = self.replica, self.connection
        before = replica.access.generation(room)
        standing = await replica.access.standing(self.claims, room)
        if not standing.may_read:
            return p.error_frame("forbidden", f"You may not join {room!r}")
        if replica.hub.is_member(connection, room):
            return p.joined_frame(room, recovered=True, missed=0)
        if len(replica.hub.rooms_of(connection)) >= MAX_ROOMS_PER_CONNECTION:
            return p.error_frame("too_many_rooms", "Leave a room first")
        await replica.access.record_join(self.claims, room, standing)
        replica.hub.await_snapshot(connection, room)
        snapshot = None
        try:
            await replica.hub.join(connection, room, since)  # writes `joined`, the replay
            if replica.access.generation(room) != before:
                # The room's membership changed while this join was on its way:
                # the re-check covers this connection too, now that it is in.
                replica.access.recheck_soon(room)
            with contextlib.suppress(UnavailableError):  # without it, the changes still come
                snapshot = p.presence_frame(await replica.presence.snapshot(room))
        finally:
            replica.hub.write_snapshot(connection, room, snapshot)
        return None

    async def _send(self, command: p.SendMessage) -> str | None:
        replica = self.replica
        if not (await replica.access.standing(self.claims, command.room)).may_post:
            return p.error_frame(
                "forbidden", f"You may not write to {command.room!r}", client_id=command.client_id
            )
        if not replica.hub.is_member(self.connection, command.room):
            return p.error_frame(
                "not_joined", f"Join {command.room!r} first", client_id=command.client_id
            )
        # The user's budget across all rooms first: it also bounds the S3
        # checks below, which cost a HEAD per attachment.
        over = await replica.budget.take(self.claims.user_id, _message_bytes(command))
        if over is not None:
            replica.metrics.rate_limited.inc()
            return p.rate_limited_frame(over.retry_after_ms, client_id=command.client_id)
        # Before the script: a refused attachment (or S3 out of reach) raises
        # an AuroraError, answered with an `error` frame; nothing is stored.
        attachments = await replica.attachments.verify(command.attachments, self.claims.user_id)
        started = time.perf_counter()
        outcome = await replica.sender.send(
            room=command.room,
            user_id=self.claims.user_id,
            username=self.claims.username,
            text=command.text,
            client_id=command.client_id,
            attachments=[a.model_dump() for a in attachments],
        )
        replica.metrics.send_latency.observe(time.perf_counter() - started)
        match outcome:
            case Accepted(id=message_id):
                replica.metrics.messages_in.inc()
                # After the send: a failure here leaves the file unlinkable
                # from this room (refused, never leaked); the message stands.
                with contextlib.suppress(AuroraError):
                    await replica.attachments.posted(command.room, attachments)
                if command.client_id is not None:
                    return p.ack_frame(command.client_id, message_id)
                return None  # the sender receives its own message through the room
            case Duplicate(id=message_id):
                return p.ack_frame(command.client_id, message_id, duplicate=True)
            case RateLimited(retry_after_ms=retry):
                replica.metrics.rate_limited.inc()
                return p.rate_limited_frame(retry, client_id=command.client_id)
            case Backpressure():
                return p.error_frame(
                    "backpressure",
                    "Not sent: message storage is behind, retry later",
                    client_id=command.client_id,
                )
        return None

    async def _change(self, command: p.Edit | p.Delete | p.React) -> str | None:
        """An edit, a delete or a reaction, checked against Redis only
        (`aurora.changes`); refusals raise and are answered with the
        command's `client_id`."""
        replica, claims = self.replica, self.claims
        change = _change_of(command)
        # Changes spend the sender's budget across all rooms too (then their
        # own per-room rate, in the change script).
        over = await replica.budget.take(claims.user_id, len((change.text or "").encode()))
        if over is not None:
            replica.metrics.rate_limited.inc()
            return p.rate_limited_frame(over.retry_after_ms, client_id=command.client_id)
        outcome, target = await replica.changer.change(
            change, user_id=claims.user_id, username=claims.username,
            standing=await replica.access.standing(claims, command.room),
        )  # fmt: skip
        match outcome:
            case Accepted(id=change_id):
                if change.kind == DELETE:
                    # The delete stands even if this fails; the link check then
                    # still finds the file posted in the room.
                    with contextlib.suppress(AuroraError):
                        await replica.attachments.withdrawn(command.room, target.attachment_urls)
                if command.client_id is not None:
                    return p.ack_frame(command.client_id, change_id)
                return None  # the change reaches the sender through the room
            case Unchanged():
                if command.client_id is not None:
                    return p.ack_frame(command.client_id, command.id, duplicate=True)
                return None
            case RateLimited(retry_after_ms=retry):
                replica.metrics.rate_limited.inc()
                return p.rate_limited_frame(retry, client_id=command.client_id)
            case Backpressure():
                return p.error_frame(
                    "backpressure", "Not done: message storage is behind, retry later",
                    client_id=command.client_id,
                )  # fmt: skip
        return None

    async def _move_cursor(self, kind: str, room: str, message_id: str) -> None:
        """`read` and `delivered` are never answered (so a client may send
        them between requests whose answers it matches in order), never rate
        limited: coalesced. A cursor at or behind this connection's last one
        is dropped here; one that cannot move (a room the user may not read,
        an id the window does not hold) is dropped too, and one that does not
        move the member's cursor writes nothing. A well-formed frame is
        answered by nothing but the `receipt` its move publishes."""
        replica = self.replica
        position = parse_id(message_id)
        sent = self._cursors = self._cursors or {}
        if position <= sent.get((room, kind), (-1, -1)):
            return
        try:
            if not (await replica.access.standing(self.claims, room)).may_read:
                return
            await replica.cursors.move(room, self.claims.user_id, self.claims.username,
                                       message_id, kind)  # fmt: skip
        except AuroraError:  # not_found, use_rest, unavailable: a later move catches up
            return
        if len(sent) >= MAX_ROOMS_PER_CONNECTION * 2:
            sent.clear()
        sent[(room, kind)] = position

    async def _reauthenticate(self, token: str) -> str:
        """A fresh token on an open connection extends it; another user's is refused."""
        try:
            claims = await self.replica.authenticate(token)
        except AuthenticationError as exc:
            await self.connection.close(p.CLOSE_AUTH_FAILED, exc.message)
            raise ConnectionClosed(None, None) from None
        # Any other AuroraError (unavailable) becomes an error frame; the session stays.
        if claims.user_id != self.claims.user_id:
            await self.connection.close(p.CLOSE_FORBIDDEN, "a connection cannot change user")
            raise ConnectionClosed(None, None) from None
        self.claims = self.connection.claims = claims
        self._schedule_expiry()
        return p.ready_frame(claims.username, claims.user_id)


def _change_of(command: p.Edit | p.Delete | p.React) -> Change:
    match command:
        case p.Edit(room=room, id=target, text=text):
            return Change(EDIT, room, target, text=text)
        case p.React(room=room, id=target, emoji=emoji, on=on):
            return Change(REACT, room, target, emoji=emoji, on=on)
    return Change(DELETE, command.room, command.id)


def _message_bytes(command: p.SendMessage) -> int:
    """What a send costs the byte budget: its text and attachments, encoded."""
    size = len(command.text.encode())
    if command.attachments:
        size += len(json.dumps(command.attachments, separators=(",", ":")))
    return size


def _answering(command: p.ClientFrame | None, raw: str | bytes) -> str | None:
    """The `client_id` a refusal answers: the send's own, or, for a frame that
    did not parse, whatever valid one it claims (so the client knows which)."""
    if command is None:
        return p.claimed_client_id(raw)
    with_id = p.SendMessage | p.Edit | p.Delete | p.React
    return command.client_id if isinstance(command, with_id) else None
